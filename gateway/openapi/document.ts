// The OpenAPI 3.1 document of the whole REST API, built from the zod schemas the gateway validates
// with (contracts/schemas.ts and the routes' query schemas), so the description cannot drift from
// what is enforced. Every route of the Hono app must have an operation here: test/openapi.test.ts
// compares the two, so a new route fails the suite until it is described in OPERATIONS.
import { z } from "zod";
import {
  Action,
  ActionPut,
  Activation,
  ActivationId,
  DeadLetter,
  EntityName,
  Isolation,
  Package,
  PackagePut,
  PlatformStats,
  RulePut,
  RuleStatus,
  Trigger,
  TriggerPut,
} from "../../contracts/index.ts";
import { ActivationListQuery, ActivationLogsView, ActivationResultView, ActivationSummary } from "../routes/activations.ts";
import { DeadLetterListQuery, DeadLetterReplayed } from "../routes/dead-letters.ts";
import { apiMgmtOperations } from "./apimgmt.ts";

type Method = "get" | "put" | "post" | "delete";

export interface Operation {
  method: Method;
  /** Hono-style path (`/api/v1/namespaces/:namespace/actions/:name`). */
  path: string;
  summary: string;
  tag: string;
  /** Query parameters, as the route's zod object validates them. */
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Status → [description, schema of the JSON body (none: the error body)]. */
  responses: Record<number, readonly [string, z.ZodType?]>;
  /** Health, discovery and docs: no credentials needed. */
  public?: boolean;
  /** The responses' media type when not JSON (the web console's page and assets). */
  mediaType?: string;
}

// Shapes the routes answer with that have no contract of their own.
const ErrorBody = z.object({ error: z.string(), code: z.string().describe("the request id (X-Request-Id)") });
const ActivationIdBody = z.object({ activationId: ActivationId });
const Params = z.record(z.string(), z.unknown()).describe("invocation parameters; they override the action's defaults");
const Version = z.string().regex(/^\d+\.\d+\.\d+$/).describe("an action version, like 0.0.2");
const bool = z.enum(["true", "false"]).optional();
const Page = { limit: z.coerce.number().int().min(0).max(200).optional(), skip: z.coerce.number().int().min(0).optional() };

const ActionListQuery = z.object(Page);
const ActionGetQuery = z.object({
  code: bool.describe("false leaves the code out"),
  version: Version.optional().describe("fetch this stored version"),
  versions: bool.describe("true lists the stored versions instead"),
});
const ActionPutQuery = z.object({
  overwrite: bool.describe("true replaces an existing action (else 409)"),
  rollback: Version.optional().describe("make this stored version current again (no body needed)"),
});
const InvokeQuery = z.object({
  blocking: bool.describe("wait up to 60 s for the activation (else 202 with its id at once)"),
  result: bool.describe("with blocking, answer with the result only"),
  version: Version.optional().describe("invoke this stored version"),
});
const PackageListQuery = z.object({ ...Page, public: bool.describe("true: also other namespaces' published packages") });
const OverwriteQuery = z.object({ overwrite: bool.describe("true replaces an existing package (else 409)") });
const NamespaceList = z.array(z.string()).describe("the caller's namespace (one key, one namespace)");
const ApiInfo = z.object({ description: z.string(), api_version: z.string(), api_version_path: z.string(), runtimes: z.record(z.string(), z.unknown()) });
const Health = z.object({
  status: z.enum(["ok", "degraded", "unavailable"]).describe("degraded: no runner is live (the API answers, invocations wait)"),
  reason: z.string().optional(),
  runners: z
    .array(z.object({ runnerId: z.string(), isolation: Isolation, capacity: z.number().int(), inflight: z.number().int() }))
    .optional()
    .describe("runners heard from in the last few seconds, with their isolation tier"),
});

// Triggers and rules as the routes show them (gateway/routes/triggers.ts, rules.ts).
const NameAndPath = z.object({ name: z.string(), path: z.string().describe("namespace, or namespace/package") });
const TriggerView = Trigger.omit({ updated: true }).extend({
  limits: z.object({}).describe("OpenWhisk's trigger limits: none"),
  rules: z.record(z.string(), z.object({ action: NameAndPath, status: RuleStatus })).optional().describe("ns/rule → its action and status; present once the trigger has rules"),
  updated: z.number().int(),
});
const TriggerSummary = TriggerView.omit({ parameters: true, limits: true, rules: true });
const RuleView = z.object({
  namespace: z.string(), name: z.string(), version: z.string(), publish: z.boolean(), annotations: z.array(z.object({ key: z.string(), value: z.unknown() })),
  status: RuleStatus.describe("inactive as well when its trigger no longer exists"),
  trigger: NameAndPath, action: NameAndPath, updated: z.number().int(),
});
const EntityListQuery = z.object({ ...Page, count: bool.describe("true answers {triggers: n} or {rules: n} instead") });
const RuleStatusChange = z.object({ status: RuleStatus });
const WebhookBody = z.unknown().describe("any bytes: a JSON object becomes the fire's parameters, another JSON value goes in __webhook_data, anything else base64 in __webhook_body_base64; __webhook_headers and __webhook_verified are added");
const FirePayload = z.record(z.string(), z.unknown()).describe("the fire's payload; it overrides the trigger's parameters");

/** Schemas described once under components.schemas and referenced wherever they appear at the top. */
const COMPONENTS = new Map<z.ZodType, string>([
  [Action, "Action"],
  [Activation, "Activation"],
  [Package, "Package"],
  [ActionPut, "ActionPut"],
  [PackagePut, "PackagePut"],
  [TriggerView, "Trigger"],
  [RuleView, "Rule"],
  [ErrorBody, "Error"],
]);

const NS = "/api/v1/namespaces/:namespace";
const auth = { 401: ["missing or wrong credentials"], 403: ["the path names another namespace than the key's"] } as const;
/** The reads and invocations another namespace may make (OpenWhisk's sharing of published packages). */
const sharedAuth = {
  401: auth[401],
  403: ["another namespace's package that is not published, is a binding or does not exist (one answer for all), or its action versions"],
} as const;
const invokeResponses = {
  200: ["blocking: the activation (or its result with result=true)", Activation],
  202: ["not blocking, or still running after the wait: the activation id", ActivationIdBody],
  404: ["no such action"],
  400: ["bad name, query, parameters or Idempotency-Key header (1-255 printable ASCII characters)"],
  422: ["the Idempotency-Key header was used before with another action or other parameters"],
  429: ["a namespace limit (concurrent or per minute) was reached; see Retry-After"],
  502: ["blocking: the action failed (application or developer error); the activation", Activation],
  503: ["the invocation could not be queued now (NATS or JetStream away, the queue full, too many blocking waits); see Retry-After"],
  ...auth,
} as const;

/** `shared`: another namespace may read and invoke it when its package is published. */
function actionOperations(path: string, what: string, shared = false): Operation[] {
  const readAuth = shared ? sharedAuth : auth;
  return [
    { method: "get", path, summary: `Get ${what} (or its versions)`, tag: "Actions", query: ActionGetQuery, responses: { 200: ["the action", Action], 400: ["bad name or query"], 404: ["no such action or version"], ...readAuth } },
    { method: "put", path, summary: `Create or update ${what}`, tag: "Actions", query: ActionPutQuery, body: ActionPut, responses: { 200: ["the stored action", Action], 400: ["bad name, body, limits, isolation annotation or code that does not build"], 503: ["no runner (of the tier the action requires) could check the code, or the runner could not (a problem of its host, not of the code); see Retry-After"], 404: ["no such version to roll back to"], 409: ["exists (without overwrite=true) or changed meanwhile"], 413: ["body too large"], ...auth } },
    { method: "delete", path, summary: `Delete ${what}`, tag: "Actions", responses: { 200: ["the deleted action", Action], 404: ["no such action"], 409: ["changed meanwhile"], ...auth } },
    { method: "post", path, summary: `Invoke ${what}`, tag: "Actions", query: InvokeQuery, body: Params, responses: { ...invokeResponses, ...readAuth } },
  ];
}

export const OPERATIONS: Operation[] = [
  { method: "get", path: "/health", summary: "Liveness, NATS connectivity and the live runners' tiers", tag: "Platform", public: true, responses: { 200: ["up (ok), or up without any live runner (degraded)", Health], 503: ["not connected to NATS", Health] } },
  { method: "get", path: "/api/v1", summary: "API information and runtimes", tag: "Platform", public: true, responses: { 200: ["API information", ApiInfo] } },
  { method: "get", path: "/", summary: "The web console (docs/console.md)", tag: "Platform", public: true, mediaType: "text/html", responses: { 200: ["its page", z.string()] } },
  { method: "get", path: "/console/:file", summary: "The web console's bundled script and stylesheet (names carry a content hash)", tag: "Platform", public: true, mediaType: "text/javascript", responses: { 200: ["the asset (JavaScript or CSS)", z.string()], 404: ["no such asset"] } },
  { method: "get", path: "/metrics", summary: "Prometheus metrics of this gateway and every live runner; needs Authorization: Bearer <metrics token> (VESPID_METRICS_TOKEN or <dataDir>/metrics.token), not an API key (docs/telemetry.md)", tag: "Platform", public: true, mediaType: "text/plain", responses: { 200: ["Prometheus text exposition format", z.string()], 401: ["the metrics token is missing or wrong"] } },
  { method: "get", path: "/api/v1/stats", summary: "The caller's namespace's invocation rates and latency over the last 10 s, and the live runners' figures (docs/telemetry.md)", tag: "Platform", responses: { 200: ["the figures", PlatformStats], 401: auth[401] } },
  { method: "get", path: "/api/v1/openapi.json", summary: "This document", tag: "Platform", public: true, responses: { 200: ["the OpenAPI document", z.record(z.string(), z.unknown())] } },
  { method: "get", path: "/api/v1/namespaces", summary: "The caller's namespaces", tag: "Namespaces", responses: { 200: ["namespace names", NamespaceList], 401: auth[401] } },
  { method: "get", path: `${NS}/actions`, summary: "List actions", tag: "Actions", query: ActionListQuery, responses: { 200: ["actions, newest first (without code)", z.array(Action)], 400: ["bad query"], ...auth } },
  ...actionOperations(`${NS}/actions/:name`, "an action"),
  ...actionOperations(`${NS}/actions/:pkg/:name`, "an action in a package (another namespace's too, when published: the activation is the caller's)", true),
  { method: "get", path: `${NS}/activations`, summary: "List activations", tag: "Activations", query: ActivationListQuery, responses: { 200: ["activations, newest first: summaries, or full records with docs=true", z.union([z.array(ActivationSummary), z.array(Activation)])], 400: ["bad query"], ...auth } },
  { method: "get", path: `${NS}/activations/:activationId`, summary: "Get an activation", tag: "Activations", responses: { 200: ["the activation record", Activation], 400: ["bad activation id"], 404: ["no such activation in this namespace"], ...auth } },
  { method: "get", path: `${NS}/activations/:activationId/logs`, summary: "Get an activation's logs", tag: "Activations", responses: { 200: ["its logs", ActivationLogsView], 400: ["bad activation id"], 404: ["no such activation in this namespace"], ...auth } },
  { method: "get", path: `${NS}/activations/:activationId/result`, summary: "Get an activation's result", tag: "Activations", responses: { 200: ["its response", ActivationResultView], 400: ["bad activation id"], 404: ["no such activation in this namespace"], ...auth } },
  { method: "get", path: `${NS}/deadletters`, summary: "List dead letters: invocations that failed on the platform's side more often than VESPID_MAX_RETRIES allows", tag: "Activations", query: DeadLetterListQuery, responses: { 200: ["dead letters, newest first", z.array(DeadLetter)], 400: ["bad query"], ...auth } },
  { method: "get", path: `${NS}/deadletters/:activationId`, summary: "Get a dead letter", tag: "Activations", responses: { 200: ["the dead letter: the event, why and how often it failed", DeadLetter], 400: ["bad activation id"], 404: ["no such dead letter in this namespace"], ...auth } },
  { method: "post", path: `${NS}/deadletters/:activationId/replay`, summary: "Replay a dead letter: invoke it again under a new activation id and remove it", tag: "Activations", responses: { 202: ["queued: the new activation id", DeadLetterReplayed], 400: ["bad activation id"], 404: ["no such dead letter in this namespace"], ...auth } },
  { method: "get", path: `${NS}/packages`, summary: "List packages", tag: "Packages", query: PackageListQuery, responses: { 200: ["packages, newest first; with public=true also other namespaces' published ones; in another namespace, only its published packages", z.array(Package)], 400: ["bad query"], 401: auth[401] } },
  { method: "get", path: `${NS}/packages/:name`, summary: "Get a package and its actions (another namespace's too, when published)", tag: "Packages", responses: { 200: ["the package", Package], 400: ["bad name"], 404: ["no such package"], ...sharedAuth } },
  { method: "put", path: `${NS}/packages/:name`, summary: "Create or update a package (or a binding)", tag: "Packages", query: OverwriteQuery, body: PackagePut, responses: { 200: ["the stored package", Package], 400: ["bad name or body"], 404: ["the bound package does not exist"], 409: ["exists (without overwrite=true) or changed meanwhile"], ...auth } },
  { method: "delete", path: `${NS}/packages/:name`, summary: "Delete a package", tag: "Packages", responses: { 200: ["the deleted package", Package], 404: ["no such package"], 409: ["it still has actions"], ...auth } },
  { method: "get", path: `${NS}/triggers`, summary: "List triggers (or count them)", tag: "Triggers", query: EntityListQuery, responses: { 200: ["triggers, newest first, without parameters; with count=true, {triggers: n}", z.union([z.array(TriggerSummary), z.object({ triggers: z.number().int() })])], 400: ["bad query"], ...auth } },
  { method: "get", path: `${NS}/triggers/:name`, summary: "Get a trigger and its rules", tag: "Triggers", responses: { 200: ["the trigger", TriggerView], 400: ["bad name"], 404: ["no such trigger"], ...auth } },
  { method: "put", path: `${NS}/triggers/:name`, summary: "Create or update a trigger", tag: "Triggers", query: OverwriteQuery, body: TriggerPut, responses: { 200: ["the stored trigger", TriggerView], 400: ["bad name or body (or a feed annotation that is no entity path)"], 409: ["exists (without overwrite=true) or changed meanwhile"], 413: ["body too large"], ...auth } },
  { method: "delete", path: `${NS}/triggers/:name`, summary: "Delete a trigger (and its feed registration; its rules stay, inactive)", tag: "Triggers", responses: { 200: ["the deleted trigger", TriggerView], 404: ["no such trigger"], 409: ["changed meanwhile"], ...auth } },
  { method: "post", path: `${NS}/triggers/:name`, summary: "Fire a trigger: its active rules' actions run with the payload over its parameters", tag: "Triggers", body: FirePayload, responses: { 202: ["accepted (durable): the trigger's activation id, also in X-OpenWhisk-Activation-Id", ActivationIdBody], 204: ["the trigger has no active rule: nothing runs, nothing is recorded (as OpenWhisk)"], 400: ["bad name, payload or Idempotency-Key header"], 404: ["no such trigger"], 413: ["payload too large"], 422: ["the Idempotency-Key header was used before with another trigger or payload"], 503: ["the fire could not be queued; see Retry-After"], ...auth } },
  { method: "get", path: `${NS}/rules`, summary: "List rules (or count them)", tag: "Rules", query: EntityListQuery, responses: { 200: ["rules, newest first; with count=true, {rules: n}", z.union([z.array(RuleView), z.object({ rules: z.number().int() })])], 400: ["bad query"], ...auth } },
  { method: "get", path: `${NS}/rules/:name`, summary: "Get a rule", tag: "Rules", responses: { 200: ["the rule", RuleView], 400: ["bad name"], 404: ["no such rule"], ...auth } },
  { method: "put", path: `${NS}/rules/:name`, summary: "Create or update a rule linking a trigger to an action", tag: "Rules", query: OverwriteQuery, body: RulePut, responses: { 200: ["the stored rule (a new one is active)", RuleView], 400: ["bad name or body; trigger or action missing, invalid or not existing (the message names which)"], 403: ["the trigger is another namespace's, or the action is in no published package of another namespace"], 409: ["exists (without overwrite=true) or changed meanwhile"], 401: auth[401] } },
  { method: "delete", path: `${NS}/rules/:name`, summary: "Delete a rule", tag: "Rules", responses: { 200: ["the deleted rule (shown inactive)", RuleView], 404: ["no such rule"], 409: ["changed meanwhile"], ...auth } },
  { method: "post", path: `${NS}/rules/:name`, summary: "Enable or disable a rule", tag: "Rules", body: RuleStatusChange, responses: { 200: ["the rule has the status asked for", z.object({})], 400: ["status missing or not active/inactive"], 404: ["no such rule, or its trigger no longer exists"], 409: ["changed meanwhile"], ...auth } },
  { method: "post", path: "/api/v1/webhooks/:namespace/:trigger", summary: "Fire a trigger from another service (no API key): only a trigger annotated webhook: true (with webhook-secret) or webhook: \"unsigned\" answers; a secret requires X-Hub-Signature-256 or X-Vespid-Signature: sha256=<hex HMAC-SHA256 of the raw body>", tag: "Triggers", public: true, body: WebhookBody, responses: { 202: ["accepted (durable): the trigger's activation id, also in X-OpenWhisk-Activation-Id", ActivationIdBody], 204: ["the trigger has no active rule: nothing runs, nothing is recorded"], 401: ["the trigger has a secret and the signature is missing or does not match the body; nothing is fired"], 404: ["no such trigger, or it does not answer webhooks"], 413: ["body larger than 1 MiB"], 503: ["the fire could not be queued; see Retry-After"] } },
  // Route management; web action and API route URLs are not described (see ./apimgmt.ts).
  ...apiMgmtOperations,
];

const PATH_PARAMS: Record<string, z.ZodType> = {
  namespace: z.union([z.literal("_"), EntityName]).describe("the caller's namespace, or _ for it; another namespace only to list and read its published packages and read and invoke their actions"),
  name: EntityName,
  pkg: EntityName.describe("package name"),
  trigger: EntityName.describe("trigger name"),
  activationId: ActivationId,
};

/** `/a/:b/c` → `/a/{b}/c`. */
export const openApiPath = (honoPath: string): string => honoPath.replace(/:([A-Za-z]+)/g, "{$1}");

export function buildOpenApiDocument(): Record<string, unknown> {
  const schemas: Record<string, unknown> = {};
  const convert = (schema: z.ZodType, io: "input" | "output"): Record<string, unknown> => {
    const component = COMPONENTS.get(schema);
    // A component is written in the direction it is first used (bodies in, records out).
    if (component) {
      schemas[component] ??= toJson(schema, io);
      return { $ref: `#/components/schemas/${component}` };
    }
    return toJson(schema, io);
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const path = openApiPath(op.path);
    const pathParams = [...op.path.matchAll(/:([A-Za-z]+)/g)].map(([, name]) => ({
      name,
      in: "path",
      required: true,
      schema: convert(PATH_PARAMS[name!] ?? z.string(), "input"),
    }));
    const queryParams = Object.entries(op.query?.shape ?? {}).map(([name, schema]) => {
      const json = convert(schema as z.ZodType, "input");
      return { name, in: "query", required: false, schema: json, ...(json.description ? { description: json.description } : {}) };
    });
    const responses: Record<string, unknown> = {};
    for (const [status, [description, schema]] of Object.entries(op.responses)) {
      responses[status] = {
        description,
        ...(status === "429" ? { headers: { "Retry-After": { description: "seconds to wait", schema: { type: "integer" } } } } : {}),
        content: { [(status.startsWith("2") && op.mediaType) || "application/json"]: { schema: schema ? convert(schema, "output") : { $ref: "#/components/schemas/Error" } } },
      };
    }
    (paths[path] ??= {})[op.method] = {
      operationId: operationId(op),
      summary: op.summary,
      tags: [op.tag],
      ...(op.public ? { security: [] } : {}),
      ...(pathParams.length + queryParams.length > 0 ? { parameters: [...pathParams, ...queryParams] } : {}),
      ...(op.body ? { requestBody: { required: op.method === "put", content: { "application/json": { schema: convert(op.body, "input") } } } } : {}),
      responses,
    };
  }
  convert(ErrorBody, "output");

  return {
    openapi: "3.1.0",
    info: {
      title: "Vespid API",
      version: "1.0.0",
      description:
        "Apache OpenWhisk's REST API (v1), served by Vespid. Authenticate with HTTP Basic auth using a namespace's `uuid:key`; `_` in a path means the key's own namespace. Create namespaces and keys with `vespid admin`.",
    },
    servers: [{ url: "/" }],
    security: [{ basicAuth: [] }],
    tags: ["Platform", "Namespaces", "Actions", "Activations", "Packages"].map((name) => ({ name })),
    paths,
    components: { securitySchemes: { basicAuth: { type: "http", scheme: "basic" } }, schemas },
  };
}

function toJson(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  // unrepresentable: "any" — refinements and transforms cannot be JSON Schema; the checks that can
  // (lengths, patterns, ranges, enums) are all there.
  const json = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

function operationId(op: Operation): string {
  const words = op.path
    .replace("/api/v1/namespaces/:namespace", "")
    .split("/")
    .filter((w) => w && w !== "api" && w !== "v1")
    .map((w) => (w.startsWith(":") ? `by-${w.slice(1)}` : w));
  return [op.method, ...words].join("-").replace(/[^A-Za-z0-9-]/g, "") || op.method;
}

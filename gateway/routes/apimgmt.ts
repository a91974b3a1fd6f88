// OpenWhisk's route management endpoints, which `wsk api` and the `openwhisk` client's `routes`
// call as web actions of `whisk.system/apimgmt`: createApi (POST, body `{apidoc}`), getApi (GET,
// `?basepath=`), deleteApi (DELETE, `?basepath=&relpath=&operation=`). In OpenWhisk they are
// actions talking to a separate API gateway; here the gateway answers them itself and keeps the
// routes in KV (gateway/api-gateway/store.ts). The caller is the namespace of the Basic
// credentials (or, for createApi, of `apidoc.action.authkey`), and may map only its own actions.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { EntityName, keyValuesToObject } from "../../contracts/index.ts";
import { BasePath, MAX_APIS_PER_NAMESPACE, MAX_OPERATIONS_PER_API, RelPath, ROUTE_METHODS, type RouteApi, type RouteOperation, type RouteStore } from "../api-gateway/store.ts";
import { cliApiOf } from "../api-gateway/view.ts";
import type { Authenticate } from "../authenticator.ts";
import { limitBody, readJsonBody } from "../body.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import { resolveAction, type EntityStores } from "../resolve-action.ts";
import { EXTENSIONS, type Extension } from "../web/respond.ts";
import { WEB_PREFIX } from "./web.ts";

export interface ApiMgmtDeps extends EntityStores {
  authenticate: Authenticate;
  routes: RouteStore;
}

export const APIMGMT_PREFIX = `${WEB_PREFIX}/whisk.system/apimgmt`;

const OWN_NAMESPACE = "_";

const Method = z
  .string()
  .transform((m) => m.toLowerCase())
  .pipe(z.enum(ROUTE_METHODS));

/** What the clients send (they add fields such as backendUrl, id and pathParameters, which are derived here). */
export const CreateApiBody = z.object({
  apidoc: z.preprocess(
    (doc) => {
      if (typeof doc !== "string") return doc;
      try {
        return JSON.parse(doc);
      } catch {
        return doc;
      }
    },
    z.object({
      namespace: z.string().optional(),
      apiName: z.string().min(1).max(256).optional(),
      gatewayBasePath: BasePath,
      gatewayPath: RelPath,
      gatewayMethod: Method,
      swagger: z.never({ error: "creating an API from a swagger document is not supported; create it route by route" }).optional(),
      action: z.object({
        name: z.string().min(1).max(600),
        namespace: z.string().min(1).max(256),
        backendUrl: z.string().max(2048).optional(),
        authkey: z.string().max(512).optional(),
        secureKey: z.string().min(1).max(1024).optional(),
      }),
    }),
  ),
});
export const CreateApiQuery = z.object({ responsetype: z.enum(EXTENSIONS).optional() });
export const GetApiQuery = z.object({
  basepath: z.string().max(256).optional().describe("a base path (/club) or an API name; absent: every API of the namespace"),
  relpath: z.string().max(512).optional(),
  operation: z.string().max(16).optional(),
});
export const DeleteApiQuery = z.object({
  basepath: z.string({ error: "is required" }).min(1, "is required").max(256).describe("the base path or name of the API"),
  relpath: z.string().max(512).optional().describe("delete only this path (all its methods, or just `operation`)"),
  operation: z.string().max(16).optional(),
});

export function apiMgmtRoutes(deps: ApiMgmtDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const origin = (c: Context<GatewayEnv>) => new URL(c.req.url).origin;

  // The `openwhisk` client names them without an extension, `wsk` with `.http`: the same web action.
  const paths = (name: string) => [`${APIMGMT_PREFIX}/${name}`, `${APIMGMT_PREFIX}/${name}.http`];

  const createApi = async (c: Context<GatewayEnv>) => {
    const { responsetype } = validate(CreateApiQuery, c.req.query(), "query");
    const body = await readJsonBody(c);
    const authkey = (body as { apidoc?: { action?: { authkey?: unknown } } })?.apidoc?.action?.authkey;
    const caller = await callerOf(deps, c, typeof authkey === "string" ? authkey : undefined);
    const { apidoc } = validate(CreateApiBody, body);

    const actionNamespace = apidoc.action.namespace === OWN_NAMESPACE ? caller : apidoc.action.namespace;
    if (actionNamespace !== caller) {
      throw new ApiError(403, `apidoc.action.namespace: a route may only map an action of your own namespace (${caller}), not of ${apidoc.action.namespace}`);
    }
    const action = parseActionName(apidoc.action.name, caller);
    const resolved = await resolveAction(deps, action);
    if (!resolved) throw new ApiError(404, `apidoc.action.name: the action /${caller}/${apidoc.action.name} does not exist`);
    if (resolved.binding || keyValuesToObject(resolved.action.annotations)["web-export"] !== true) {
      throw new ApiError(400, `apidoc.action.name: the action /${caller}/${apidoc.action.name} is not a web action; annotate it web-export: true (wsk action update ${apidoc.action.name} --web true)`);
    }
    const operation: RouteOperation = {
      path: apidoc.gatewayPath,
      method: apidoc.gatewayMethod,
      action,
      responseType: responsetype ?? extensionOf(apidoc.action.backendUrl) ?? "json",
      ...(apidoc.action.secureKey !== undefined && { secureKey: apidoc.action.secureKey }),
    };

    // Read, change, write only if unchanged: of two concurrent creates under one base path both land.
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await deps.routes.get(caller, apidoc.gatewayBasePath);
      if (!stored && (await deps.routes.list(caller)).length >= MAX_APIS_PER_NAMESPACE) {
        throw new ApiError(400, `apidoc.gatewayBasePath: the namespace already has the limit of ${MAX_APIS_PER_NAMESPACE} APIs`);
      }
      const now = Date.now();
      const base: RouteApi = stored?.value ?? { namespace: caller, basePath: apidoc.gatewayBasePath, name: apidoc.apiName ?? apidoc.gatewayBasePath, operations: [], created: now, updated: now };
      const others = base.operations.filter((op) => !(op.path === operation.path && op.method === operation.method));
      if (others.length >= MAX_OPERATIONS_PER_API) {
        throw new ApiError(400, `apidoc.gatewayPath: the API ${base.basePath} already has the limit of ${MAX_OPERATIONS_PER_API} routes`);
      }
      const api: RouteApi = { ...base, operations: [...others, operation], updated: now };
      if (await deps.routes.write(api, stored?.revision)) return c.json(cliApiOf(origin(c), api));
    }
    throw new ApiError(409, Messages.concurrentModification);
  };

  const getApi = async (c: Context<GatewayEnv>) => {
    const { basepath } = validate(GetApiQuery, c.req.query(), "query");
    const caller = await callerOf(deps, c);
    const apis = (await deps.routes.list(caller)).filter((api) => basepath === undefined || names(api, basepath));
    return c.json({ apis: apis.map((api) => cliApiOf(origin(c), api)) });
  };

  const deleteApi = async (c: Context<GatewayEnv>) => {
    const query = validate(DeleteApiQuery, c.req.query(), "query");
    if (query.operation !== undefined && query.relpath === undefined) throw new ApiError(400, "relpath: is required when an operation is given");
    const operation = query.operation === undefined ? undefined : validate(Method, query.operation, "operation");
    const relpath = query.relpath === undefined ? undefined : validate(RelPath, query.relpath, "relpath");
    const caller = await callerOf(deps, c);
    for (let attempt = 0; attempt < 5; attempt++) {
      const found = (await deps.routes.list(caller)).find((api) => names(api, query.basepath));
      if (!found) throw new ApiError(404, `API '${query.basepath}' does not exist.`);
      const stored = await deps.routes.get(caller, found.basePath);
      if (!stored) continue;
      const api = stored.value;
      let done: boolean;
      if (relpath === undefined) done = await deps.routes.remove(caller, api.basePath, stored.revision);
      else {
        const kept = api.operations.filter((op) => !(op.path === relpath && (operation === undefined || op.method === operation)));
        if (kept.length === api.operations.length) {
          throw new ApiError(404, operation === undefined ? `path ${relpath} does not exist in the API` : `path ${relpath} with operation ${operation} does not exist in the API`);
        }
        // An API left without routes goes too, as OpenWhisk's does.
        done = kept.length === 0
          ? await deps.routes.remove(caller, api.basePath, stored.revision)
          : await deps.routes.write({ ...api, operations: kept, updated: Date.now() }, stored.revision);
      }
      if (done) return c.json({});
    }
    throw new ApiError(409, Messages.concurrentModification);
  };

  for (const path of paths("createApi")) app.post(path, limitBody(), createApi);
  for (const path of paths("getApi")) app.get(path, getApi);
  for (const path of paths("deleteApi")) app.delete(path, deleteApi);
  return app;
}

/** The Basic credentials' namespace, else (createApi) the namespace of the key the client put in the apidoc. */
async function callerOf(deps: ApiMgmtDeps, c: Context<GatewayEnv>, authkey?: string): Promise<string> {
  const header = c.req.header("authorization");
  let namespace = await deps.authenticate(header);
  if (namespace === undefined && header === undefined && authkey !== undefined) {
    namespace = await deps.authenticate(`Basic ${Buffer.from(authkey).toString("base64")}`);
  }
  if (namespace === undefined) throw new ApiError(401, Messages.unauthenticated, { "WWW-Authenticate": 'Basic realm="vespid"' });
  return namespace;
}

/** `name` or `pkg/name` (how the clients send it), in the caller's namespace. */
function parseActionName(name: string, namespace: string) {
  const parts = name.replace(/^\/+/, "").split("/");
  const valid = parts.length <= 2 && parts.every((p) => EntityName.safeParse(p).success);
  if (!valid) throw new ApiError(400, `apidoc.action.name: ${JSON.stringify(name.slice(0, 100))} is not an action name (name or package/name)`);
  return parts.length === 2 ? { namespace, pkg: parts[0]!, name: parts[1]! } : { namespace, name: parts[0]! };
}

/** A base path (`/club`, trailing slashes ignored) names the API with that base path; anything else, its name. */
function names(api: RouteApi, basepathOrName: string): boolean {
  if (!basepathOrName.startsWith("/")) return api.name === basepathOrName;
  const normalised = basepathOrName.length > 1 ? basepathOrName.replace(/\/+$/, "") : basepathOrName;
  return api.basePath === (normalised || "/");
}

/** The extension of a web action URL the client derived (`…/hello.http` → http). */
function extensionOf(url: string | undefined): Extension | undefined {
  const ext = /\.([a-z]+)$/.exec(url ?? "")?.[1];
  return EXTENSIONS.find((e) => e === ext);
}

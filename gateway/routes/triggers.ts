// /api/v1/namespaces/{ns}/triggers: create, update, read, list and delete triggers, and fire them
// (`POST …/triggers/{name}`). A fire is a FireEvent in FIRES_STREAM (triggers/publish.ts), answered
// 202 with the trigger's activation id once it is durable; the triggers component starts the rules.
import type { JetStreamClient } from "@nats-io/jetstream";
import { Hono } from "hono";
import { z } from "zod";
import { entityKey, EntityName, TriggerPut, type KeyValue, type Rule, type Trigger } from "../../contracts/index.ts";
import type { EventEntities } from "../../triggers/entities.ts";
import { pathView, unslashed } from "../../triggers/names.ts";
import { publishFire } from "../../triggers/publish.ts";
import { limitBody, readJsonBody } from "../body.ts";
import type { GatewayEnv } from "../env.ts";
import { nextVersion } from "../entity-version.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import { fingerprintOf, IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf, REPUBLISH_WITHIN_MS, type IdempotencyStore } from "../idempotency.ts";
import { newActivationId } from "../invoke.ts";
import { flag } from "../query.ts";
import { keepWebhookSecret, redactWebhookSecret, webhookAnnotationsIssue } from "../webhook-config.ts";

export interface TriggerRoutesDeps {
  events: EventEntities;
  js: JetStreamClient;
  /** The NATS server's largest message, bytes: a fire's payload must fit one. */
  maxPayload: () => number;
  /** Claims of Idempotency-Key headers (gateway/idempotency.ts). */
  idempotency: IdempotencyStore;
}

const DEFAULT_PAGE = 30;
export const ListQuery = z.object({
  // OpenWhisk reads limit=0 as "the default page".
  limit: z.coerce.number().int().min(0).max(200).default(0).transform((n) => n || DEFAULT_PAGE),
  skip: z.coerce.number().int().min(0).default(0),
  count: flag,
});
const PutQuery = z.object({ overwrite: flag });
const Payload = z.record(z.string(), z.unknown(), { error: "the payload must be a JSON object" });
/** Room for the FireEvent's other fields and headers next to the payload, bytes. */
const FIRE_ENVELOPE_ROOM = 4 * 1024;

/** OpenWhisk's trigger: `limits` is `{}`; `rules` (present once it has any) maps `ns/rule` to its action and status. */
export function triggerView(trigger: Trigger, rules?: readonly Rule[]) {
  return {
    namespace: trigger.namespace,
    name: trigger.name,
    version: trigger.version,
    publish: trigger.publish,
    parameters: trigger.parameters,
    annotations: redactWebhookSecret(trigger.annotations),
    limits: {},
    ...(rules && rules.length > 0 && {
      rules: Object.fromEntries(rules.map((r) => [unslashed(`/${r.namespace}/${r.name}`), { action: pathView(r.action), status: r.status }])),
    }),
    updated: trigger.updated,
  };
}

/** What listings show, as OpenWhisk's (no parameters, no rules). */
const triggerSummaryView = (t: Trigger) => ({ namespace: t.namespace, name: t.name, version: t.version, publish: t.publish, annotations: redactWebhookSecret(t.annotations), updated: t.updated });

/**
 * OpenWhisk refuses a `feed` annotation that is no entity path (`ns/pkg/feed`, `pkg/feed`, `feed`),
 * since wsk runs it as the trigger's feed action.
 */
function checkFeedAnnotation(annotations: readonly KeyValue[] | undefined): void {
  for (const [i, { key, value }] of (annotations ?? []).entries()) {
    if (key !== "feed") continue;
    const parts = typeof value === "string" ? value.replace(/^\//, "").split("/") : [];
    if (parts.length < 1 || parts.length > 3 || !parts.every((p) => EntityName.safeParse(p).success)) {
      throw new ApiError(400, `annotations.${i}.value: Feed name is not valid`);
    }
  }
}

export function triggerRoutes(deps: TriggerRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const { events } = deps;
  const nameOf = (raw: string) => validate(EntityName, raw, "name");

  app.get("/", async (c) => {
    const { limit, skip, count } = validate(ListQuery, c.req.query(), "query");
    // Listings and `rules` come from the watched copies, brought up to date first, so a change
    // made through another gateway just before shows.
    await events.triggers.watched.sync();
    const triggers = events.triggers.list(c.get("namespace"));
    if (count) return c.json({ triggers: Math.max(0, triggers.length - skip) });
    triggers.sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
    return c.json(triggers.slice(skip, skip + limit).map(triggerSummaryView));
  });

  app.get("/:name", async (c) => {
    const namespace = c.get("namespace");
    const stored = await events.triggers.get(namespace, nameOf(c.req.param("name")));
    if (!stored) throw new ApiError(404, Messages.notFound);
    await events.rules.watched.sync();
    return c.json(triggerView(stored.value, events.rulesOf(namespace, stored.value.name)));
  });

  app.put("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = nameOf(c.req.param("name"));
    const { overwrite } = validate(PutQuery, c.req.query(), "query");
    const put = validate(TriggerPut, await readJsonBody(c, { whenEmpty: {} }));
    checkFeedAnnotation(put.annotations);
    const existing = await events.triggers.get(namespace, name);
    if (existing && !overwrite) throw new ApiError(409, Messages.exists);
    // An update keeps what the body leaves out, as OpenWhisk's does, and bumps the patch version.
    const trigger: Trigger = {
      namespace,
      name,
      version: nextVersion(existing?.value.version),
      publish: put.publish ?? existing?.value.publish ?? false,
      parameters: put.parameters ?? existing?.value.parameters ?? [],
      // A webhook secret sent back redacted (as GET showed it) stays what it was.
      annotations: put.annotations ? keepWebhookSecret(put.annotations, existing?.value.annotations) : existing?.value.annotations ?? [],
      updated: Date.now(),
    };
    const webhookIssue = webhookAnnotationsIssue(trigger.annotations);
    if (webhookIssue) throw new ApiError(400, webhookIssue);
    const stored = existing ? await events.triggers.replace(trigger, existing.revision) : await events.triggers.create(trigger);
    if (!stored) throw new ApiError(409, existing ? Messages.concurrentModification : Messages.exists);
    return c.json(triggerView(trigger, events.rulesOf(namespace, name)));
  });

  app.delete("/:name", async (c) => {
    const namespace = c.get("namespace");
    const stored = await events.triggers.get(namespace, nameOf(c.req.param("name")));
    if (!stored) throw new ApiError(404, Messages.notFound);
    // As in OpenWhisk, rules naming the trigger stay (shown inactive until a trigger by that
    // name exists again); they are the user's to delete.
    const rules = events.rulesOf(namespace, stored.value.name);
    if (!(await events.triggers.remove(stored.value, stored.revision))) throw new ApiError(409, Messages.concurrentModification);
    // Its feed registration goes with it, so the alarm or subject feed stops firing a trigger
    // that no longer exists (wsk also calls the feed's DELETE first; this covers every other client).
    await events.feeds.delete(entityKey(namespace, stored.value.name));
    return c.json(triggerView(stored.value, rules));
  });

  app.post("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = nameOf(c.req.param("name"));
    const key = idempotencyKeyOf(c.req.header(IDEMPOTENCY_KEY_HEADER));
    const payload = validate(Payload, await readJsonBody(c, { whenEmpty: {} }));
    const stored = await events.triggers.get(namespace, name);
    if (!stored) throw new ApiError(404, Messages.notFound);
    // OpenWhisk answers a trigger without an active rule 204 and records no activation. The
    // watched rules are brought up to date first, so a rule just enabled through any gateway counts.
    await events.rules.watched.sync();
    if (!events.rulesOf(namespace, name).some((r) => r.status === "active")) return c.body(null, 204);
    const size = Buffer.byteLength(JSON.stringify(payload));
    const limit = deps.maxPayload() - FIRE_ENVELOPE_ROOM;
    if (size > limit) throw new ApiError(413, `the payload takes ${size} bytes, more than the limit of ${limit} bytes one fire may carry`);
    // With a key, a repeat (same trigger and payload) answers the first fire's id. It publishes
    // that fire again while the id is inside the stream's duplicate window, which stores it once:
    // so a first gateway that died before publishing loses nothing, and nothing fires twice. A
    // failed publish keeps the key, so a retry publishes the same id.
    const claim = key === undefined ? undefined : await deps.idempotency.claim(namespace, key, fingerprintOf({ trigger: name, payload }));
    const activationId = claim?.activationId ?? newActivationId();
    if (!claim || claim.won || Date.now() - claim.created < REPUBLISH_WITHIN_MS) {
      try {
        await publishFire(deps.js, { activationId, namespace, trigger: name, payload, subject: namespace, source: "api", time: Date.now(), depth: 0 });
      } catch (err) {
        throw new ApiError(503, "the fire could not be queued; try again later", {}, { cause: err });
      }
    }
    if (claim && !claim.won) c.header("Idempotent-Replayed", "true");
    c.header("x-openwhisk-activation-id", activationId);
    return c.json({ activationId }, 202);
  });

  return app;
}

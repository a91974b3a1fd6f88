// POST /api/v1/webhooks/{ns}/{trigger}: other services (GitHub, a payment provider, a script) fire
// a trigger over HTTP without an API key. Only triggers annotated for it answer (webhook-config.ts);
// with a secret, the raw body's HMAC-SHA256 must come along. The answer is 202 once the fire is
// durable in VESPID_FIRES, like `POST …/triggers/{name}`.
import { createHash } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { EntityName } from "../../contracts/index.ts";
import type { EventEntities } from "../../triggers/entities.ts";
import { bytesAsParameters } from "../../triggers/event-payload.ts";
import { publishFire } from "../../triggers/publish.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages } from "../errors.ts";
import { newActivationId } from "../invoke.ts";
import { checkSignature, webhookConfig } from "../webhook-config.ts";

export interface WebhookRoutesDeps {
  events: EventEntities;
  js: JetStreamClient;
}

/**
 * A webhook's body, bytes. The payload ends up as the trigger activation's result and in each
 * rule's invocation, whose results are bounded to 1 MiB; GitHub's own payloads stay far below.
 */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

/** Fields Vespid adds to the body's parameters (set after them, so a body cannot forge them). */
export const WEBHOOK_FIELDS = {
  /** The request's headers, lower-case names, without credentials (authorization, cookies). */
  headers: "__webhook_headers",
  /** Whether a signature was checked (the trigger has a secret), so an action can insist on it. */
  verified: "__webhook_verified",
  /** A JSON body that is not an object. */
  data: "__webhook_data",
  /** A body that is not JSON (or not UTF-8, or nested too deeply), base64. */
  bodyBase64: "__webhook_body_base64",
} as const;

/** Headers never passed on to actions: credentials of the sender, not facts of the event. */
const WITHHELD_HEADERS = new Set(["authorization", "proxy-authorization", "cookie"]);
/**
 * A sender's unique id for one delivery, kept when it retries: the fire's id is derived from it,
 * so a retry within the fires stream's duplicate window (2 min) is not fired twice.
 */
const DELIVERY_HEADERS = ["x-github-delivery", "x-vespid-delivery"];
const MAX_DELIVERY_ID_LENGTH = 256;

export function webhookRoutes(deps: WebhookRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  const limit = bodyLimit({
    maxSize: MAX_WEBHOOK_BODY_BYTES,
    onError: () => {
      throw new ApiError(413, `request body is larger than the limit of ${MAX_WEBHOOK_BODY_BYTES} bytes a webhook may carry`);
    },
  });

  app.post("/:namespace/:trigger", limit, async (c) => {
    // Names that cannot exist answer like a trigger that does not: nothing here can be probed.
    const namespace = EntityName.safeParse(c.req.param("namespace"));
    const name = EntityName.safeParse(c.req.param("trigger"));
    if (!namespace.success || !name.success) throw new ApiError(404, Messages.notFound);
    // The raw bytes: the signature covers them exactly as sent.
    const body = new Uint8Array(await c.req.arrayBuffer());
    const stored = await deps.events.triggers.get(namespace.data, name.data);
    const config = stored ? webhookConfig(stored.value.annotations) : { exposed: false as const };
    if (!config.exposed) throw new ApiError(404, Messages.notFound);
    if (config.secret !== undefined) {
      const check = checkSignature(body, config.secret, (h) => c.req.header(h));
      if (check === "missing") {
        throw new ApiError(401, "missing signature: send X-Hub-Signature-256 or X-Vespid-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook secret>");
      }
      if (check === "invalid") throw new ApiError(401, "the signature does not match the body");
    }

    // As `POST …/triggers/{name}` (and OpenWhisk): without an active rule nothing is fired or recorded.
    await deps.events.rules.watched.sync();
    if (!deps.events.rulesOf(namespace.data, name.data).some((r) => r.status === "active")) return c.body(null, 204);

    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(c.req.header())) if (!WITHHELD_HEADERS.has(key)) headers[key] = value;
    const payload: Record<string, unknown> = {
      ...bytesAsParameters(body, { value: WEBHOOK_FIELDS.data, base64: WEBHOOK_FIELDS.bodyBase64 }),
      [WEBHOOK_FIELDS.headers]: headers,
      [WEBHOOK_FIELDS.verified]: config.secret !== undefined,
    };
    const delivery = DELIVERY_HEADERS.map((h) => c.req.header(h)).find((v) => v !== undefined && v.length > 0 && v.length <= MAX_DELIVERY_ID_LENGTH);
    const activationId = delivery
      ? createHash("sha256").update(`webhook\n${namespace.data}\n${name.data}\n${delivery}`).digest("hex").slice(0, 32)
      : newActivationId();
    try {
      await publishFire(deps.js, {
        activationId,
        namespace: namespace.data,
        trigger: name.data,
        payload,
        // OpenWhisk's activation subject: the caller, here the namespace that exposed the webhook.
        subject: namespace.data,
        source: "webhook",
        time: Date.now(),
        depth: 0,
      });
    } catch (err) {
      throw new ApiError(503, "the webhook could not be queued; try again later", { "Retry-After": "1" }, { cause: err });
    }
    c.header("x-openwhisk-activation-id", activationId);
    return c.json({ activationId }, 202);
  });

  return app;
}

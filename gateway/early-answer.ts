// Blocking invocations whose caller asked to learn the activation id before the body
// (`Prefer: early-activation-id`): the headers, with the id, leave as soon as the invocation is
// queued, and the body follows when the activation ends. A client cut off while waiting (a gateway
// crash, a proxy's timeout) still has the id, and reads the record with GET …/activations/{id}
// instead of invoking again.
//
// The price is the status: it is sent with the headers, before the outcome is known, so it is 200
// whatever happens next. The body tells: an activation record (failures included, with
// `response.success: false`), the result with `?result=true`, `{activationId}` alone when the wait
// ended first (OpenWhisk's 202 body), or `{error, code, activationId}` when the gateway failed
// after the headers had left. Without the preference, blocking answers keep OpenWhisk's statuses
// (200, 502 for the action's failures, 500, 202) and carry the id in the final headers.
import type { Context } from "hono";
import type { Logger } from "pino";
import type { GatewayEnv } from "./env.ts";
import { Messages } from "./errors.ts";
import type { InvokeOptions } from "./invoke.ts";
import type { IdempotentOutcome } from "./idempotency.ts";
import type { Activation } from "../contracts/index.ts";

/** OpenWhisk's header for the activation id (its web actions send it), and Vespid's own. */
export const ACTIVATION_ID_HEADERS = ["x-openwhisk-activation-id", "X-Vespid-Activation-Id"] as const;
/** The RFC 7240 preference that asks for the early headers. */
export const EARLY_ID_PREFERENCE = "early-activation-id";

/** Whether a `Prefer` header holds the preference (a list of `token[=value][; params]`). */
export function prefersEarlyId(prefer: string | undefined): boolean {
  if (!prefer) return false;
  return prefer.split(",").some((item) => item.split(/[;=]/)[0]!.trim().toLowerCase() === EARLY_ID_PREFERENCE);
}

/** The activation-id headers, and Idempotent-Replayed for a repeat (Stripe's name for it). */
export function idHeaders(activationId: string, replayed: boolean): Record<string, string> {
  return {
    ...Object.fromEntries(ACTIVATION_ID_HEADERS.map((name) => [name, activationId])),
    ...(replayed && { "Idempotent-Replayed": "true" }),
  };
}

/**
 * Starts `run` and answers 200 with the id headers once it is queued, the body when it ends.
 * Anything refused before queueing (400, 404, 429, 503…) still throws here, with its own status.
 */
export async function answerEarly(
  c: Context<GatewayEnv>,
  run: (options: InvokeOptions) => Promise<IdempotentOutcome>,
  waitMs: number,
  view: (activation: Activation) => unknown,
  logger: Logger,
): Promise<Response> {
  let queued!: (id: { activationId: string; replayed: boolean }) => void;
  const whenQueued = new Promise<{ activationId: string; replayed: boolean }>((resolve) => (queued = resolve));
  const outcome = run({ waitMs, onQueued: (activationId, replayed) => queued({ activationId, replayed: replayed ?? false }) });
  const { activationId, replayed } = await Promise.race([whenQueued, outcome]);
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      let text: string;
      try {
        const { activation } = await outcome;
        text = JSON.stringify(activation ? view(activation) : { activationId });
      } catch (err) {
        logger.error({ err, activationId }, "a blocking invocation failed after its headers were sent");
        text = JSON.stringify({ error: Messages.internal, code: c.get("requestId"), activationId });
      }
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });
  return c.body(body, 200, {
    "content-type": "application/json; charset=UTF-8",
    "preference-applied": EARLY_ID_PREFERENCE,
    ...idHeaders(activationId, replayed),
  });
}

// Queues invocations on JetStream and, for blocking callers, waits for the finished activation.
import type { JetStreamClient } from "@nats-io/jetstream";
import { randomHex } from "../infra/random-hex.ts";
import type { Logger } from "pino";
import { invokeSubject, jsonTextTooDeepAt, MAX_JSON_DEPTH, type Activation, type InvocationEvent } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";
import type { JetStreamStatus } from "./jetstream-status.ts";
import { INFLIGHT_LEASE_MS, type NamespaceLimiter } from "./limits.ts";
import type { ResultInbox } from "./result-inbox.ts";
import type { DirectDispatch } from "./direct-dispatch.ts";

export interface InvocationRequest {
  namespace: string;
  name: string;
  params: Record<string, unknown>;
  /** A binding's or pinned version's stored action, and a sequence's steps (see InvocationEvent). */
  target?: InvocationEvent["target"];
  sequence?: InvocationEvent["sequence"];
  /** `namespace/binding` when the action was named through a package binding. */
  binding?: InvocationEvent["binding"];
  actionRevision?: InvocationEvent["actionRevision"];
  /** The weakest tier that may run it; absent: any runner. */
  isolation?: InvocationEvent["isolation"];
  /** The HTTP request's id, for the log lines of the scheduler and runner (see InvocationEvent). */
  requestId?: string;
  /**
   * The activation id to use instead of a new random one: a trigger's rules derive theirs from
   * the fire, so a redelivered fire queues the same ids and JetStream drops the repeats.
   */
  activationId?: string;
}

export interface InvocationOutcome {
  activationId: string;
  /** Set when the caller waited and the activation finished in time. */
  activation?: Activation;
}

export interface InvokeOptions {
  /** Wait up to this long for the activation (a blocking call); absent: answer once queued. */
  waitMs?: number;
  /**
   * A blocking call may go straight to a runner (gateway/direct-dispatch.ts) instead of through
   * JetStream. Not for calls whose repeats rely on JetStream's duplicate window (Idempotency-Key).
   */
  direct?: boolean;
  /**
   * Called once the invocation is queued, before the wait: the id is known and will be recorded.
   * `replayed`: the id is an earlier request's (a repeated idempotency key).
   */
  onQueued?: (activationId: string, replayed?: boolean) => void;
}

export interface Invoker {
  /** Queues the invocation; with `waitMs`, also waits up to that long for its activation. */
  invoke(request: InvocationRequest, options: InvokeOptions): Promise<InvocationOutcome>;
  /**
   * Publishes an invocation whose activation id was handed out before (a repeated idempotency
   * key whose first request may not have reached the queue). Within the stream's duplicate
   * window JetStream stores a given id once, so this never queues a second run of an invocation
   * that was stored. Not counted against the limits: it is the first request's call. True when
   * JetStream already had it. A direct call whose runner was lost (gateway/direct-dispatch.ts)
   * comes here too, with its replyTo, `redelivered` and first publish time.
   */
  requeue(request: InvocationRequest & Pick<InvocationEvent, "activationId"> & Partial<Pick<InvocationEvent, "published" | "replyTo" | "redelivered">>): Promise<boolean>;
}

/**
 * The publish itself failed: JetStream may or may not have stored the invocation (an ack lost in a
 * timeout). An idempotency key keeps its activation id then, so a retry republishes that same id
 * (stored once by the duplicate window) instead of a new one (possibly a second run).
 */
export class MaybeQueuedError extends ApiError {
  override name = "MaybeQueuedError";
}

export interface InvokerOptions {
  /** JetStream's state as last checked: refuse at once (503) instead of a publish that would hang. */
  status?: JetStreamStatus;
  /** Blocking callers this invoker keeps waiting at once; more get 503 (bounds memory). */
  maxBlockingWaits?: number;
  /** The direct path for blocking calls; absent: every call goes through JetStream. */
  direct?: DirectDispatch;
}

/**
 * How long a publish may wait for JetStream's ack, ms. JetStream's state is checked before (a
 * disconnect or a known outage is refused without trying); this bounds the rest, e.g. a leader
 * lost mid-publish, well under the client's default of 5 s.
 */
export const PUBLISH_TIMEOUT_MS = 2_000;

export const newActivationId = (): string => randomHex(16);

/** What the Nats-Msg-Id header (and any the client adds) may take of a message's max_payload. */
const HEADER_ROOM = 1024;

/**
 * `maxPayload` is the NATS server's largest message: the event is measured against it here, so an
 * invocation too big to queue is the caller's 413 naming the bound, not a 503 blaming the queue.
 */
export function createInvoker(js: JetStreamClient, inbox: ResultInbox, logger: Logger, limiter?: NamespaceLimiter, maxPayload?: () => number, options: InvokerOptions = {}): Invoker {
  const { status, maxBlockingWaits = Infinity, direct } = options;
  /** Refuses fast, before anything is counted or published, when the queue cannot take it. */
  const checkQueue = () => {
    const refusal = status?.refusal();
    if (refusal) throw new ApiError(refusal.status, refusal.reason, { "Retry-After": String(refusal.retryAfter) });
  };
  const publish = async (subject: string, payload: Uint8Array, activationId: string) => {
    try {
      // The activation id doubles as the message id: a retried publish is stored only once.
      const ack = await js.publish(subject, payload, { msgID: activationId, timeout: PUBLISH_TIMEOUT_MS });
      status?.noteQueued();
      return ack.duplicate;
    } catch (err) {
      status?.noteFailure();
      logger.warn({ err, activationId }, "could not queue an invocation");
      throw new MaybeQueuedError(503, "the invocation could not be queued; try again later", { "Retry-After": "1" }, { cause: err });
    }
  };
  return {
    async requeue(request) {
      checkQueue();
      const event: InvocationEvent = { ...request, published: request.published ?? Date.now() };
      return publish(invokeSubject(request.namespace), new TextEncoder().encode(serialise(event)), request.activationId);
    },

    async invoke(request, { waitMs, onQueued, direct: mayGoDirect }) {
      checkQueue();
      if (waitMs !== undefined && inbox.waitingCount >= maxBlockingWaits) {
        throw new ApiError(503, `this gateway already waits for ${inbox.waitingCount} blocking invocations, its limit; try again shortly, or invoke without blocking and poll`, { "Retry-After": "1" });
      }
      const admission = limiter?.admit(request.namespace);
      if (admission && !admission.ok) throw new ApiError(429, admission.reason, { "Retry-After": String(admission.retryAfter) });
      const activationId = request.activationId ?? newActivationId();
      const pending = waitMs === undefined ? undefined : inbox.expect(activationId, waitMs, request.namespace);
      const directly = pending !== undefined && mayGoDirect === true && direct !== undefined;
      // The limits count running invocations, so the gateway hears of every end, not only the
      // blocking callers': the runner (or the scheduler giving up) sends each record to replyTo.
      // A direct call is answered for by this gateway until its record comes.
      if (admission || directly) {
        inbox.onFinished(activationId, () => {
          admission?.release();
          if (directly) direct.finished(activationId);
        }, INFLIGHT_LEASE_MS);
      }
      const event: InvocationEvent = {
        activationId,
        ...request,
        ...((pending || admission) && { replyTo: inbox.replySubject(activationId) }),
        published: Date.now(),
      };
      // Never queued: no record will come, so the waiter and the admission are released here.
      const abandon = () => {
        pending?.cancel();
        inbox.finished(activationId);
      };
      let payload: Uint8Array;
      try {
        payload = new TextEncoder().encode(serialise(event));
        const limit = maxPayload && maxPayload() - HEADER_ROOM;
        if (limit !== undefined && payload.length > limit) {
          throw new ApiError(413, `the invocation takes ${payload.length} bytes with its parameters and the action's default parameters, more than the limit of ${limit} bytes one queued invocation may carry`);
        }
      } catch (err) {
        abandon();
        throw err;
      }
      try {
        if (!(directly && (await direct.send(event, payload)))) await publish(invokeSubject(request.namespace), payload, activationId);
      } catch (err) {
        abandon();
        throw err;
      }
      onQueued?.(activationId);
      return { activationId, activation: await pending?.result };
    },
  };
}

/**
 * The event as queued, refused with a 400 naming the bound when its parameters nest deeper than
 * MAX_JSON_DEPTH. Request bodies are bounded already (body.ts), but default parameters come from
 * stored records, which may predate that bound; so runners and guests can count on it for every
 * event. Measured on the text, which is cheaper than walking the value: `params` opens at level 2
 * of the event, so the event may nest one level more than they may. (A sequence's steps hold theirs
 * at level 4, so theirs are held to two levels less; defaults stored through the API nest at most
 * MAX_JSON_DEPTH - 2, as they sit at level 4 of the body that stored them.)
 */
function serialise(event: InvocationEvent): string {
  const tooDeep = () =>
    new ApiError(400, `the parameters, with the action's default parameters, nest arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels`);
  let text: string;
  try {
    text = JSON.stringify(event);
  } catch (err) {
    // Only a stack overflow makes JSON.stringify throw a RangeError on a record parsed from JSON.
    if (err instanceof RangeError) throw tooDeep();
    throw err;
  }
  if (jsonTextTooDeepAt(text, MAX_JSON_DEPTH + 1) >= 0) throw tooDeep();
  return text;
}

// Queues invocations on JetStream and, for blocking callers, waits for the finished activation.
import { randomBytes } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { invokeSubject, type Activation, type InvocationEvent } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";
import { INFLIGHT_LEASE_MS, type NamespaceLimiter } from "./limits.ts";
import type { ResultInbox } from "./result-inbox.ts";

export interface InvocationRequest {
  namespace: string;
  name: string;
  params: Record<string, unknown>;
  /** A binding's or pinned version's stored action, and a sequence's steps (see InvocationEvent). */
  target?: InvocationEvent["target"];
  sequence?: InvocationEvent["sequence"];
  /** `namespace/binding` when the action was named through a package binding. */
  binding?: InvocationEvent["binding"];
  /** The weakest tier that may run it; absent: any runner. */
  isolation?: InvocationEvent["isolation"];
}

export interface InvocationOutcome {
  activationId: string;
  /** Set when the caller waited and the activation finished in time. */
  activation?: Activation;
}

export interface Invoker {
  /** Queues the invocation; with `waitMs`, also waits up to that long for its activation. */
  invoke(request: InvocationRequest, options: { waitMs?: number }): Promise<InvocationOutcome>;
}

export const newActivationId = (): string => randomBytes(16).toString("hex");

export function createInvoker(js: JetStreamClient, inbox: ResultInbox, logger: Logger, limiter?: NamespaceLimiter): Invoker {
  return {
    async invoke(request, { waitMs }) {
      const admission = limiter?.admit(request.namespace);
      if (admission && !admission.ok) throw new ApiError(429, admission.reason, { "Retry-After": String(admission.retryAfter) });
      const activationId = newActivationId();
      const pending = waitMs === undefined ? undefined : inbox.expect(activationId, waitMs);
      // The limits count running invocations, so the gateway hears of every end, not only the
      // blocking callers': the runner (or the scheduler giving up) sends each record to replyTo.
      if (admission) inbox.onFinished(activationId, admission.release, INFLIGHT_LEASE_MS);
      const event: InvocationEvent = {
        activationId,
        ...request,
        ...((pending || admission) && { replyTo: inbox.replySubject(activationId) }),
        published: Date.now(),
      };
      try {
        // The activation id doubles as the message id: a retried publish is stored only once.
        await js.publish(invokeSubject(request.namespace), JSON.stringify(event), { msgID: activationId });
      } catch (err) {
        pending?.cancel();
        inbox.finished(activationId);
        logger.warn({ err, activationId }, "could not queue an invocation");
        throw new ApiError(503, "the invocation could not be queued; try again later", {}, { cause: err });
      }
      return { activationId, activation: await pending?.result };
    },
  };
}

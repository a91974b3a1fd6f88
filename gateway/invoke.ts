// Queues invocations on JetStream and, for blocking callers, waits for the finished activation.
import { randomBytes } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { invokeSubject, type Activation, type InvocationEvent } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";
import type { ResultInbox } from "./result-inbox.ts";

export interface InvocationRequest {
  namespace: string;
  name: string;
  params: Record<string, unknown>;
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

export function createInvoker(js: JetStreamClient, inbox: ResultInbox, logger: Logger): Invoker {
  return {
    async invoke(request, { waitMs }) {
      const activationId = newActivationId();
      const pending = waitMs === undefined ? undefined : inbox.expect(activationId, waitMs);
      const event: InvocationEvent = {
        activationId,
        ...request,
        ...(pending && { replyTo: inbox.replySubject(activationId) }),
        published: Date.now(),
      };
      try {
        // The activation id doubles as the message id: a retried publish is stored only once.
        await js.publish(invokeSubject(request.namespace), JSON.stringify(event), { msgID: activationId });
      } catch (err) {
        pending?.cancel();
        logger.warn({ err, activationId }, "could not queue an invocation");
        throw new ApiError(503, "the invocation could not be queued; try again later", {}, { cause: err });
      }
      return { activationId, activation: await pending?.result };
    },
  };
}

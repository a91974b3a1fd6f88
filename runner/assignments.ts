// Invocations the scheduler assigns to this runner, on its own subject. The reply goes back once
// the activation is recorded, which is what lets the scheduler ack the event.
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { decodeMessage, InvocationEvent, runnerAssignSubject, type AssignmentReply } from "../contracts/index.ts";

export interface AssignmentService {
  /** Invocations running now. */
  readonly inflight: number;
  /** Takes no more assignments and waits for the running ones to finish. */
  close(): Promise<void>;
}

export interface AssignmentOptions {
  runnerId: string;
  capacity: number;
  run: (event: InvocationEvent) => Promise<AssignmentReply>;
  logger: Logger;
}

export function serveAssignments(nc: NatsConnection, opts: AssignmentOptions): AssignmentService {
  const running = new Set<Promise<void>>();

  const accept = (msg: Msg) => {
    const parsed = decodeMessage(InvocationEvent, msg.data);
    if (!parsed.success) {
      opts.logger.warn({ issues: parsed.error.issues }, "refusing a malformed assignment");
      return respond(msg, { ok: false, error: "malformed invocation event", retry: false });
    }
    // The scheduler's view of our load lags a heartbeat behind; refuse and let it place elsewhere.
    if (running.size >= opts.capacity) return respond(msg, { ok: false, error: "runner is full", retry: true });

    const event = parsed.data;
    const done = opts
      .run(event)
      .catch((err: unknown): AssignmentReply => {
        opts.logger.error({ err, activationId: event.activationId }, "assignment failed");
        return { ok: false, error: "the runner failed to run the invocation", retry: false };
      })
      .then((reply) => respond(msg, reply))
      .finally(() => running.delete(done));
    running.add(done);
  };

  const subscription = nc.subscribe(runnerAssignSubject(opts.runnerId), {
    callback: (err, msg) => (err ? opts.logger.error({ err }, "assignment subscription failed") : accept(msg)),
  });

  return {
    get inflight() {
      return running.size;
    },
    async close() {
      subscription.unsubscribe();
      await Promise.allSettled([...running]);
    },
  };
}

function respond(msg: Msg, reply: AssignmentReply): void {
  try {
    msg.respond(JSON.stringify(reply));
  } catch {
    // The connection closed under us: the scheduler's request times out and it retries.
  }
}

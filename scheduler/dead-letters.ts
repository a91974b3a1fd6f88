// Where an invocation goes once it has used up its retries: a DeadLetter in DEAD_LETTER_STREAM (one
// per activation, deduplicated by JetStream on the activation id), for users to list, read and
// replay (gateway/routes/dead-letters.ts). Its caller also gets a terminal record (scheduler/abandon.ts).
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { deadLetterSubject, type DeadLetter, type InvocationEvent } from "../contracts/index.ts";

export type DeadLetterWriter = (event: InvocationEvent, reason: string, attempts: number) => Promise<void>;

export function createDeadLetterWriter(nc: NatsConnection): DeadLetterWriter {
  const js = jetstream(nc);
  return async (event, reason, attempts) => {
    // The event as its publisher sent it: the scheduler's own marks do not belong in a replay.
    const { redelivered: _redelivered, ...published } = event;
    const letter: DeadLetter = { activationId: event.activationId, namespace: event.namespace, name: event.name, reason, attempts, failedAt: Date.now(), event: published };
    await js.publish(deadLetterSubject(event.namespace, event.activationId), JSON.stringify(letter), { msgID: `deadletter-${event.activationId}` });
  };
}

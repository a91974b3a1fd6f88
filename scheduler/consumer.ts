// The durable pull consumer all schedulers share: each invocation event goes to one of them.
import { AckPolicy, DeliverPolicy, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { INVOCATIONS_STREAM, SCHEDULER_CONSUMER } from "../contracts/index.ts";

/**
 * Unacked this long (ms), an event is redelivered: how long the events of a scheduler that died
 * wait. Schedulers call working() every WORKING_INTERVAL_MS on every event they hold, parked or leased.
 */
export const ACK_WAIT_MS = 5_000;
/**
 * No limit from JetStream: the scheduler counts deliveries itself (scheduler/retries.ts) and sends
 * an event that used up its retries to the dead letters with a record, where a server-side limit
 * would leave it in the stream, undelivered and unrecorded.
 */
export const MAX_DELIVER = -1;
/** Events handed out and not yet acked, across all schedulers. */
export const MAX_ACK_PENDING = 10_000;

const EDITABLE_CONFIG = {
  ack_wait: nanos(ACK_WAIT_MS),
  max_deliver: MAX_DELIVER,
  max_ack_pending: MAX_ACK_PENDING,
};

export async function ensureSchedulerConsumer(jsm: JetStreamManager): Promise<void> {
  try {
    // Idempotent when the consumer exists with this very config, which covers schedulers racing.
    await jsm.consumers.add(INVOCATIONS_STREAM, {
      durable_name: SCHEDULER_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ...EDITABLE_CONFIG,
    });
  } catch (err) {
    if (!(err instanceof JetStreamApiError)) throw err;
    // It exists with other settings (an older Vespid): bring ours back.
    await jsm.consumers.update(INVOCATIONS_STREAM, SCHEDULER_CONSUMER, EDITABLE_CONFIG);
  }
}

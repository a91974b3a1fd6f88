// The one way into the triggers component: every source of events (the API, webhooks, alarms,
// NATS subjects) publishes a FireEvent here and treats the fire as accepted once JetStream has
// stored it.
import type { JetStreamClient } from "@nats-io/jetstream";
import { fireSubject, FireEvent } from "../contracts/index.ts";

/**
 * Stores `fire` in FIRES_STREAM. Resolves once it is durable; publishing the same activationId
 * again within the stream's duplicate window is a no-op, so a caller may retry freely.
 */
export async function publishFire(js: JetStreamClient, fire: FireEvent): Promise<void> {
  const event = FireEvent.parse(fire);
  await js.publish(fireSubject(event.namespace), JSON.stringify(event), { msgID: event.activationId });
}

// Hands one invocation to one runner. The runner answers at once whether it took it; how the call
// goes comes later as notices (scheduler/lease-book.ts), and the runner's heartbeats are the lease.
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { AssignmentAck, DONE_TO_HEADER, runnerAssignSubject } from "../contracts/index.ts";

/**
 * How long the runner's answer (taken or refused) may take, ms. A lost answer costs no more than
 * this: the runner's heartbeats then say whether it holds the call.
 */
export const ACCEPT_TIMEOUT_MS = 2_000;
/** How often an event held here tells JetStream it is still being worked on, ms (well under the ack wait). */
export const WORKING_INTERVAL_MS = 1_500;

/**
 * What a runner is sent for an event: its bytes as published on a first delivery (no re-encoding
 * on the common path), or with `redelivered: true` once JetStream has delivered it before, so the
 * runner looks for an earlier record before running it. Only for events that decoded as JSON.
 */
export function assignmentPayload(data: Uint8Array, deliveryCount: number): Uint8Array {
  if (deliveryCount <= 1) return data;
  const event = JSON.parse(new TextDecoder().decode(data)) as Record<string, unknown>;
  return new TextEncoder().encode(JSON.stringify({ ...event, redelivered: true }));
}

/** Sends the assignment; resolves to the runner's answer, rejects when none comes (or nobody listens). */
export async function requestAssignment(nc: NatsConnection, runnerId: string, event: Uint8Array, noticeSubject: string): Promise<AssignmentAck> {
  const h = headers();
  h.set(DONE_TO_HEADER, noticeSubject);
  const reply = await nc.request(runnerAssignSubject(runnerId), event, { timeout: ACCEPT_TIMEOUT_MS, headers: h });
  return AssignmentAck.parse(reply.json());
}

// Hands one invocation to one runner and waits for the runner's answer, which comes once the
// activation is recorded: seconds to minutes later.
import type { NatsConnection } from "@nats-io/transport-node";
import { AssignmentReply, runnerAssignSubject } from "../contracts/index.ts";

/** Longest action timeout (300 s) plus room for an image build and recording the result, ms. */
export const ASSIGN_TIMEOUT_MS = 320_000;
/** How often a waiting assignment tells JetStream it is still being worked on, ms (< ack wait). */
export const WORKING_INTERVAL_MS = 10_000;

export class RunnerGoneError extends Error {
  override name = "RunnerGoneError";
  constructor(readonly runnerId: string) {
    super(`runner ${runnerId} stopped sending heartbeats`);
  }
}

export interface AssignmentWatch {
  /** Whether the runner still sends heartbeats; a silent one is not waited for any longer. */
  isLive: () => boolean;
  /** Called every WORKING_INTERVAL_MS while waiting, to hold on to the event. */
  working: () => void;
}

export async function requestAssignment(
  nc: NatsConnection,
  runnerId: string,
  event: Uint8Array,
  watch: AssignmentWatch,
): Promise<AssignmentReply> {
  let timer: NodeJS.Timeout | undefined;
  const runnerGone = new Promise<never>((_, reject) => {
    timer = setInterval(() => (watch.isLive() ? watch.working() : reject(new RunnerGoneError(runnerId))), WORKING_INTERVAL_MS);
  });
  const reply = nc.request(runnerAssignSubject(runnerId), event, { timeout: ASSIGN_TIMEOUT_MS });
  // If the runner is given up on first, the request's own late failure has nobody to tell.
  reply.catch(() => {});
  try {
    return AssignmentReply.parse((await Promise.race([reply, runnerGone])).json());
  } finally {
    clearInterval(timer);
  }
}

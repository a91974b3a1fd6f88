// The runners this scheduler knows of, from their heartbeats, and how many free slots each has.
import { RUNNER_EXPIRY_MS, type RunnerHeartbeat } from "../contracts/index.ts";

interface RunnerState {
  capacity: number;
  /** Local time of the last heartbeat: runner clocks may disagree with ours. */
  lastSeen: number;
  /** Assignments this scheduler has sent and not yet seen answered. */
  assigned: number;
  /** What other schedulers keep the runner busy with, estimated at its last heartbeat. */
  othersInflight: number;
}

export class RunnerTable {
  private readonly runners = new Map<string, RunnerState>();

  constructor(private readonly now: () => number = Date.now) {}

  observe(heartbeat: RunnerHeartbeat): void {
    const state = this.runners.get(heartbeat.runnerId);
    const assigned = state?.assigned ?? 0;
    this.runners.set(heartbeat.runnerId, {
      capacity: heartbeat.capacity,
      lastSeen: this.now(),
      assigned,
      // The runner counts our assignments too; whatever exceeds them is someone else's work.
      othersInflight: Math.max(0, heartbeat.inflight - assigned),
    });
  }

  isLive(runnerId: string): boolean {
    const state = this.runners.get(runnerId);
    return state !== undefined && this.now() - state.lastSeen < RUNNER_EXPIRY_MS;
  }

  /** The live runner with the most free slots, or undefined when none has one. */
  pickFreest(): string | undefined {
    let best: string | undefined;
    let bestFree = 0;
    for (const [runnerId, state] of this.runners) {
      const free = state.capacity - state.assigned - state.othersInflight;
      if (free > bestFree && this.isLive(runnerId)) [best, bestFree] = [runnerId, free];
    }
    return best;
  }

  reserve(runnerId: string): void {
    const state = this.runners.get(runnerId);
    if (state) state.assigned++;
  }

  release(runnerId: string): void {
    const state = this.runners.get(runnerId);
    if (state) state.assigned = Math.max(0, state.assigned - 1);
  }

  /** The runner refused work for lack of room: count it full until its next heartbeat says otherwise. */
  markFull(runnerId: string): void {
    const state = this.runners.get(runnerId);
    if (state) state.othersInflight = Math.max(0, state.capacity - state.assigned);
  }

  /** Nobody listens on the runner's subject any more: it is gone, whatever its last heartbeat said. */
  forget(runnerId: string): void {
    const state = this.runners.get(runnerId);
    if (state) state.lastSeen = -Infinity;
  }

  /** Forgets runners gone silent once nothing of ours is outstanding on them. */
  prune(): void {
    for (const [runnerId, state] of this.runners) {
      if (state.assigned === 0 && !this.isLive(runnerId)) this.runners.delete(runnerId);
    }
  }
}

// The runners this scheduler knows of, from their heartbeats: how many free slots each has, and
// which isolation tier it runs invocations on.
import { RUNNER_EXPIRY_MS, satisfiesIsolation, type Isolation, type RunnerHeartbeat } from "../contracts/index.ts";

interface RunnerState {
  capacity: number;
  isolation: Isolation;
  /** Local time of the last heartbeat: runner clocks may disagree with ours. */
  lastSeen: number;
  /** Assignments this scheduler has sent and not yet seen answered. */
  assigned: number;
  /** What other schedulers keep the runner busy with, estimated at its last heartbeat. */
  othersInflight: number;
}

export class RunnerTable {
  private readonly runners = new Map<string, RunnerState>();
  /** Per tier, the local time of the last heartbeat any runner of it sent (kept after pruning). */
  private readonly tierSeen = new Map<Isolation, number>();

  constructor(private readonly now: () => number = Date.now) {}

  observe(heartbeat: RunnerHeartbeat): void {
    const state = this.runners.get(heartbeat.runnerId);
    const assigned = state?.assigned ?? 0;
    // A heartbeat without a tier comes from a runner older than tiers: those ran virtines only.
    const isolation = heartbeat.isolation ?? "kvm";
    const now = this.now();
    this.runners.set(heartbeat.runnerId, {
      capacity: heartbeat.capacity,
      isolation,
      lastSeen: now,
      assigned,
      // The runner counts our assignments too; whatever exceeds them is someone else's work.
      othersInflight: Math.max(0, heartbeat.inflight - assigned),
    });
    this.tierSeen.set(isolation, now);
  }

  isLive(runnerId: string): boolean {
    const state = this.runners.get(runnerId);
    return state !== undefined && this.now() - state.lastSeen < RUNNER_EXPIRY_MS;
  }

  /**
   * The live runner with the most free slots among those that satisfy `required` (absent: any),
   * or undefined when none has one.
   */
  pickFreest(required?: Isolation): string | undefined {
    let best: string | undefined;
    let bestFree = 0;
    for (const [runnerId, state] of this.runners) {
      const free = state.capacity - state.assigned - state.othersInflight;
      if (free > bestFree && satisfiesIsolation(state.isolation, required) && this.isLive(runnerId)) [best, bestFree] = [runnerId, free];
    }
    return best;
  }

  /**
   * Whether some runner that satisfies `required` has been heard from within the last `withinMs`
   * (a runner restarting, or not yet heard by a scheduler that just started, still counts).
   */
  tierHeardWithin(required: Isolation, withinMs: number): boolean {
    const now = this.now();
    for (const [tier, seen] of this.tierSeen) {
      if (satisfiesIsolation(tier, required) && now - seen < withinMs) return true;
    }
    return false;
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

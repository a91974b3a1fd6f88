// The runners this scheduler knows of, from their heartbeats: how many free slots each has, which
// isolation tier it runs invocations on, and which activations it holds (the leases).
import { RUNNER_EXPIRY_MS, satisfiesIsolation, type Isolation, type RunnerHeartbeat } from "../contracts/index.ts";

interface RunnerState {
  capacity: number;
  isolation: Isolation;
  /** Local time of the last heartbeat: runner clocks may disagree with ours. */
  lastSeen: number;
  /** Assignments this scheduler has sent and not yet seen answered. */
  assigned: number;
  /** Calls the runner lets wait for a slot (0: it takes no direct calls from gateways). */
  queueLimit: number;
  /** What others (schedulers, gateways) keep running or waiting there, estimated at its last heartbeat. */
  othersLoad: number;
  /** The last heartbeat's count (RunnerHeartbeat.seq), 0 for runners that send none. */
  seq: number;
  /** Activations the last heartbeat said the runner holds; undefined for runners that list none. */
  holds: Set<string> | undefined;
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
      queueLimit: heartbeat.queueLimit ?? 0,
      // The runner counts our calls too; whatever exceeds them is someone else's work.
      othersLoad: Math.max(0, heartbeat.inflight + (heartbeat.queued ?? 0) - assigned),
      seq: heartbeat.seq ?? 0,
      holds: heartbeat.activations && new Set(heartbeat.activations),
    });
    this.tierSeen.set(isolation, now);
  }

  isLive(runnerId: string): boolean {
    const state = this.runners.get(runnerId);
    return state !== undefined && this.now() - state.lastSeen < RUNNER_EXPIRY_MS;
  }

  /**
   * The live runner that satisfies `required` (absent: any) with the most free slots, or, when
   * none has a free slot, with the most room in its queue (RunnerHeartbeat.queueLimit: calls it
   * lets wait for a slot, first come first served, whoever sent them); undefined when none has
   * room. A scheduler keeps at most one call per slot waiting in a runner's queue — enough that
   * its calls take their turn among a gateway's direct calls, not so many that a burst piles onto
   * the first runner it heard of; `direct` (a gateway's blocking calls) may fill the queue, and
   * only runners with a queue take those.
   */
  pickFreest(required?: Isolation, { direct = false } = {}): string | undefined {
    let best: string | undefined;
    let bestIdle = 0;
    let bestRoom = 0;
    for (const [runnerId, state] of this.runners) {
      if (direct && state.queueLimit === 0) continue;
      const load = state.assigned + state.othersLoad;
      const idle = state.capacity - load;
      const room = idle + (direct ? state.queueLimit : Math.min(state.queueLimit, state.capacity));
      if (room <= 0 || !satisfiesIsolation(state.isolation, required) || !this.isLive(runnerId)) continue;
      const better = idle > 0 ? idle > bestIdle : bestIdle <= 0 && room > bestRoom;
      if (better) [best, bestIdle, bestRoom] = [runnerId, idle, room];
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

  /** The live runner whose last heartbeat lists `activationId`, if any. */
  holder(activationId: string): string | undefined {
    for (const [runnerId, state] of this.runners) {
      if (state.holds?.has(activationId) && this.isLive(runnerId)) return runnerId;
    }
    return undefined;
  }

  /** Whether the runner's last heartbeat listed `activationId`; undefined when it lists nothing (an older runner). */
  holds(runnerId: string, activationId: string): boolean | undefined {
    return this.runners.get(runnerId)?.holds?.has(activationId);
  }

  /** The count of the runner's last heartbeat (0 when unknown). */
  seq(runnerId: string): number {
    return this.runners.get(runnerId)?.seq ?? 0;
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
    if (state) state.othersLoad = Math.max(0, state.capacity - state.assigned) + state.queueLimit;
  }

  /** Nobody listens on the runner's subject any more: it is gone, whatever its last heartbeat said. */
  forget(runnerId: string): void {
    const state = this.runners.get(runnerId);
    if (state) state.lastSeen = -Infinity;
  }

  /**
   * This scheduler's own connection dropped or came back: heartbeats it could not hear say nothing
   * about the runners, so each gets a full expiry from now before it counts as gone.
   */
  excuseSilence(): void {
    const now = this.now();
    for (const state of this.runners.values()) if (state.lastSeen !== -Infinity) state.lastSeen = Math.max(state.lastSeen, now);
  }

  /** Forgets runners gone silent once nothing of ours is outstanding on them. */
  prune(): void {
    for (const [runnerId, state] of this.runners) {
      if (state.assigned === 0 && !this.isLive(runnerId)) this.runners.delete(runnerId);
    }
  }
}

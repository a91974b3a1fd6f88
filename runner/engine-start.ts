// Opening the engine without letting a failure kill the runner: an engine that cannot start leaves
// the runner up but unhealthy (runner/health.ts), and every probe tries to open it again.
//
// Test hook, documented in docs/architecture.md: VESPID_UNAVAILABLE_TIERS (comma-separated tiers)
// makes opening an engine of a listed tier fail, as on a host whose /dev/kvm or sandboxing went
// away. It is read at each attempt, so clearing it lets the next probe open the engine.
import type { Engine, EngineOutcome, EngineRequest, EngineStats, Isolation } from "./engine.ts";

export const UNAVAILABLE_TIERS_ENV = "VESPID_UNAVAILABLE_TIERS";

const NO_STATS: EngineStats = { hits: 0, misses: 0, coldStarts: 0, evictions: 0, snapshots: 0, bytes: 0, idleVms: 0, snapshotBytes: 0 };

/** Why `tier` is forced unavailable by VESPID_UNAVAILABLE_TIERS, or undefined. */
export function forcedUnavailable(tier: Isolation, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const listed = (env[UNAVAILABLE_TIERS_ENV] ?? "").split(",").map((s) => s.trim());
  return listed.includes(tier) ? `isolation ${tier} is forced unavailable (${UNAVAILABLE_TIERS_ENV})` : undefined;
}

/** An outcome for a call no engine could take: the host's fault, never the action's. */
export function hostFailure(error: string): EngineOutcome {
  return { status: "internal", error, logRecords: Buffer.alloc(0), logs: [], logsTruncated: false, micros: 0, coldStart: false };
}

/** The engine of `isolation`, opened with `open` now and, after a failure, again at the next call. */
export class ReopeningEngine implements Engine {
  private engine: Engine | undefined;

  constructor(
    readonly isolation: Isolation,
    private readonly open: () => Engine,
  ) {
    this.tryOpen();
  }

  /** Opens the engine unless it is open; why it could not, or undefined. */
  tryOpen(): string | undefined {
    if (this.engine) return undefined;
    const forced = forcedUnavailable(this.isolation);
    if (forced) return forced;
    try {
      this.engine = this.open();
      return undefined;
    } catch (err) {
      return `the engine did not start: ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  async run(req: EngineRequest): Promise<EngineOutcome> {
    const why = this.tryOpen();
    return why === undefined ? this.engine!.run(req) : hostFailure(why);
  }

  stats(): EngineStats {
    return this.engine?.stats() ?? NO_STATS;
  }

  close(): void {
    this.engine?.close();
    this.engine = undefined;
  }
}

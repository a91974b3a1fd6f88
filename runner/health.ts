// Whether this runner's engine can run anything. A runner whose engine did not start, or whose
// calls keep failing on the host's side ("internal": the guest could not even be started), would
// otherwise draw work from every scheduler and fail it all as the user's fault. Unhealthy, it
// announces capacity 0 with the reason and takes nothing, and a probe call tries the engine every
// PROBE_INTERVAL_MS until one succeeds.
import type { Logger } from "pino";
import type { Engine, EngineOutcome, EngineRequest } from "./engine.ts";

/** Host-side failures in a row that take the runner out of service. */
export const INTERNAL_FAILURES_BEFORE_UNHEALTHY = 3;
/** How often an unhealthy runner tries its probe call, ms. */
export const PROBE_INTERVAL_MS = 2_000;

/** Runs one call that must succeed on a working engine; resolves to why not, or undefined when it did. */
export type Probe = () => Promise<string | undefined>;

export class RunnerHealth {
  private why: string | undefined;
  private failuresInARow = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly probe: Probe,
    private readonly logger: Logger,
    /** Called when the runner turns unhealthy or healthy again. */
    private readonly onChange: () => void = () => undefined,
  ) {}

  /** Why the runner takes no work, or undefined when it is healthy. */
  get unhealthy(): string | undefined {
    return this.why;
  }

  /** Probes at once: a runner starts unhealthy when its engine cannot run the probe call. */
  async check(): Promise<void> {
    let why: string | undefined;
    try {
      why = await this.probe();
    } catch (err) {
      why = err instanceof Error ? err.message : String(err);
    }
    if (this.stopped) return;
    if (why === undefined) {
      this.failuresInARow = 0;
      if (this.why === undefined) return;
      this.logger.info({ was: this.why }, "the engine works again: taking work");
      this.why = undefined;
      this.onChange();
    } else {
      this.markUnhealthy(`the engine's probe call failed: ${why}`);
    }
  }

  /** Counts host-side failures of real calls; any other outcome shows the engine works. */
  observe(outcome: EngineOutcome): void {
    if (outcome.status !== "internal") {
      this.failuresInARow = 0;
      return;
    }
    if (++this.failuresInARow >= INTERNAL_FAILURES_BEFORE_UNHEALTHY && this.why === undefined) {
      this.markUnhealthy(`${this.failuresInARow} calls in a row failed on the host: ${outcome.error ?? "internal error"}`);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.probeTimer);
  }

  private markUnhealthy(why: string): void {
    const was = this.why;
    this.why = why;
    if (was === undefined) {
      this.logger.error({ why }, "runner unhealthy: taking no work until a probe call succeeds");
      this.onChange();
    }
    if (this.probeTimer || this.stopped) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      // check() re-arms the timer while the probe keeps failing.
      void this.check();
    }, PROBE_INTERVAL_MS);
  }
}

/** The engine with every outcome shown to `health` on its way back. */
export function observedEngine(engine: Engine, health: RunnerHealth): Engine {
  return {
    get isolation() {
      return engine.isolation;
    },
    async run(req: EngineRequest) {
      const outcome = await engine.run(req);
      health.observe(outcome);
      return outcome;
    },
    stats: () => engine.stats(),
    close: () => engine.close(),
  };
}

// What bench/load.ts counts while it runs and how it summarises it: latencies (all kept: at a few
// thousand calls a second for a minute that is a few MB, and exact percentiles need no histogram),
// answers by status, cold and warm calls from the records' annotations.

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** Nearest-rank percentiles of `samples` (ms). */
export function summarise(samples: number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    meanMs: round(sum / sorted.length),
    p50Ms: round(at(0.5)),
    p90Ms: round(at(0.9)),
    p99Ms: round(at(0.99)),
    p999Ms: round(at(0.999)),
    maxMs: round(sorted[sorted.length - 1]!),
  };
}

export const round = (v: number, digits = 3): number => Number(v.toFixed(digits));

/** Counts of one measured phase. `status` is the HTTP status, or `error: <message>` for no answer. */
export class Tally {
  readonly latencies: number[] = [];
  readonly byStatus = new Map<string, number>();
  /** Answers whose status was the expected one (200 blocking, 202 non-blocking). */
  ok = 0;
  /** Records seen with an `initTime` annotation (a cold start), and without one. */
  cold = 0;
  warm = 0;
  /** Non-blocking: activation ids to look up at the end (a uniform sample, see `keepId`). */
  readonly ids: string[] = [];
  private idsSeen = 0;

  constructor(private readonly maxIds = 0) {}

  add(status: string, ms: number, ok: boolean): void {
    this.latencies.push(ms);
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    if (ok) this.ok++;
  }

  /** Counts a record's start: cold when the runner annotated it with initTime. */
  addRecord(record: { annotations?: Array<{ key: string; value: unknown }> }): void {
    if (record.annotations?.some((a) => a.key === "initTime")) this.cold++;
    else this.warm++;
  }

  /** Reservoir sampling: every accepted id has the same chance to be checked, however many there are. */
  keepId(id: string): void {
    this.idsSeen++;
    if (this.ids.length < this.maxIds) this.ids.push(id);
    else {
      const slot = Math.floor(Math.random() * this.idsSeen);
      if (slot < this.maxIds) this.ids[slot] = id;
    }
  }

  get calls(): number {
    return this.latencies.length;
  }

  get errors(): number {
    return this.calls - this.ok;
  }
}

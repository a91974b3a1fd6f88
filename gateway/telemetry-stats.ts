// The figures of GET /api/v1/stats, computed from runners' metrics (runner/metrics.ts): a sample
// is what one runner's registry said at one moment, reduced to what the stats need; two samples
// of the same runner, ~10 s apart, give rates and percentiles over that window. Pure functions.
import type { MetricObjectWithValues, MetricValue } from "prom-client";

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

/** One namespace's cumulative figures on one runner. */
export interface NamespaceSample {
  total: number;
  errors: number;
  cold: number;
  warm: number;
  /** Cumulative bucket counts of the duration and wait histograms, by upper bound (seconds; +Inf as Infinity). */
  duration: Map<number, number>;
  wait: Map<number, number>;
}

/** What one runner's registry said at `at`. */
export interface RunnerSample {
  at: number;
  namespaces: Map<string, NamespaceSample>;
  poolHits: number;
  poolMisses: number;
  initSum: number;
  initCount: number;
  cpuSeconds: number;
  rssBytes: number;
  heapUsedBytes: number;
  activeVirtines: number;
  idleVirtines: number;
}

const emptyNamespace = (): NamespaceSample => ({ total: 0, errors: 0, cold: 0, warm: 0, duration: new Map(), wait: new Map() });

function values(metrics: Metrics, name: string): MetricValue<string>[] {
  return metrics.find((m) => m.name === name)?.values ?? [];
}

const sum = (vs: MetricValue<string>[], metricName?: string): number =>
  vs.reduce((n, v) => n + (metricName === undefined || (v as { metricName?: string }).metricName === metricName ? v.value : 0), 0);

const le = (v: MetricValue<string>): number => {
  const bound = v.labels.le;
  return bound === "+Inf" ? Infinity : Number(bound);
};

/** A runner's metrics JSON reduced to a sample. */
export function sampleOf(metrics: Metrics, at: number): RunnerSample {
  const namespaces = new Map<string, NamespaceSample>();
  const ns = (name: unknown) => {
    const key = String(name);
    let s = namespaces.get(key);
    if (!s) namespaces.set(key, (s = emptyNamespace()));
    return s;
  };
  for (const v of values(metrics, "vespid_activations_total")) {
    const s = ns(v.labels.namespace);
    s.total += v.value;
    if (v.labels.status !== "success") s.errors += v.value;
  }
  for (const v of values(metrics, "vespid_activation_starts_total")) {
    const s = ns(v.labels.namespace);
    if (v.labels.start === "cold") s.cold += v.value;
    else if (v.labels.start === "warm") s.warm += v.value;
  }
  for (const [metric, field] of [["vespid_activation_duration_seconds", "duration"], ["vespid_activation_wait_seconds", "wait"]] as const) {
    for (const v of values(metrics, metric)) {
      if ((v as { metricName?: string }).metricName !== `${metric}_bucket`) continue;
      const buckets = ns(v.labels.namespace)[field];
      buckets.set(le(v), (buckets.get(le(v)) ?? 0) + v.value);
    }
  }
  const init = values(metrics, "vespid_activation_init_seconds");
  return {
    at,
    namespaces,
    poolHits: sum(values(metrics, "vespid_pool_hits_total")),
    poolMisses: sum(values(metrics, "vespid_pool_misses_total")),
    initSum: sum(init, "vespid_activation_init_seconds_sum"),
    initCount: sum(init, "vespid_activation_init_seconds_count"),
    cpuSeconds: sum(values(metrics, "process_cpu_seconds_total")),
    rssBytes: sum(values(metrics, "process_resident_memory_bytes")),
    heapUsedBytes: sum(values(metrics, "nodejs_heap_size_used_bytes")),
    activeVirtines: sum(values(metrics, "vespid_virtines_active")),
    idleVirtines: sum(values(metrics, "vespid_virtines_idle")),
  };
}

/** How much a counter grew from `before` to `now`; a counter that went down restarted: from zero. */
export const grown = (now: number, before: number): number => (now >= before ? now - before : now);

/** Bucket counts added between two samples of one histogram (all from zero if any went down: a restart). */
export function grownBuckets(now: Map<number, number>, before: Map<number, number> | undefined): Map<number, number> {
  const restarted = before !== undefined && [...now].some(([bound, n]) => n < (before.get(bound) ?? 0));
  if (!before || restarted) return new Map(now);
  return new Map([...now].map(([bound, n]) => [bound, n - (before.get(bound) ?? 0)]));
}

/** Adds `from`'s counts into `into`. */
export function addBuckets(into: Map<number, number>, from: Map<number, number>): void {
  for (const [bound, n] of from) into.set(bound, (into.get(bound) ?? 0) + n);
}

/**
 * The q-quantile of cumulative histogram buckets, as Prometheus's histogram_quantile computes it:
 * linear within the bucket that holds it (from 0 for the first); in the +Inf bucket, the largest
 * finite bound. Undefined when the histogram counted nothing.
 */
export function quantile(q: number, buckets: Map<number, number>): number | undefined {
  const sorted = [...buckets].sort(([a], [b]) => a - b);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      if (count === lowerCount) return bound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

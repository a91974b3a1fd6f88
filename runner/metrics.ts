// A runner's Prometheus metrics (prom-client): what each activation record says (counts, times,
// CPU, peak memory, warm or cold), the engine's pool counters, slot and virtine gauges, and the
// process's default metrics. Recording an activation is a few counter increments on the record
// the runner writes anyway; the registry goes out as gzipped JSON once a second on
// runnerMetricsSubject (not per activation), and the gateways merge the runners' registries for
// GET /metrics and GET /api/v1/stats (gateway/telemetry.ts, docs/telemetry.md).
import { gzipSync } from "node:zlib";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { METRICS_INTERVAL_MS, runnerMetricsSubject, type Activation, type ActivationStatus, type Isolation } from "../contracts/index.ts";
import type { Engine, EngineStats } from "./engine.ts";

/** Distinct (namespace, action) label pairs a runner keeps before folding the rest into `_other`. */
export const DEFAULT_MAX_ACTION_LABELS = 200;
/** Distinct namespaces a runner keeps as labels; beyond, namespace `_other` too. */
export const MAX_NAMESPACE_LABELS = 100;
/** The label value that stands for every name beyond the caps. */
export const OTHER_LABEL = "_other";

/** Activation statuses as label values: short, no spaces. */
export const STATUS_LABELS: Record<ActivationStatus, string> = {
  success: "success",
  "application error": "application_error",
  "action developer error": "developer_error",
  "whisk internal error": "system_error",
};

/** Seconds: from a warm echo (tens of µs) to the longest timeout (300 s). */
const TIME_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Bytes: 1 MiB to 512 MiB, the largest memory limit. */
const MEMORY_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((mib) => mib * 1024 * 1024);

export interface RunnerMetricsOptions {
  runnerId: string;
  isolation: Isolation;
  capacity: number;
  /** VESPID_METRICS_MAX_ACTIONS: (namespace, action) pairs kept as labels. */
  maxActions?: number;
  /** Slots in use now (AssignmentService.inflight). */
  inflight?: () => number;
  engineStats?: () => EngineStats;
}

type Annotations = Activation["annotations"];

export class RunnerMetrics {
  readonly registry = new Registry();
  private readonly maxActions: number;
  private readonly pairs = new Set<string>();
  private readonly namespaces = new Set<string>();
  private active = 0;
  private readonly activations: Counter<"namespace" | "action" | "status" | "tier">;
  private readonly starts: Counter<"namespace" | "action" | "start">;
  private readonly duration: Histogram<"namespace" | "action">;
  private readonly wait: Histogram<"namespace" | "action">;
  private readonly init: Histogram<"namespace" | "action">;
  private readonly cpu: Histogram<"namespace" | "action">;
  private readonly memory: Histogram<"namespace" | "action">;
  /** Slots in use now; set once the runner serves assignments. */
  inflight: () => number;
  /** The engine's pool counters; set once the runner has its engine. */
  engineStats: () => EngineStats | undefined;

  constructor(private readonly opts: RunnerMetricsOptions) {
    this.maxActions = opts.maxActions ?? DEFAULT_MAX_ACTION_LABELS;
    this.inflight = opts.inflight ?? (() => 0);
    this.engineStats = opts.engineStats ?? (() => undefined);
    const registers = [this.registry];
    // Every series says which runner it is from, so the gateway's merge keeps runners apart.
    this.registry.setDefaultLabels({ runner: opts.runnerId });
    collectDefaultMetrics({ register: this.registry });
    const pair = ["namespace", "action"] as const;
    this.activations = new Counter({ name: "vespid_activations_total", help: "Activations recorded, by namespace, action, status and isolation tier", labelNames: [...pair, "status", "tier"], registers });
    this.starts = new Counter({ name: "vespid_activation_starts_total", help: "Activations that ran in a guest, by how it started: warm (from a snapshot VM) or cold (booted and initialised)", labelNames: [...pair, "start"], registers });
    this.duration = new Histogram({ name: "vespid_activation_duration_seconds", help: "Activation duration (end - start of the record)", labelNames: pair, buckets: TIME_BUCKETS, registers });
    this.wait = new Histogram({ name: "vespid_activation_wait_seconds", help: "Activation waitTime: accepted by the gateway to started on the runner", labelNames: pair, buckets: TIME_BUCKETS, registers });
    this.init = new Histogram({ name: "vespid_activation_init_seconds", help: "Cold starts' initTime: boot, init and run of the call that took the snapshot", labelNames: pair, buckets: TIME_BUCKETS, registers });
    this.cpu = new Histogram({ name: "vespid_activation_cpu_seconds", help: "CPU time an activation consumed (vCPU thread; process tier: plus the sandbox's)", labelNames: pair, buckets: TIME_BUCKETS, registers });
    this.memory = new Histogram({ name: "vespid_activation_memory_peak_bytes", help: "Peak guest memory of an activation (image, heap and mmap at their largest)", labelNames: pair, buckets: MEMORY_BUCKETS, registers });

    const self = this;
    // A scrape must not fail on an engine that cannot answer.
    const readStats = (): EngineStats | undefined => {
      try {
        return self.engineStats();
      } catch {
        return undefined;
      }
    };
    const engineCounter = (name: string, help: string, field: keyof EngineStats) =>
      new Counter({
        name, help, registers,
        // The engine keeps the count; a scrape copies it.
        collect() {
          const stats = readStats();
          this.reset();
          if (stats) this.inc(stats[field]);
        },
      });
    engineCounter("vespid_pool_hits_total", "Calls that found an idle VM of their snapshot", "hits");
    engineCounter("vespid_pool_misses_total", "Calls that built a VM from an existing snapshot", "misses");
    engineCounter("vespid_pool_cold_starts_total", "Calls that booted their guest and took its snapshot", "coldStarts");
    engineCounter("vespid_pool_evictions_total", "Snapshots evicted to stay within the pool's memory budget", "evictions");
    const gauge = (name: string, help: string, read: () => number | undefined, labels?: Record<string, string>) =>
      new Gauge({
        name, help, registers, labelNames: labels ? Object.keys(labels) : [],
        collect() {
          const v = read();
          if (v !== undefined) (labels ? this.set(labels, v) : this.set(v));
        },
      });
    gauge("vespid_virtines_active", "Guests (virtines or sandboxes) running a call now", () => this.active);
    gauge("vespid_virtines_idle", "Idle VMs kept warm in the snapshot pool", () => readStats()?.idleVms);
    gauge("vespid_pool_snapshots", "Snapshots in the pool", () => readStats()?.snapshots);
    gauge("vespid_pool_bytes", "Memory held by snapshots and idle VMs, bytes", () => readStats()?.bytes);
    gauge("vespid_runner_capacity", "Invocations the runner runs at once", () => opts.capacity);
    gauge("vespid_runner_inflight", "Invocations running now (slots in use)", () => this.inflight());
    gauge("vespid_runner_info", "Always 1: the runner and its isolation tier", () => 1, { isolation: opts.isolation });
  }

  /** The engine with each run counted as an active virtine while it runs. */
  countRuns(engine: Engine): Engine {
    const self = this;
    return {
      get isolation() {
        return engine.isolation;
      },
      async run(req) {
        self.active++;
        try {
          return await engine.run(req);
        } finally {
          self.active--;
        }
      },
      stats: () => engine.stats(),
      close: () => engine.close(),
    };
  }

  /** Labels for a (namespace, action), within the caps (see DEFAULT_MAX_ACTION_LABELS). */
  labels(namespace: string, action: string): { namespace: string; action: string } {
    if (!this.namespaces.has(namespace)) {
      if (this.namespaces.size >= MAX_NAMESPACE_LABELS) return { namespace: OTHER_LABEL, action: OTHER_LABEL };
      this.namespaces.add(namespace);
    }
    const key = `${namespace}\u0000${action}`;
    if (!this.pairs.has(key)) {
      if (this.pairs.size >= this.maxActions) return { namespace, action: OTHER_LABEL };
      this.pairs.add(key);
    }
    return { namespace, action };
  }

  /** Counts one activation record (called by the recorder for every record it stores). */
  observe(activation: Pick<Activation, "namespace" | "name" | "duration" | "response" | "annotations">): void {
    const labels = this.labels(activation.namespace, activation.name);
    this.activations.inc({ ...labels, status: STATUS_LABELS[activation.response.status] ?? "system_error", tier: this.opts.isolation });
    if (typeof activation.duration === "number") this.duration.observe(labels, activation.duration / 1000);
    const figures = readFigures(activation.annotations);
    if (figures.waitTime !== undefined) this.wait.observe(labels, figures.waitTime / 1000);
    if (figures.initTime !== undefined) this.init.observe(labels, figures.initTime / 1000);
    if (figures.cpuTime !== undefined) this.cpu.observe(labels, figures.cpuTime / 1000);
    if (figures.memoryPeak !== undefined) this.memory.observe(labels, figures.memoryPeak);
    // Only a record of a call that ran in a guest has `warm` (not sequences, nor failures before the engine).
    if (figures.warm !== undefined) this.starts.inc({ ...labels, start: figures.warm ? "warm" : "cold" });
  }

  /**
   * Publishes the registry every METRICS_INTERVAL_MS until stopped. A registry larger than the
   * server takes in one message is not sent (said once in the log).
   */
  publish(nc: NatsConnection, logger: Logger): { stop(): void } {
    const subject = runnerMetricsSubject(this.opts.runnerId);
    let busy = false;
    let warned = false;
    const send = async () => {
      if (busy) return;
      busy = true;
      try {
        const data = gzipSync(JSON.stringify(await this.registry.getMetricsAsJSON()));
        const max = nc.info?.max_payload ?? 1024 * 1024;
        if (data.length > max) {
          if (!warned) logger.warn({ bytes: data.length, max }, "the runner's metrics exceed a NATS message: not published (lower VESPID_METRICS_MAX_ACTIONS)");
          warned = true;
          return;
        }
        nc.publish(subject, data);
      } catch (err) {
        // A closed connection (the runner is on its way out), or a failing collect: never fatal.
        if (!nc.isClosed()) logger.debug({ err }, "could not publish the runner's metrics");
      } finally {
        busy = false;
      }
    };
    void send();
    const timer = setInterval(() => void send(), METRICS_INTERVAL_MS);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }
}

interface Figures {
  waitTime?: number;
  initTime?: number;
  cpuTime?: number;
  memoryPeak?: number;
  warm?: boolean;
}

/** The numeric figures among a record's annotations (runner/activation.ts writes them). */
function readFigures(annotations: Annotations | undefined): Figures {
  const out: Figures = {};
  for (const { key, value } of annotations ?? []) {
    if (key === "warm" && typeof value === "boolean") out.warm = value;
    else if (typeof value !== "number" || !Number.isFinite(value)) continue;
    else if (key === "waitTime") out.waitTime = value;
    else if (key === "initTime") out.initTime = value;
    else if (key === "cpuTime") out.cpuTime = value;
    else if (key === "memoryPeak") out.memoryPeak = value;
  }
  return out;
}

/** VESPID_METRICS_MAX_ACTIONS as a positive integer, or the default. */
export function maxActionLabels(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.VESPID_METRICS_MAX_ACTIONS;
  if (raw === undefined || raw === "") return DEFAULT_MAX_ACTION_LABELS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`VESPID_METRICS_MAX_ACTIONS must be a positive integer, got "${raw}"`);
  return n;
}

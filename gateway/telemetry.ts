// The gateway's telemetry: its own prom-client registry (HTTP requests, invocations accepted and
// refused, blocking waits, its process), the latest metrics of every live runner (published on
// runnerMetricsSubject once a second, runner/metrics.ts), merged with AggregatorRegistry for
// GET /metrics, and a once-a-second history of per-runner samples for GET /api/v1/stats
// (gateway/telemetry-stats.ts). Nothing here is on an invocation's path but two counter
// increments (countInvocations) and one per HTTP request (countRequests).
import { gunzipSync } from "node:zlib";
import type { NatsConnection } from "@nats-io/transport-node";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import { METRICS_INTERVAL_MS, RUNNER_EXPIRY_MS, RUNNER_METRICS_SUBJECT_PREFIX, type PlatformStats, type RunnerStats } from "../contracts/index.ts";
import type { GatewayEnv } from "./env.ts";
import { ApiError } from "./errors.ts";
import type { Invoker } from "./invoke.ts";
import type { LiveRunner } from "./runners.ts";
import { addBuckets, grown, grownBuckets, quantile, sampleOf, type RunnerSample } from "./telemetry-stats.ts";

/** The window /api/v1/stats reports over, seconds. */
export const STATS_WINDOW_SECONDS = 10;

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

export interface GatewayTelemetryOptions {
  nc: NatsConnection;
  gatewayId: string;
  logger: Logger;
  /** Runners heard from lately (heartbeats): only their metrics count. */
  liveRunners: () => LiveRunner[];
  /** Blocking callers waiting now. */
  blockingWaits: () => number;
  now?: () => number;
}

/** The first path segment under /api/v1/namespaces/{ns}/ (actions, activations…), or the top-level group. */
export function routeGroup(path: string): string {
  const namespaced = /^\/api\/v1\/namespaces\/[^/]+\/([^/]+)/.exec(path);
  if (namespaced) return namespaced[1]!.replace(/[^a-z]/g, "") || "other";
  if (/^\/api\/v1\/namespaces\/?/.test(path)) return "namespaces";
  if (path.startsWith("/api/v1/web/")) return "web";
  if (path.startsWith("/api/v1/webhooks")) return "webhooks";
  if (path === "/api/v1/stats") return "stats";
  if (path === "/metrics") return "metrics";
  if (path === "/health") return "health";
  if (path.startsWith("/api/v1")) return "api";
  if (path.startsWith("/api/")) return "apigateway";
  return "other";
}

/** Why an invocation was refused, from its status (see gateway/invoke.ts). */
function refusalReason(err: unknown): string {
  const status = err instanceof ApiError ? err.status : 500;
  switch (status) {
    case 400: return "bad_request";
    case 413: return "too_large";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return "error";
  }
}

export class GatewayTelemetry {
  readonly registry = new Registry();
  private readonly runnerMetrics = new Map<string, { at: number; metrics: Metrics }>();
  /** Per runner, samples once a second over the window (oldest first). */
  private readonly history = new Map<string, RunnerSample[]>();
  private readonly httpRequests: Counter<"route" | "status">;
  private readonly accepted: Counter;
  private readonly refused: Counter<"reason">;
  private readonly now: () => number;
  private readonly subscription;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: GatewayTelemetryOptions) {
    this.now = opts.now ?? Date.now;
    const registers = [this.registry];
    this.registry.setDefaultLabels({ gateway: opts.gatewayId });
    collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({ name: "vespid_http_requests_total", help: "HTTP requests answered by the gateway, by route group and status code", labelNames: ["route", "status"], registers });
    this.accepted = new Counter({ name: "vespid_invocations_accepted_total", help: "Invocations the gateway queued", registers });
    this.refused = new Counter({ name: "vespid_invocations_refused_total", help: "Invocations the gateway refused before queueing, by reason", labelNames: ["reason"], registers });
    new Gauge({ name: "vespid_blocking_waits", help: "Blocking callers this gateway waits for now", registers, collect() { this.set(opts.blockingWaits()); } });
    new Gauge({ name: "vespid_runners_live", help: "Runners heard from within the heartbeat expiry", registers, collect() { this.set(opts.liveRunners().length); } });

    this.subscription = opts.nc.subscribe(`${RUNNER_METRICS_SUBJECT_PREFIX}.*`, {
      callback: (err, msg) => {
        if (err) return opts.logger.warn({ err }, "runner metrics subscription failed");
        const runnerId = msg.subject.slice(RUNNER_METRICS_SUBJECT_PREFIX.length + 1);
        try {
          const metrics = JSON.parse(gunzipSync(msg.data).toString("utf8")) as unknown;
          if (!Array.isArray(metrics) || !metrics.every((m) => typeof m?.name === "string" && Array.isArray(m.values))) throw new Error("not a metrics array");
          this.runnerMetrics.set(runnerId, { at: this.now(), metrics: metrics as Metrics });
        } catch (e) {
          // A foreign or broken message: ignored, the runner's last good figures stand.
          opts.logger.debug({ err: e, runnerId }, "ignoring an unreadable runner metrics message");
        }
      },
    });
    this.timer = setInterval(() => this.sample(), METRICS_INTERVAL_MS);
    this.timer.unref();
  }

  /** The latest metrics of each live runner (heard from within RUNNER_EXPIRY_MS, heartbeat and metrics). */
  private liveMetrics(): Map<string, Metrics> {
    const live = new Set(this.opts.liveRunners().map((r) => r.runnerId));
    const t = this.now();
    const out = new Map<string, Metrics>();
    for (const [id, { at, metrics }] of this.runnerMetrics) {
      if (!live.has(id) || t - at >= RUNNER_EXPIRY_MS) {
        this.runnerMetrics.delete(id);
        this.history.delete(id);
      } else out.set(id, metrics);
    }
    return out;
  }

  /** Adds a sample of every live runner to the history, keeping the window's worth. */
  sample(): void {
    const t = this.now();
    for (const [id, metrics] of this.liveMetrics()) {
      const samples = this.history.get(id) ?? [];
      samples.push(sampleOf(metrics, t));
      while (samples.length > 1 && t - samples[0]!.at > STATS_WINDOW_SECONDS * 1000) samples.shift();
      this.history.set(id, samples);
    }
  }

  /** Prometheus text of this gateway's registry merged with every live runner's. */
  async metricsText(): Promise<{ contentType: string; text: string }> {
    const all = [await this.registry.getMetricsAsJSON(), ...this.liveMetrics().values()];
    const merged = AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
    return { contentType: merged.contentType, text: await merged.metrics() };
  }

  /** GET /api/v1/stats for `namespace` (telemetry contract, docs/telemetry.md). */
  stats(namespace: string): PlatformStats {
    const at = this.now();
    const live = this.liveMetrics();
    let total = 0;
    let ended = 0;
    let errors = 0;
    let cold = 0;
    let warm = 0;
    let seconds = 0;
    const duration = new Map<number, number>();
    const wait = new Map<number, number>();
    const runners: RunnerStats[] = [];
    for (const runner of this.opts.liveRunners()) {
      const samples = live.has(runner.runnerId) ? this.history.get(runner.runnerId) ?? [] : [];
      const now = samples.at(-1);
      const before = samples.length > 1 ? samples[0] : undefined;
      const span = now && before ? Math.max(0.001, (now.at - before.at) / 1000) : 0;
      seconds = Math.max(seconds, span);
      const mine = now?.namespaces.get(namespace);
      const mineBefore = before?.namespaces.get(namespace);
      total += mine?.total ?? 0;
      if (mine && before) {
        ended += grown(mine.total, mineBefore?.total ?? 0);
        errors += grown(mine.errors, mineBefore?.errors ?? 0);
        cold += grown(mine.cold, mineBefore?.cold ?? 0);
        warm += grown(mine.warm, mineBefore?.warm ?? 0);
        addBuckets(duration, grownBuckets(mine.duration, mineBefore?.duration ?? new Map()));
        addBuckets(wait, grownBuckets(mine.wait, mineBefore?.wait ?? new Map()));
      }
      const rate = (a: number, b: number) => (span > 0 ? grown(a, b) / span : 0);
      const inits = now && before ? grown(now.initCount, before.initCount) : 0;
      runners.push({
        runnerId: runner.runnerId,
        isolation: runner.isolation,
        capacity: runner.capacity,
        inflight: runner.inflight,
        activeVirtines: now?.activeVirtines ?? 0,
        idleVirtines: now?.idleVirtines ?? 0,
        poolHitsPerSecond: now && before ? rate(now.poolHits, before.poolHits) : 0,
        poolMissesPerSecond: now && before ? rate(now.poolMisses, before.poolMisses) : 0,
        coldStartMs: inits > 0 ? (grown(now!.initSum, before!.initSum) / inits) * 1000 : null,
        cpuPercent: now && before ? rate(now.cpuSeconds, before.cpuSeconds) * 100 : 0,
        rssBytes: now?.rssBytes ?? 0,
        heapUsedBytes: now?.heapUsedBytes ?? 0,
      });
    }
    const per = (n: number) => (seconds > 0 ? n / seconds : 0);
    const ms = (q: number, buckets: Map<number, number>) => {
      const v = quantile(q, buckets);
      return v === undefined ? null : Math.round(v * 1e6) / 1e3;
    };
    return {
      at,
      windowSeconds: STATS_WINDOW_SECONDS,
      namespace,
      invocations: {
        total,
        perSecond: per(ended),
        errorsPerSecond: per(errors),
        coldStartsPerSecond: per(cold),
        warmHitRatio: warm + cold > 0 ? warm / (warm + cold) : null,
      },
      latency: { p50: ms(0.5, duration), p90: ms(0.9, duration), p99: ms(0.99, duration), waitP50: ms(0.5, wait), waitP99: ms(0.99, wait) },
      runners,
    };
  }

  /** The invoker with each invocation counted as accepted (queued) or refused, by reason. */
  countInvocations(invoker: Invoker): Invoker {
    return {
      invoke: (request, options) => {
        let queued = false;
        const onQueued: typeof options.onQueued = (id, replayed) => {
          queued = true;
          this.accepted.inc();
          options.onQueued?.(id, replayed);
        };
        return invoker.invoke(request, { ...options, onQueued }).catch((err: unknown) => {
          if (!queued) this.refused.inc({ reason: refusalReason(err) });
          throw err;
        });
      },
      requeue: (request) => invoker.requeue(request),
    };
  }

  /** Middleware counting every answered request by route group and status. */
  countRequests(): MiddlewareHandler<GatewayEnv> {
    return async (c, next) => {
      try {
        await next();
      } finally {
        this.httpRequests.inc({ route: routeGroup(c.req.path), status: String(c.res.status) });
      }
    };
  }

  close(): void {
    clearInterval(this.timer);
    try {
      this.subscription.unsubscribe();
    } catch {
      // The connection is closed already, and the subscription with it.
    }
  }
}

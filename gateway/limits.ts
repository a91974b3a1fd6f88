// Namespace invocation limits (concurrent and per minute), enforced across every gateway of a
// platform. Each gateway counts what it admits itself and publishes its counts to
// LIMIT_COUNTS_BUCKET under its own key; it watches that bucket for the other gateways' counts and
// the namespaces bucket for the limits. Admission is then a check in memory — no NATS round trip on
// the invocation path, which keeps a load test at thousands of invocations a second unthrottled by
// the accounting itself.
//
// Trade-offs, on purpose:
// - Counts reach the other gateways within COUNT_FLUSH_MS plus a few ms (one KV put + watch
//   delivery), so several gateways admitting within that window can together exceed a limit by what
//   they admitted in it. Writing at most once per COUNT_FLUSH_MS keeps the accounting off the
//   invocation path under load: a put per admission and per end would be two JetStream writes a call. OpenWhisk's controllers are approximate the same way (each enforces a share).
// - Crash safety: every gateway rewrites its counts every COUNT_REFRESH_MS and ignores others'
//   counts older than LIMIT_COUNT_TTL_MS (the bucket also expires them), so a crashed gateway's
//   in-flight invocations stop counting after at most that. An invocation whose completion never
//   reaches its gateway (a lost core-NATS message) stops counting after INFLIGHT_LEASE_MS.
import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import {
  LimitCount,
  NamespaceRecord,
  fromSubjectToken,
  limitCountKey,
  type Isolation,
  type NamespaceLimits,
} from "../contracts/index.ts";
import { DEFAULT_NAMESPACE_CONCURRENT, DEFAULT_NAMESPACE_PER_MINUTE } from "../infra/config.ts";
import { LIMIT_COUNT_TTL_MS } from "../infra/provision.ts";

/** Limits of a namespace the admin has not set (see infra/config.ts for why they are high). */
export const DEFAULT_NAMESPACE_LIMITS: NamespaceLimits = {
  concurrent: DEFAULT_NAMESPACE_CONCURRENT,
  perMinute: DEFAULT_NAMESPACE_PER_MINUTE,
};
/** How often a gateway rewrites its non-zero counts, so others know it is alive (ms). */
export const COUNT_REFRESH_MS = 2_000;
/** Changed counts are written at most this often (ms): a burst of admissions and ends is one put. */
export const COUNT_FLUSH_MS = 50;
/**
 * The longest an invocation counts as running without its completion reaching the gateway (ms): the
 * longest action timeout (5 min) plus a minute for queueing. The result inbox applies it.
 */
export const INFLIGHT_LEASE_MS = 6 * 60_000;

const MINUTE_MS = 60_000;
const currentMinute = (now = Date.now()) => Math.floor(now / MINUTE_MS);

export type Admission =
  | { ok: true; /** Call when the invocation finished (or never started); later calls do nothing. */ release(): void }
  | { ok: false; reason: string; /** Seconds the caller should wait, for Retry-After. */ retryAfter: number };

interface OwnCount extends LimitCount {
  dirty: boolean;
}

export class NamespaceLimiter {
  private readonly limits = new Map<string, Partial<NamespaceLimits>>();
  /**
   * Namespaces whose admin set an isolation requirement (`vespid admin isolation set`): read from
   * the same watch of the namespaces bucket, so invoking costs no lookup for it either.
   */
  private readonly isolation = new Map<string, Isolation>();
  /** Other gateways' counts: key (`<ns>.<gatewayId>`) → count and when we last heard it. */
  /** Other gateways' counts: namespace → gateway id → count, so an admission reads only its own namespace's. */
  private readonly others = new Map<string, Map<string, { count: LimitCount; seen: number }>>();
  private readonly own = new Map<string, OwnCount>();
  /** Set while a write of the counts is due or under way. */
  private flushTimer: NodeJS.Timeout | undefined;
  /** Set by close(): counts are no longer written (the connection may be draining). */
  private closed = false;
  private readonly stoppers: Array<() => void> = [];

  constructor(
    private readonly namespacesKv: KV,
    private readonly countsKv: KV,
    private readonly gatewayId: string,
    private readonly defaults: NamespaceLimits,
    private readonly logger: Logger,
  ) {}

  /** Starts watching limits and counts; resolves once both buckets' current contents are loaded. */
  async start(): Promise<void> {
    await this.follow(this.namespacesKv, (entry) => this.onNamespace(entry));
    await this.follow(this.countsKv, (entry) => this.onCount(entry));
    const refresh = setInterval(() => this.refresh(), COUNT_REFRESH_MS);
    refresh.unref();
    this.stoppers.push(() => clearInterval(refresh));
  }

  /** The limits in force for `namespace`. */
  limitsOf(namespace: string): NamespaceLimits {
    return { ...this.defaults, ...this.limits.get(namespace) };
  }

  /** The weakest tier `namespace`'s actions may run on, when its admin set one. */
  requiredIsolation(namespace: string): Isolation | undefined {
    return this.isolation.get(namespace);
  }

  /** Admits one invocation of `namespace` or says why not; in memory only. */
  admit(namespace: string): Admission {
    const now = Date.now();
    const limits = this.limitsOf(namespace);
    const own = this.ownCount(namespace, now);
    let inflight = own.inflight;
    let started = own.started;
    const others = this.others.get(namespace);
    for (const [gatewayId, other] of others ?? []) {
      if (now - other.seen > LIMIT_COUNT_TTL_MS) {
        others!.delete(gatewayId); // its gateway stopped refreshing: gone
        continue;
      }
      inflight += other.count.inflight;
      if (other.count.minute === own.minute) started += other.count.started;
    }
    if (started >= limits.perMinute) {
      const retryAfter = Math.max(1, Math.ceil(((own.minute + 1) * MINUTE_MS - now) / 1000));
      // OpenWhisk's wording, which clients and scripts may match on.
      return { ok: false, reason: `Too many requests in the last minute (count: ${started + 1}, allowed: ${limits.perMinute}).`, retryAfter };
    }
    if (inflight >= limits.concurrent) {
      return { ok: false, reason: `Too many concurrent requests in flight (count: ${inflight + 1}, allowed: ${limits.concurrent}).`, retryAfter: 1 };
    }
    own.inflight++;
    own.started++;
    this.markDirty(own);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const count = this.own.get(namespace);
      if (count && count.inflight > 0) {
        count.inflight--;
        this.markDirty(count);
      }
    };
    return { ok: true, release };
  }

  /** Stops watching and removes this gateway's counts, so others stop counting them at once. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.flushTimer);
    for (const stop of this.stoppers) stop();
    await Promise.allSettled([...this.own.keys()].map((ns) => this.countsKv.delete(limitCountKey(ns, this.gatewayId))));
  }

  private ownCount(namespace: string, now: number): OwnCount {
    const minute = currentMinute(now);
    let count = this.own.get(namespace);
    if (!count) {
      count = { inflight: 0, minute, started: 0, dirty: false };
      this.own.set(namespace, count);
    } else if (count.minute !== minute) {
      count.minute = minute;
      count.started = 0;
      count.dirty = true;
    }
    return count;
  }

  private markDirty(count: OwnCount): void {
    count.dirty = true;
    this.scheduleFlush();
  }

  /**
   * Writes the dirty counts COUNT_FLUSH_MS from now, unless a write is already due or under way
   * (which looks again for dirty counts when it is done): at most one put per namespace per period.
   */
  private scheduleFlush(): void {
    if (this.closed || this.flushTimer) return;
    this.flushTimer = setTimeout(() => void this.flush(), COUNT_FLUSH_MS);
  }

  private async flush(): Promise<void> {
    const writes = [];
    for (const [namespace, count] of this.own) {
      if (!count.dirty || this.closed) continue;
      count.dirty = false;
      const value: LimitCount = { inflight: count.inflight, minute: count.minute, started: count.started };
      writes.push(this.countsKv.put(limitCountKey(namespace, this.gatewayId), JSON.stringify(value)));
    }
    const failed = (await Promise.allSettled(writes)).find((r) => r.status === "rejected");
    if (failed) this.logger.warn({ err: (failed as PromiseRejectedResult).reason }, "could not publish invocation counts");
    this.flushTimer = undefined;
    if ([...this.own.values()].some((count) => count.dirty)) this.scheduleFlush();
  }

  /** Rewrites every count still worth knowing (so it does not expire) and forgets idle namespaces. */
  private refresh(): void {
    const minute = currentMinute();
    for (const [namespace, count] of this.own) {
      if (count.inflight === 0 && (count.minute !== minute || count.started === 0)) {
        this.own.delete(namespace);
        void this.countsKv.delete(limitCountKey(namespace, this.gatewayId)).catch(() => undefined);
      } else count.dirty = true;
    }
    this.scheduleFlush();
  }

  private onNamespace(entry: KvEntry): void {
    const namespace = fromSubjectToken(entry.key);
    const parsed = entry.operation === "PUT" ? NamespaceRecord.safeParse(entry.json()) : undefined;
    if (parsed?.success && parsed.data.limits) this.limits.set(namespace, parsed.data.limits);
    else this.limits.delete(namespace);
    if (parsed?.success && parsed.data.isolation) this.isolation.set(namespace, parsed.data.isolation);
    else this.isolation.delete(namespace);
  }

  private onCount(entry: KvEntry): void {
    const dot = entry.key.indexOf(".");
    const gatewayId = entry.key.slice(dot + 1);
    if (gatewayId === this.gatewayId) return;
    const namespace = fromSubjectToken(entry.key.slice(0, dot));
    const parsed = entry.operation === "PUT" ? LimitCount.safeParse(entry.json()) : undefined;
    if (!parsed?.success) {
      this.others.get(namespace)?.delete(gatewayId);
      return;
    }
    // "Seen" is when it was written (its NATS timestamp), so a stale entry loaded at start counts
    // only until it would have expired.
    const seen = Math.min(Date.now(), entry.created.getTime());
    let gateways = this.others.get(namespace);
    if (!gateways) this.others.set(namespace, (gateways = new Map()));
    gateways.set(gatewayId, { count: parsed.data, seen });
  }

  /** Feeds every current and future entry of `kv` to `apply`; resolves after the current ones. */
  private async follow(kv: KV, apply: (entry: KvEntry) => void): Promise<void> {
    // An entry older than one already applied for its key is skipped: the watch and the initial
    // load below may deliver the same key in either order.
    const applied = new Map<string, number>();
    const applyNewer = (entry: KvEntry) => {
      if ((applied.get(entry.key) ?? 0) >= entry.revision) return;
      applied.set(entry.key, entry.revision);
      apply(entry);
    };
    const watcher = await kv.watch();
    this.stoppers.push(() => watcher.stop());
    void (async () => {
      try {
        for await (const entry of watcher) applyNewer(entry);
      } catch (err) {
        this.logger.error({ err }, "watching limits stopped");
      }
    })();
    // The watch gives no sign of having delivered the current values; read them here so limits
    // are in force before the first request.
    const keys: string[] = [];
    for await (const key of await kv.keys()) keys.push(key);
    for (const key of keys) {
      const entry = await kv.get(key);
      if (entry) applyNewer(entry);
    }
  }
}

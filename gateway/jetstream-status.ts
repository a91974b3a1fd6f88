// Whether JetStream can take invocations right now, and how deep the invocation queue is, known
// without a round trip on the request path. A TCP link to NATS says little: a cluster without a
// stream leader, or a server whose JetStream is away, accepts the connection and then lets every
// publish hang until its timeout. So the gateway asks JetStream itself, cheaply and periodically:
// the invocation stream's info every CHECK_INTERVAL_MS (its leader and message count), and the
// info of the other streams an invocation needs every BUCKET_CHECK_INTERVAL_MS. Invocations and
// /health read the cached answer; a disconnect is seen at once from the connection's status.
import { jetstreamManager, JetStreamApiError, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, FIRES_STREAM, IDEMPOTENCY_BUCKET, INVOCATIONS_STREAM } from "../contracts/index.ts";

/** How often the invocation stream's info (leader, depth) is read, ms: the queue depth's age. */
export const CHECK_INTERVAL_MS = 250;
/** How often the other streams' leaders are checked, ms. */
export const BUCKET_CHECK_INTERVAL_MS = 2_000;
/** A stream info request that takes longer than this counts as a failed check, ms. */
const CHECK_TIMEOUT_MS = 2_000;
/**
 * A check that timed out once may be a loaded server; twice in a row, JetStream is not answering.
 * An answer saying "no leader" or "unavailable" counts at once.
 */
const TIMEOUTS_BEFORE_DOWN = 2;

/** The streams behind what an invocation touches besides the queue: KV buckets and the fires stream. */
const OTHER_STREAMS = [FIRES_STREAM, ...[ACTIVATIONS_BUCKET, ACTIONS_BUCKET, AUTH_BUCKET, IDEMPOTENCY_BUCKET].map((bucket) => `KV_${bucket}`)];

export interface JetStreamHealth {
  ok: boolean;
  /** Why not, when not ok. */
  reason?: string;
  /** Invocations waiting in the queue (last check plus what this gateway queued since). */
  queued?: number;
  maxQueue: number;
  /** Streams whose last check failed, with why. */
  streams: Record<string, string>;
}

export interface Refusal {
  status: 503;
  reason: string;
  retryAfter: number;
}

export class JetStreamStatus {
  private connected = true;
  private closed = false;
  private timer?: NodeJS.Timeout;
  /** Messages in the invocation stream at the last check, and what this gateway queued since. */
  private depth = 0;
  private queuedSince = 0;
  private timeouts = 0;
  private down?: string;
  private readonly streamProblems = new Map<string, string>();
  private lastBucketCheck = 0;
  private jsm?: JetStreamManager;

  constructor(
    private readonly nc: NatsConnection,
    private readonly maxQueue: number,
    private readonly logger: Logger,
  ) {}

  /** Checks once (so the first requests see a real answer), then keeps checking in the background. */
  async start(): Promise<void> {
    void (async () => {
      for await (const status of this.nc.status()) {
        if (status.type === "disconnect" || status.type === "reconnecting") this.connected = false;
        else if (status.type === "reconnect") {
          this.connected = true;
          // Until a check succeeds again, assume nothing about the queue or the leaders.
          this.timeouts = 0;
          void this.check(true);
        }
      }
    })();
    await this.check(true);
    this.schedule();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Why an invocation must not be queued now (503 + Retry-After), or undefined. */
  refusal(): Refusal | undefined {
    if (!this.connected || this.nc.isClosed()) return { status: 503, reason: "the gateway is not connected to NATS", retryAfter: 1 };
    if (this.down) return { status: 503, reason: `JetStream cannot take invocations now: ${this.down}`, retryAfter: 1 };
    const queued = this.depth + this.queuedSince;
    if (queued >= this.maxQueue) {
      return { status: 503, reason: `the invocation queue is full (${queued} waiting, the limit is ${this.maxQueue}); try again shortly`, retryAfter: 1 };
    }
    return undefined;
  }

  /** One more invocation queued by this gateway since the last check (keeps the depth current in a burst). */
  noteQueued(): void {
    this.queuedSince++;
  }

  /** A publish failed: look again now rather than at the next tick. */
  noteFailure(): void {
    void this.check(false);
  }

  health(): JetStreamHealth {
    const refusal = !this.connected || this.nc.isClosed() || this.down ? this.refusal() : undefined;
    return {
      ok: !refusal,
      ...(refusal && { reason: refusal.reason }),
      ...(!refusal && { queued: this.depth + this.queuedSince }),
      maxQueue: this.maxQueue,
      streams: Object.fromEntries(this.streamProblems),
    };
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(async () => {
      await this.check(false);
      this.schedule();
    }, CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  private checking = false;

  private async check(withBuckets: boolean): Promise<void> {
    if (this.checking || this.closed) return;
    if (!this.connected || this.nc.isClosed()) return;
    this.checking = true;
    try {
      this.jsm ??= await jetstreamManager(this.nc, { timeout: CHECK_TIMEOUT_MS });
      const now = Date.now();
      const names = [INVOCATIONS_STREAM];
      if (withBuckets || now - this.lastBucketCheck >= BUCKET_CHECK_INTERVAL_MS) {
        this.lastBucketCheck = now;
        names.push(...OTHER_STREAMS);
      }
      const results = await Promise.allSettled(names.map((name) => this.jsm!.streams.info(name)));
      let timedOut = false;
      let definite = false;
      for (const [i, result] of results.entries()) {
        const name = names[i]!;
        const problem = result.status === "fulfilled" ? leaderProblem(result.value) : describe(result.reason);
        if (result.status === "rejected" && isTimeout(result.reason)) timedOut = true;
        else if (problem && name !== FIRES_STREAM) definite = true;
        if (problem) this.streamProblems.set(name, problem);
        else this.streamProblems.delete(name);
        if (i === 0 && result.status === "fulfilled" && !problem) {
          this.depth = result.value.state.messages;
          this.queuedSince = 0;
        }
      }
      this.timeouts = timedOut ? this.timeouts + 1 : 0;
      // Trigger fires have their own stream: its trouble shows in /health but refuses no invocation.
      const problems = [...this.streamProblems].filter(([name]) => name !== FIRES_STREAM).map(([name, problem]) => `${name}: ${problem}`);
      // A lone timeout on a loaded server is not an outage (the previous verdict stands); anything
      // JetStream said, or timeouts in a row, are.
      let down = this.down;
      if (problems.length === 0) down = undefined;
      else if (definite || this.timeouts >= TIMEOUTS_BEFORE_DOWN) down = problems.join("; ");
      if (down && !this.down) this.logger.warn({ problems }, "JetStream cannot take invocations");
      else if (!down && this.down) this.logger.info("JetStream takes invocations again");
      this.down = down;
    } catch (err) {
      this.down = describe(err);
    } finally {
      this.checking = false;
    }
  }
}

/** A replicated stream without a leader accepts nothing; a single server's has no cluster info. */
function leaderProblem(info: StreamInfo): string | undefined {
  if (info.cluster && !info.cluster.leader) return "the stream has no leader (election under way, or too few servers)";
  return undefined;
}

function isTimeout(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e.name === "TimeoutError") return true;
  return false;
}

function describe(err: unknown): string {
  if (err instanceof JetStreamApiError) return `${err.message} (JetStream error ${err.code})`;
  if (isTimeout(err)) return "JetStream did not answer in time";
  if (err instanceof Error && err.name === "NoResponders") return "JetStream is not enabled or not reachable (no responders)";
  return err instanceof Error ? err.message : String(err);
}

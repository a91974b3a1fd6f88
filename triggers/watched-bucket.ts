// A KV bucket's records kept in memory and current through a KV watch, so every component that
// reads triggers or rules sees a change made through any gateway within milliseconds, without a
// KV read per fire. `sync()` waits until the copy holds at least what the bucket held when it was
// called: a fire that follows a rule change (on any gateway) then sees that change.
import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import type { z } from "zod";
import { entryJson, followBucket } from "../gateway/kv-watch.ts";

/** How long sync() waits for the watch to catch up before answering with what it has, ms. */
const SYNC_TIMEOUT_MS = 5_000;

export class WatchedBucket<T> {
  /** Deleted keys stay as tombstones (no value), so an older change arriving late is not revived. */
  private readonly records = new Map<string, { value?: T; revision: number }>();
  /** Highest stream sequence the watch (or a local write) has applied. */
  private seen = 0;
  private waiters: Array<{ revision: number; wake: () => void }> = [];
  private stopWatch?: () => void;

  private constructor(
    private readonly kv: KV,
    private readonly schema: z.ZodType<T>,
    private readonly logger: Logger,
  ) {}

  /** Resolves once the bucket's current records are loaded. */
  static async open<T>(kv: KV, schema: z.ZodType<T>, logger: Logger): Promise<WatchedBucket<T>> {
    const bucket = new WatchedBucket(kv, schema, logger);
    await bucket.start();
    return bucket;
  }

  private async start(): Promise<void> {
    const follower = await followBucket(this.kv, (entry) => this.apply(entry), this.logger, "a watched bucket");
    this.stopWatch = () => void follower.stop();
    await this.sync();
  }

  /** A record by key, as of the last change the watch delivered. */
  get(key: string): T | undefined {
    return this.records.get(key)?.value;
  }

  values(): T[] {
    return Array.from(this.records.values()).flatMap((r) => (r.value === undefined ? [] : [r.value]));
  }

  /** Waits until every change the bucket held at the call has been applied (bounded wait). */
  async sync(): Promise<void> {
    const status = await this.kv.status();
    const last = Number(status.streamInfo.state.last_seq);
    if (this.seen >= last) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.wake !== wake);
        this.logger.warn({ bucket: status.bucket, seen: this.seen, last }, "a bucket's watch is behind; answering from what it has");
        resolve();
      }, SYNC_TIMEOUT_MS);
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ revision: last, wake });
    });
  }

  /**
   * Applies a write this process just made, so its own next read sees it even before the watch
   * delivers it (the watch's copy, same revision, is then a no-op).
   */
  applyLocal(key: string, value: T | undefined, revision: number): void {
    this.put(key, value, revision, false);
  }

  stop(): void {
    this.stopWatch?.();
    for (const { wake } of this.waiters.splice(0)) wake();
  }

  private apply(entry: KvEntry): void {
    if (entry.operation !== "PUT") return this.put(entry.key, undefined, entry.revision);
    const parsed = this.schema.safeParse(entryJson(entry));
    if (!parsed.success) {
      // A record no Vespid wrote; skipping it keeps the rest of the bucket usable.
      this.logger.warn({ key: entry.key }, "ignoring a malformed record");
      return this.put(entry.key, undefined, entry.revision);
    }
    this.put(entry.key, parsed.data, entry.revision);
  }

  /** `watched`: delivered by the watch, which delivers in stream order (what sync() counts on). */
  private put(key: string, value: T | undefined, revision: number, watched = true): void {
    const current = this.records.get(key);
    // A local write and the watch deliver the same change in either order: the newer one stands.
    if (!current || current.revision < revision) this.records.set(key, { value, revision });
    if (watched && revision > this.seen) this.seen = revision;
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => w.revision <= this.seen);
      this.waiters = this.waiters.filter((w) => w.revision > this.seen);
      for (const { wake } of ready) wake();
    }
  }
}

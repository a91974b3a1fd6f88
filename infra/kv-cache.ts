// Reads of a KV bucket served from memory, kept current by a watch of the bucket: the invocation
// path reads an action (and its package) on every call, and a KV get is a JetStream API request
// (a round trip, an allocation-heavy reply) where a map lookup would do.
//
// - The watch carries headers only (no values) and only changes from now on: a change drops the
//   key's cached entry, and the next read fetches it. Nothing is streamed for keys nobody reads.
// - A read that was under way when its key changed is not cached (it may hold the old value).
// - Writes through `readThrough(kv, cache)` drop the key themselves, before and after the write,
//   so this process reads its own writes at once; other processes' writes arrive with the watch
//   (milliseconds). A caller that knows a newer revision exists (an invocation event names the
//   revision the gateway resolved) passes it as `minRevision` and never gets an older one.
// - Concurrent reads of one key share one fetch. Entries are bounded in number and bytes; the
//   least recently read go first. While the watch is down (a reconnect), reads go to the bucket.
import { KvWatchInclude, type KV, type KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";

export interface KvCacheOptions {
  /** Entries kept at most. */
  maxEntries?: number;
  /** Bytes of values kept at most. */
  maxBytes?: number;
}

interface Flight {
  promise: Promise<KvEntry | null>;
  /** The key changed while this read was under way: its answer is not cached. */
  stale: boolean;
}

/**
 * Calls `changed(key)` for every key of `kv` written or deleted from now on: a headers-only watch
 * (no values streamed). `ended` runs once the watch stops (stopped, or the connection closed).
 */
export async function watchChangedKeys(kv: KV, changed: (key: string) => void, ended: (err?: unknown) => void): Promise<() => void> {
  const watcher = await kv.watch({ headers_only: true, include: KvWatchInclude.UpdatesOnly });
  void (async () => {
    for await (const change of watcher) changed(change.key);
  })().then(() => ended(), ended);
  return () => watcher.stop();
}

export class KvReadCache {
  /** Map order is read order: the first entry is the least recently read. */
  private readonly entries = new Map<string, KvEntry | null>();
  private readonly flights = new Map<string, Flight>();
  private bytes = 0;
  private live = false;
  private stopWatch: (() => void) | undefined;
  private readonly maxEntries: number;
  private readonly maxBytes: number;

  constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
    options: KvCacheOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  }

  /** Starts the watch; reads are cached from then on. A watch that ends (closed connection) turns caching off. */
  async start(): Promise<void> {
    let ended = false;
    this.stopWatch = await watchChangedKeys(this.kv, (key) => this.invalidate(key), (err) => {
      if (err) this.logger.warn({ err }, "a KV cache's watch failed; reading the bucket directly");
      ended = true;
      this.live = false;
      this.clear();
    });
    this.live = !ended;
  }

  stop(): void {
    this.stopWatch?.();
    this.live = false;
    this.clear();
  }

  async get(key: string, minRevision = 0): Promise<KvEntry | null> {
    if (!this.live) return this.kv.get(key);
    if (this.entries.has(key)) {
      const entry = this.entries.get(key)!;
      if ((entry?.revision ?? 0) >= minRevision) {
        // Read again: to the end of the eviction order.
        this.entries.delete(key);
        this.entries.set(key, entry);
        return entry;
      }
      this.invalidate(key);
    }
    const entry = await (this.flights.get(key) ?? this.fetch(key)).promise;
    // Changed under a shared read: only a read of its own is sure to be new enough.
    if ((entry?.revision ?? 0) < minRevision) return this.kv.get(key);
    return entry;
  }

  /** Forgets the key (it changed, or is about to). */
  invalidate(key: string): void {
    const entry = this.entries.get(key);
    if (entry !== undefined) this.bytes -= entry?.value.length ?? 0;
    this.entries.delete(key);
    const flight = this.flights.get(key);
    if (flight) {
      flight.stale = true;
      this.flights.delete(key);
    }
  }

  private fetch(key: string): Flight {
    const flight: Flight = { stale: false, promise: undefined! };
    flight.promise = this.kv.get(key).finally(() => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    });
    void flight.promise.then((entry) => !flight.stale && this.live && this.store(key, entry), () => undefined);
    this.flights.set(key, flight);
    return flight;
  }

  private store(key: string, entry: KvEntry | null): void {
    const size = entry?.value.length ?? 0;
    if (size > this.maxBytes / 16) return; // one huge record (a zip action) would push out everything else
    this.invalidate(key);
    this.entries.set(key, entry);
    this.bytes += size;
    for (const [oldest, old] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= old?.value.length ?? 0;
    }
  }

  private clear(): void {
    this.entries.clear();
    this.bytes = 0;
    for (const flight of this.flights.values()) flight.stale = true;
    this.flights.clear();
  }
}

const WRITES = new Set(["put", "create", "update", "delete", "purge"]);

/**
 * `kv` with its plain reads (`get(key)`) served by `cache`, and its writes dropping the key from
 * the cache before and after, so this process reads its own writes. Everything else goes to `kv`.
 */
export function readThrough(kv: KV, cache: KvReadCache): KV {
  return new Proxy(kv, {
    get(target, prop, receiver) {
      if (prop === "get") return (key: string, opts?: unknown) => (opts === undefined ? cache.get(key) : target.get(key, opts as never));
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function") return value;
      if (typeof prop === "string" && WRITES.has(prop)) {
        return async (key: string, ...rest: unknown[]) => {
          cache.invalidate(key);
          try {
            return await (value as (...args: unknown[]) => unknown).call(target, key, ...rest);
          } finally {
            cache.invalidate(key);
          }
        };
      }
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
}

/**
 * `decode(entry)`, computed once per entry object: entries served by a KvReadCache are the same
 * object until their key changes, so an action is parsed and checked once per revision instead of
 * on every invocation. The value is deep-frozen, since every reader shares it: code that tried to
 * change it would throw rather than change it for the others.
 */
export function decodeOnce<T>(memo: WeakMap<object, unknown>, entry: object, decode: () => T): T {
  if (memo.has(entry)) return memo.get(entry) as T;
  const value = deepFreeze(decode());
  memo.set(entry, value);
  return value;
}

/** Without recursion: stored parameters may nest deeper than the stack (test/request-bounds.test.ts). */
function deepFreeze<T>(value: T): T {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (!next || typeof next !== "object" || Object.isFrozen(next)) continue;
    Object.freeze(next);
    for (const child of Object.values(next)) pending.push(child);
  }
  return value;
}

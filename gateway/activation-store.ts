// Activation records in ACTIVATIONS_BUCKET, written by the runners under `<namespace>.<id>`
// (contracts/nats.ts activationKey), so every read here is confined to one namespace by its key.
import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Activation, ACTIVATIONS_BUCKET, activationKey, activationKeyFilter } from "../contracts/index.ts";

export interface ActivationQuery {
  /** Records to return, newest first. */
  limit: number;
  /** Records to pass over first (paging). */
  skip: number;
  /** Only records that started at or after this epoch ms. */
  since?: number;
  /** Only records that started at or before this epoch ms. */
  upto?: number;
  /** Only records of this action: its name, or `pkg/action` as in the record's `path`. */
  name?: string;
}

/** The stream and subjects behind a KV bucket, by the KV convention of the NATS clients. */
const BUCKET_STREAM = `KV_${ACTIVATIONS_BUCKET}`;
const bucketSubject = (keyFilter: string) => `$KV.${ACTIVATIONS_BUCKET}.${keyFilter}`;

/** The first window of write times a listing reads back from its newest end, ms. */
const FIRST_WINDOW_MS = 60_000;
/** Each window that did not hold enough records is followed by one this many times longer. */
const WINDOW_GROWTH = 8;
/**
 * A record's `start` comes from its runner's clock, its write time from the NATS server's: reading
 * from this much before a window's start keeps records of a runner whose clock is ahead (NTP keeps
 * them far closer). Also covers a record written in the same ms its call started.
 */
const CLOCK_SLACK_MS = 60_000;
/** A window read that gets no message for this long is over (guards against a record expiring mid-read). */
const IDLE_MS = 5_000;

export class ActivationStore {
  constructor(
    private readonly kv: KV,
    private readonly js: JetStreamClient,
  ) {}

  async get(namespace: string, activationId: string): Promise<Activation | undefined> {
    const entry = await this.kv.get(activationKey(namespace, activationId));
    if (!entry || entry.operation !== "PUT") return undefined;
    const parsed = Activation.safeParse(entry.json());
    // A record this version cannot read is as good as missing; never a 500 for a stored value.
    return parsed.success ? parsed.data : undefined;
  }

  /**
   * The namespace's records matching `query`, newest `start` first.
   *
   * KV keeps no index by time, but its stream is in write order and a record is written when its
   * call ends, after it started. So reading the stream from write time W onwards (one short-lived
   * ordered consumer filtered to `<namespace>.>`) finds every record that started at or after W.
   * If those already include `skip + limit` matches, no older record can be among the newest and
   * the listing is done; otherwise the window grows (×8) back in time until it is, or it reaches
   * `since` or the oldest record. A page of recent records thus reads seconds of history, not the
   * namespace's whole retention; the worst case (few matches, e.g. a rare `name`) reads every
   * record of the namespace within retention, about 8/7 times. Memory stays bounded: only the best
   * `skip + limit` matches are kept while reading.
   */
  async list(namespace: string, query: ActivationQuery): Promise<Activation[]> {
    const keep = query.skip + query.limit;
    const state = (await this.kv.status()).streamInfo.state;
    if (state.messages === 0 || keep === 0) return [];
    const oldestWrite = Date.parse(state.first_ts);
    const newest = Math.min(Date.now(), query.upto ?? Infinity);
    const floor = query.since ?? -Infinity;

    for (let span = FIRST_WINDOW_MS; ; span *= WINDOW_GROWTH) {
      const windowStart = newest - span;
      // Every match started at or after `floor`; and nothing was written before `oldestWrite`.
      const reachesAll = windowStart <= floor || windowStart - CLOCK_SLACK_MS <= oldestWrite;
      const readFrom = reachesAll ? floor - CLOCK_SLACK_MS : windowStart - CLOCK_SLACK_MS;
      const best = new TopRecords(keep);
      let complete = 0; // matches that started within the window: all of those were read
      await this.readFrom(namespace, readFrom, state.last_seq, (record) => {
        if (!matches(record, query)) return;
        best.offer(record);
        if (record.start >= windowStart) complete++;
      });
      if (reachesAll || complete >= keep) return best.records().slice(query.skip);
    }
  }

  /** Calls `onRecord` for each record of `namespace` written at or after `fromMs`, up to `lastSeq`. */
  private async readFrom(namespace: string, fromMs: number, lastSeq: number, onRecord: (record: Activation) => void): Promise<void> {
    const consumer = await this.js.consumers.getPushConsumer(BUCKET_STREAM, {
      filter_subjects: bucketSubject(activationKeyFilter(namespace)),
      // Before the first record, "from the start of time" is every record (and a valid timestamp).
      opt_start_time: new Date(Math.max(0, Number.isFinite(fromMs) ? fromMs : 0)).toISOString(),
    });
    try {
      if ((await consumer.info(true)).num_pending === 0) return;
      const messages = await consumer.consume();
      let idle = setTimeout(() => messages.stop(), IDLE_MS);
      try {
        for await (const msg of messages) {
          clearTimeout(idle);
          idle = setTimeout(() => messages.stop(), IDLE_MS);
          const record = recordOf(msg);
          if (record) onRecord(record);
          // Records written after the listing began are not waited for: a busy namespace would
          // otherwise keep the read going for as long as it runs.
          if (msg.info.pending === 0 || msg.seq >= lastSeq) break;
        }
      } finally {
        clearTimeout(idle);
        messages.stop();
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }
}

function recordOf(msg: JsMsg): Activation | undefined {
  const operation = msg.headers?.get("KV-Operation");
  if (operation === "DEL" || operation === "PURGE") return undefined;
  try {
    const parsed = Activation.safeParse(msg.json());
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The newest `size` records offered, kept sorted newest first. */
class TopRecords {
  private readonly kept: Activation[] = [];
  constructor(private readonly size: number) {}

  offer(record: Activation): void {
    const { kept } = this;
    if (kept.length === this.size && !isNewer(record, kept[kept.length - 1]!)) return;
    let at = kept.length;
    while (at > 0 && isNewer(record, kept[at - 1]!)) at--;
    kept.splice(at, 0, record);
    if (kept.length > this.size) kept.pop();
  }

  records(): Activation[] {
    return this.kept;
  }
}

/** Newest start first; the id breaks ties so pages never overlap or skip a record. */
const isNewer = (a: Activation, b: Activation): boolean =>
  a.start !== b.start ? a.start > b.start : a.activationId > b.activationId;

function matches(record: Activation, query: ActivationQuery): boolean {
  if (query.since !== undefined && record.start < query.since) return false;
  if (query.upto !== undefined && record.start > query.upto) return false;
  if (query.name !== undefined && record.name !== query.name && pathWithinNamespace(record) !== query.name) return false;
  return true;
}

/** `pkg/action` (or `action`) from the record's `path` annotation, `<namespace>/pkg/action`. */
function pathWithinNamespace(record: Activation): string | undefined {
  const path = record.annotations.find((a) => a.key === "path")?.value;
  if (typeof path !== "string") return undefined;
  const prefix = `${record.namespace}/`;
  return path.startsWith(prefix) ? path.slice(prefix.length) : undefined;
}

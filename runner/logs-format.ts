// Guest log lines as OpenWhisk prints them: `2026-11-27T23:10:01.123456Z stdout: text`, one entry
// per line of output.
import { LOG_RECORD_HEADER } from "./engine.ts";
import { Slicer } from "./slices.ts";

/** OpenWhisk's megabyte, in which `limits.logs` is given (its ByteSize counts MB as 1024²). */
export const LOG_LIMIT_UNIT = 1024 * 1024;

/**
 * Most log bytes an activation may keep, whatever its `limits.logs` says (OpenWhisk allows up to
 * 10 MB). The whole record — logs, a result of up to 1 MiB, annotations — must fit one NATS message
 * (it is both the KV value and the reply to a blocking caller), and formatting adds a timestamp and
 * stream name to every line. So an action keeps at most half of the server's max_payload, and never
 * more than 4 MiB (half of the embedded server's 8 MiB). A record that still does not fit (tiny lines
 * grow most when formatted) keeps the lines that fit, cut with a marker (fitActivation in
 * activation.ts), rather than failing to be stored.
 */
export const MAX_RECORD_LOG_BYTES = 4 * LOG_LIMIT_UNIT;

/** Log bytes the engine keeps for an action with `limits.logs` of `limitMb`, on a server with `maxPayload`. */
export function logLimitBytes(limitMb: number, maxPayload: number): number {
  return Math.max(0, Math.min(limitMb * LOG_LIMIT_UNIT, MAX_RECORD_LOG_BYTES, Math.floor(maxPayload / 2)));
}

/** OpenWhisk's own wording, so tools that look for it recognise cut logs. */
export const truncatedLogsMarker = (limitBytes: number): string =>
  `Logs were truncated because the total bytes size exceeds the limit of ${limitBytes} bytes.`;

/**
 * Time the runner may spend on a call's logs past the action's own time limit, ms. Formatting
 * gives way to the loop in slices (see slices.ts); on a runner busy with many floods at once, it
 * stops here and the record says so, so the time limit plus this bounds the whole call.
 */
export const LOG_GRACE_MS = 1_000;

/** Why logs were cut when the record they go in could not hold them all. */
export const recordFullMarker = (maxBytes: number, keptNone: boolean): string =>
  `Logs were truncated because the activation record exceeds the limit of ${maxBytes} bytes; ${keptNone ? "all" : "later"} lines were dropped.`;

export const lateMarker = (timeoutMs: number): string =>
  `Logs were truncated because formatting them went past the action's time limit of ${timeoutMs} milliseconds (plus ${LOG_GRACE_MS}).`;

export interface FormatOptions {
  /** The engine cut the logs at `limitBytes` (its marker line names that limit). */
  truncated: boolean;
  limitBytes: number;
  /** When the guest ended, epoch ms: the time of the marker lines. */
  end: number;
  /**
   * Bytes of JSON the record can give its logs at most; lines past it are not even formatted. The
   * recorder cuts exactly (fitActivation), as the rest of the record takes room too.
   */
  maxBytes: number;
  /** Epoch ms after which the remaining lines are dropped (see LOG_GRACE_MS), and the action's time limit. */
  deadline: number;
  timeoutMs: number;
}

/**
 * Log entries already in JSON: each a JSON string, comma-separated, without the brackets. A flood
 * of tiny lines is 200k entries in a record; as JS strings they cost a GC pause of tens of ms each
 * time the young generation is swept, and encoding them again for the record costs as much. As
 * bytes they are one buffer, cut at an entry boundary in O(1) (`ends`).
 */
export class EncodedLogs {
  constructor(
    /** `"entry","entry",…"entry"`. */
    readonly json: Buffer,
    /** ends[i]: offset in `json` just past entry i (before its comma). */
    readonly ends: Uint32Array,
    /** The buffer `json` begins, when the bytes past it are free to write (see withLast). */
    private readonly room?: Buffer,
  ) {}

  get count(): number {
    return this.ends.length;
  }

  /** These entries and `entry` (already JSON) after them; in place when there is room. */
  withLast(entry: Buffer): EncodedLogs {
    const sep = this.count > 0 ? 1 : 0;
    const length = this.json.length + sep + entry.length;
    const inPlace = this.room !== undefined && this.room.byteOffset === this.json.byteOffset && this.room.length >= length;
    const out = inPlace ? this.room!.subarray(0, length) : Buffer.allocUnsafe(length);
    if (!inPlace) this.json.copy(out);
    if (sep) out[this.json.length] = 0x2c;
    entry.copy(out, this.json.length + sep);
    const ends = new Uint32Array(this.count + 1);
    ends.set(this.ends);
    ends[this.count] = length;
    return new EncodedLogs(out, ends);
  }

  /** The entries as strings: for small records and tests. */
  toArray(): string[] {
    return JSON.parse(`[${this.json.toString("utf8")}]`) as string[];
  }
}

/**
 * Bytes read plus bytes written between checks of the slice's time (a fraction of a ms of work).
 * Both count: "x\n" grows twentyfold into entries, a long line hardly at all.
 */
const ENCODE_CHUNK = 32 * 1024;
/** What reading one record weighs against ENCODE_CHUNK, besides its bytes. */
const RECORD_WEIGHT = 64;
/** Entries merged between checks of the slice's time. */
const MERGE_BATCH = 4096;
/** Bytes kept free past the cap for the marker line, so a cut can always say so. */
const MARKER_ROOM = 512;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const HEX = Buffer.from("0123456789abcdef");
/** JSON.stringify's short escapes for control characters, by code. */
const SHORT_ESCAPES: Record<number, number> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };
const STREAM_NAMES = ["stdout", "stderr"] as const;
/** `"<timestamp> stdout: ` is 37 bytes; with a comma before it and the widest write after. */
const STEP = 64;

type CutReason = "full" | "late";

/**
 * The entries of one stream, JSON-encoded into one growing buffer as the records are read, never
 * past `cap` bytes, with each entry's end, time and place in finishing order in typed arrays (no
 * object per line). The line being written stays open across records until a newline ends it.
 */
class StreamEntries {
  buf: Buffer;
  pos = 0;
  count = 0;
  /** Per entry: offset just past it (before the next comma), its time, when it was finished. */
  ends: Uint32Array;
  times: Float64Array;
  seqs: Uint32Array;
  /** Where the open entry began (its comma included), to drop it when it cannot end. */
  entryStart = 0;
  lineOpen = false;
  lineTime = 0;
  /** `"<time> <stream>: ` of the record at prefixOf, which opens every line the record begins. */
  readonly prefix = Buffer.allocUnsafe(STEP);
  prefixLength = 0;
  prefixOf = -1;
  /** The millisecond `prefix` holds the date of. */
  prefixMs = NaN;
  /**
   * Set when this stream's lines stop being kept (the cap, or the deadline): the place in the
   * merged order of its first missing line, which ends the output there. Its `seq` is Infinity
   * until that line ends (`missingOpen`).
   */
  missing: { time: number; seq: number; reason: CutReason } | undefined;
  missingOpen = false;

  constructor(readonly stream: 0 | 1, initial: number, readonly cap: number) {
    this.buf = Buffer.allocUnsafe(Math.max(STEP, Math.min(initial, cap + MARKER_ROOM)));
    // Grown by doubling, as typed arrays are zeroed when made: sized for the whole buffer at
    // once, a stream that writes nothing would cost milliseconds of memset. `ends` goes out with
    // the entries; times and order are needed only here, and reused (see orderArrays).
    this.ends = new Uint32Array(1024);
    const reused = orderArrays.pop();
    this.times = reused?.times ?? new Float64Array(1024);
    this.seqs = reused?.seqs ?? new Uint32Array(1024);
  }

  /** Room for `n` more bytes within the cap. */
  reserve(n: number): boolean {
    const need = this.pos + n;
    if (need > this.cap) return false;
    if (need > this.buf.length) {
      // Up to the cap plus the marker's room, so the marker never needs a copy of the whole.
      const grown = Buffer.allocUnsafe(Math.min(this.cap + MARKER_ROOM, Math.max(need, this.buf.length * 2)));
      this.buf.copy(grown, 0, 0, this.pos);
      this.buf = grown;
    }
    return true;
  }

  /** Opens a line of the record at `recordAt`, written at `time` (room for it was reserved). */
  begin(time: number, recordAt: number): void {
    if (this.prefixOf !== recordAt) {
      this.prefixOf = recordAt;
      this.prefixLength = writePrefix(this.prefix, time, this.stream, this.prefixMs, this.prefixLength);
      this.prefixMs = Math.floor(time);
    }
    const { buf, prefix, prefixLength } = this;
    let pos = (this.entryStart = this.pos);
    if (this.count > 0) buf[pos++] = 0x2c; // ,
    for (let k = 0; k < prefixLength; k++) buf[pos++] = prefix[k]!;
    this.pos = pos;
    this.lineOpen = true;
    this.lineTime = time;
  }

  /** Closes the open line, the `seq`th to finish (room for its quote was reserved). */
  end(seq: number): void {
    this.buf[this.pos++] = QUOTE;
    if (this.count === this.ends.length) this.ends = grow(this.ends, new Uint32Array(this.count * 2));
    if (this.count === this.times.length) {
      this.times = grow(this.times, new Float64Array(this.count * 2));
      this.seqs = grow(this.seqs, new Uint32Array(this.count * 2));
    }
    this.ends[this.count] = this.pos;
    this.times[this.count] = this.lineTime;
    this.seqs[this.count++] = seq;
    this.lineOpen = false;
  }

  /** Stops keeping lines: the open one (or else the next, beginning no earlier than `time`) is the first missing. */
  stop(reason: CutReason, time: number): void {
    if (this.lineOpen) {
      this.pos = this.entryStart;
      time = this.lineTime;
    }
    this.lineOpen = false;
    this.missing = { time, seq: Infinity, reason };
    this.missingOpen = reason === "full";
  }

  /** Gives the times and order arrays back for the next call (this object is done). */
  release(): void {
    if (orderArrays.length < MAX_ORDER_ARRAYS) orderArrays.push({ times: this.times, seqs: this.seqs });
  }

  /** Byte offset where entry `k` begins, past its comma. */
  entryBegin(k: number): number {
    return k === 0 ? 0 : this.ends[k - 1]! + 1;
  }
}

/**
 * Times and finishing order of entries, kept from earlier calls: a flood's are 3 MiB, and made
 * anew (zeroed, then grown by copying) they stalled the loop for milliseconds each time.
 */
const orderArrays: Array<{ times: Float64Array; seqs: Uint32Array }> = [];
/** Sets kept: two per call formatting at once. */
const MAX_ORDER_ARRAYS = 8;

function grow<T extends Uint32Array | Float64Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** A prefix's length for dates in years 0–9999; its microseconds' three digits are at MICROS_AT. */
const PREFIX_LENGTH = '"2026-11-29T09:21:11.123456Z stdout: '.length;
const MICROS_AT = 24;

/**
 * Writes `"<timestamp> <stream>: ` into `out` and returns its length. When `out` holds the prefix
 * of the same millisecond already (`lastMs`, `length`), only the microseconds are written.
 */
function writePrefix(out: Buffer, epochMs: number, stream: 0 | 1, lastMs: number, length: number): number {
  const wholeMs = Math.floor(epochMs);
  const micros = Math.floor((epochMs - wholeMs) * 1000);
  if (wholeMs !== lastMs || length !== PREFIX_LENGTH) {
    return out.write(`"${new Date(wholeMs).toISOString().slice(0, -1)}${String(micros).padStart(3, "0")}Z ${STREAM_NAMES[stream]}: `, 0, "latin1");
  }
  out[MICROS_AT] = 0x30 + Math.floor(micros / 100);
  out[MICROS_AT + 1] = 0x30 + (Math.floor(micros / 10) % 10);
  out[MICROS_AT + 2] = 0x30 + (micros % 10);
  return length;
}

/**
 * Length of the well-formed UTF-8 sequence at `src[i]` (a byte ≥ 0x80) that ends before `end`,
 * or minus the length of the maximal ill-formed part there, which becomes one U+FFFD (the WHATWG
 * decoder's rule, which Buffer.toString follows: each write decodes as the old per-write strings did).
 */
function utf8Sequence(src: Buffer, i: number, end: number): number {
  const b = src[i]!;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) need = 1;
  else if (b >= 0xe0 && b <= 0xef) {
    need = 2;
    if (b === 0xe0) lo = 0xa0;
    else if (b === 0xed) hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    need = 3;
    if (b === 0xf0) lo = 0x90;
    else if (b === 0xf4) hi = 0x8f;
  } else return -1;
  for (let k = 1; k <= need; k++) {
    const c = i + k < end ? src[i + k]! : -1;
    if (c < lo || c > hi) return -k;
    lo = 0x80;
    hi = 0xbf;
  }
  return need + 1;
}

/**
 * Encodes the bytes of one record, `src[i..to)`, into `w` as JSON text: a newline ends the open
 * line and the next byte opens another, at `time`. Stops at `to` (or, inside a UTF-8 sequence, just
 * past it; `end` is the record's end), or once ENCODE_CHUNK bytes are written, and returns where
 * it stopped; on reaching the cap, stops the stream (`w.missing`) and returns where.
 */
function encodeBytes(w: StreamEntries, src: Buffer, i: number, to: number, end: number, time: number, recordAt: number, order: { seq: number }): number {
  let { buf, pos } = w;
  const chunkEnd = pos + ENCODE_CHUNK;
  let limit = Math.min(buf.length - STEP, w.cap - STEP, chunkEnd);
  while (i < to) {
    if (pos > limit) {
      if (pos > chunkEnd) break;
      w.pos = pos;
      if (!w.reserve(STEP)) {
        w.stop("full", time);
        return i;
      }
      buf = w.buf;
      limit = Math.min(buf.length - STEP, w.cap - STEP, chunkEnd);
    }
    if (!w.lineOpen) {
      w.pos = pos;
      w.begin(time, recordAt);
      pos = w.pos;
    }
    let b = src[i]!;
    if (b >= 0x20 && b < 0x80 && b !== QUOTE && b !== BACKSLASH) {
      // The common case, a run of bytes that need no escape, in a loop of its own.
      const runEnd = Math.min(to, i + (limit - pos) + 1);
      do {
        buf[pos++] = b;
        if (++i === runEnd) break;
        b = src[i]!;
      } while (b >= 0x20 && b < 0x80 && b !== QUOTE && b !== BACKSLASH);
    } else if (b === NEWLINE) {
      w.pos = pos;
      w.end(order.seq++);
      pos = w.pos;
      i++;
    } else if (b < 0x80) {
      buf[pos++] = BACKSLASH;
      const short = b === QUOTE || b === BACKSLASH ? b : SHORT_ESCAPES[b];
      if (short !== undefined) buf[pos++] = short;
      else {
        buf[pos++] = 0x75; // u00XX
        buf[pos++] = 0x30;
        buf[pos++] = 0x30;
        buf[pos++] = HEX[b >> 4]!;
        buf[pos++] = HEX[b & 15]!;
      }
      i++;
    } else {
      const n = utf8Sequence(src, i, end);
      if (n > 0) {
        for (let k = 0; k < n; k++) buf[pos++] = src[i + k]!;
        i += n;
      } else {
        buf[pos++] = 0xef; // U+FFFD
        buf[pos++] = 0xbf;
        buf[pos++] = 0xbd;
        i -= n;
      }
    }
  }
  w.pos = pos;
  return i;
}

/**
 * One entry per line of output, `<time> <stream>: <text>`, encoded from the engine's log records
 * (EngineOutcome.logRecords) straight to JSON bytes, as JSON.stringify would encode the lines, and
 * in the order a stable sort by time gives (each line timed by the write that began it, ties in
 * the order lines were finished). O(bytes) with a small constant and no object per line or
 * per write: each stream is encoded into its own buffer, then the two are merged (when both wrote)
 * by the typed arrays of entry times; all in slices that give way to the event loop.
 */
export async function formatLogs(records: Buffer, opts: FormatOptions): Promise<EncodedLogs> {
  const cap = Math.max(0, opts.maxBytes - MARKER_ROOM);
  // Sized for the usual case at once (untouched pages cost nothing), so growing rarely copies.
  const streams = [0, 1].map((s) => new StreamEntries(s as 0 | 1, 64 * 1024 + records.length * 4, cap)) as [StreamEntries, StreamEntries];
  const order = { seq: 0 };
  const slicer = new Slicer();
  let late = false;
  let time = 0;
  /** Input weighed since the slice's time was last checked. */
  let work = 0;
  for (let off = 0; off + LOG_RECORD_HEADER <= records.length && !late;) {
    // ns since the epoch, read as two halves (a BigInt per record would be garbage per write).
    time = (records.readUInt32LE(off + 4) * 0x1_0000_0000 + records.readUInt32LE(off)) / 1e6;
    const start = off + LOG_RECORD_HEADER;
    const end = Math.min(records.length, start + records.readUInt32LE(off + 8));
    const w = streams[records[off + 12] === 2 ? 1 : 0];
    const recordAt = off;
    off = end;
    // Small records count for more than their bytes: each has its own costs.
    work += RECORD_WEIGHT;
    for (let i = start; i < end && !late;) {
      if (w.missing) {
        // Nothing more of this stream is kept; only where its first missing line ends matters.
        if (w.missingOpen && records.subarray(i, end).includes(NEWLINE)) {
          w.missing.seq = order.seq++;
          w.missingOpen = false;
        }
        break;
      }
      const from = i;
      const written = w.pos;
      i = encodeBytes(w, records, i, Math.min(end, i + ENCODE_CHUNK), end, time, recordAt, order);
      work += i - from + Math.max(0, w.pos - written);
      if (work >= ENCODE_CHUNK) {
        work = 0;
        if (slicer.due()) late = await pauseOrLate(slicer, opts.deadline);
      }
    }
    if (work >= ENCODE_CHUNK && !late) {
      work = 0;
      if (slicer.due()) late = await pauseOrLate(slicer, opts.deadline);
    }
  }
  if (late) {
    for (const w of streams) if (!w.missing) w.stop("late", time);
  } else {
    // Lines left open end with the output, stdout's first.
    for (const w of streams) {
      if (w.lineOpen) {
        if (w.reserve(1)) w.end(order.seq++);
        else {
          w.stop("full", w.lineTime);
          w.missing!.seq = order.seq++;
          w.missingOpen = false;
        }
      } else if (w.missingOpen) {
        w.missing!.seq = order.seq++;
        w.missingOpen = false;
      }
    }
  }
  const merged = await merge(streams, cap, slicer);
  for (const w of streams) w.release();
  const cut = merged.cut === "late" ? lateMarker(opts.timeoutMs) : merged.cut === "full" ? recordFullMarker(opts.maxBytes, merged.logs.count === 0) : undefined;
  const tail = cut ?? (opts.truncated ? truncatedLogsMarker(opts.limitBytes) : undefined);
  return tail === undefined ? merged.logs : merged.logs.withLast(Buffer.from(JSON.stringify(`${timestamp(opts.end)} stderr: ${tail}`)));
}

/** Gives way to the loop; true instead when the deadline has passed. */
async function pauseOrLate(slicer: Slicer, deadline: number): Promise<boolean> {
  if (Date.now() > deadline) return true;
  await slicer.pause();
  return false;
}

/**
 * The two streams' entries in one order: by time, ties by when each line was finished. It ends
 * where a stream's first missing line would come (the reason of that stream) or where the next
 * entry would pass the cap ("full"). All from one stream, the result shares that stream's buffer.
 */
async function merge(streams: [StreamEntries, StreamEntries], cap: number, slicer: Slicer): Promise<{ logs: EncodedLogs; cut?: CutReason }> {
  // One stream wrote, and nothing of the other is missing: its entries as they are (they fit the
  // cap, as its writer kept them within it).
  for (const [w, other] of [streams, [streams[1], streams[0]]] as const) {
    if (other.count === 0 && !other.missing) {
      return { logs: new EncodedLogs(w.buf.subarray(0, w.pos), w.ends.subarray(0, w.count), w.buf), cut: w.missing?.reason };
    }
  }
  const at = [0, 0];
  let bytes = 0;
  let kept = 0;
  let cut: CutReason | undefined;
  /** The stream every entry so far came from, while there is one. */
  let only: StreamEntries | undefined;
  let out: StreamEntries | undefined;
  for (let steps = 1; ; steps++) {
    // Each stream's next: an entry, its first missing line, or nothing.
    const [a, b] = streams;
    const i = at[0]!;
    const j = at[1]!;
    const aTime = i < a.count ? a.times[i]! : a.missing?.time;
    const bTime = j < b.count ? b.times[j]! : b.missing?.time;
    let next: StreamEntries;
    if (aTime === undefined) {
      if (bTime === undefined) break;
      next = b;
    } else if (bTime === undefined || aTime < bTime) next = a;
    else if (bTime < aTime) next = b;
    else next = (i < a.count ? a.seqs[i]! : a.missing!.seq) < (j < b.count ? b.seqs[j]! : b.missing!.seq) ? a : b;
    const k = at[next.stream]!;
    if (k >= next.count) {
      cut = next.missing!.reason;
      break;
    }
    const begin = next.entryBegin(k);
    const size = (kept > 0 ? 1 : 0) + next.ends[k]! - begin;
    if (bytes + size > cap) {
      cut = "full";
      break;
    }
    if (out === undefined && (only === undefined || only === next)) only = next;
    else {
      if (out === undefined) {
        // The first entry of the other stream: what came before (all of `only`) is copied once.
        out = new StreamEntries(0, cap + MARKER_ROOM, cap);
        const first = only!;
        const n = at[first.stream]!;
        first.buf.copy(out.buf, 0, 0, n > 0 ? first.ends[n - 1] : 0);
        out.pos = n > 0 ? first.ends[n - 1]! : 0;
        out.ends = first.ends.slice(0, Math.max(n, 256));
        out.count = n;
      }
      if (out.count > 0) out.buf[out.pos++] = 0x2c;
      out.pos += next.buf.copy(out.buf, out.pos, begin, next.ends[k]);
      if (out.count === out.ends.length) out.ends = grow(out.ends, new Uint32Array(out.count * 2));
      out.ends[out.count++] = out.pos;
    }
    bytes += size;
    kept++;
    at[next.stream]!++;
    if (steps % MERGE_BATCH === 0 && slicer.due()) await slicer.pause();
  }
  if (out) {
    out.release();
    return { logs: new EncodedLogs(out.buf.subarray(0, out.pos), out.ends.subarray(0, out.count), out.buf), cut };
  }
  const w = only ?? streams[0];
  const n = only ? at[w.stream]! : 0;
  const end = n > 0 ? w.ends[n - 1]! : 0;
  return { logs: new EncodedLogs(w.buf.subarray(0, end), w.ends.subarray(0, n), w.buf), cut };
}

/** ISO 8601 with microseconds; the engine's times are epoch ms with a fractional part. */
export function timestamp(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const micros = Math.floor((epochMs - wholeMs) * 1000);
  // Writes come many to a millisecond in a flood: the date part is made once for them.
  if (wholeMs !== lastMs) {
    lastMs = wholeMs;
    lastIso = new Date(wholeMs).toISOString().slice(0, -1);
  }
  return `${lastIso}${String(micros).padStart(3, "0")}Z`;
}
let lastMs = NaN;
let lastIso = "";

// Guest log lines as OpenWhisk prints them: `2026-11-27T23:10:01.123456Z stdout: text`, one entry
// per line of output.
import type { LogLine } from "./engine.ts";
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
  ) {}

  get count(): number {
    return this.ends.length;
  }

  /** The entries as strings: for small records and tests. */
  toArray(): string[] {
    return JSON.parse(`[${this.json.toString("utf8")}]`) as string[];
  }
}

/** Input characters encoded at once, between checks of the slice's time. */
const ENCODE_CHUNK = 8 * 1024;
/** Where a chunk's UTF-8 goes (3 bytes at most per UTF-16 unit). */
const SCRATCH = Buffer.allocUnsafe(3 * ENCODE_CHUNK);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const HEX = Buffer.from("0123456789abcdef");
/** JSON.stringify's short escapes for control characters, by code. */
const SHORT_ESCAPES: Record<number, number> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };

/**
 * JSON entries written into one growing buffer, never past `cap` bytes. The hot loop (encodeChunk)
 * works on locals; the state lives here between chunks, as formatLogs awaits between them.
 */
class EntryWriter {
  buf: Buffer;
  pos = 0;
  ends = new Uint32Array(64);
  count = 0;
  /** Where the entry being written began (its comma included), to drop it when it cannot end. */
  entryStart = 0;
  /** `"<time> <stream>: `, which opens every entry of the current LogLine (never needs escaping). */
  readonly open = Buffer.allocUnsafe(128);
  openLength = 0;

  constructor(initial: number, readonly cap: number) {
    this.buf = Buffer.allocUnsafe(Math.max(0, Math.min(initial, cap)));
  }

  /** Room for `n` more bytes; false when that would pass the cap. */
  reserve(n: number): boolean {
    const need = this.pos + n;
    if (need > this.cap) return false;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.cap, Math.max(need, this.buf.length * 2)));
      this.buf.copy(grown, 0, 0, this.pos);
      this.buf = grown;
    }
    return true;
  }

  /** Opens an entry of the current LogLine; false when the cap does not allow it. */
  beginEntry(): boolean {
    this.entryStart = this.pos;
    if (!this.reserve(this.openLength + 2)) return false;
    const { buf, open, openLength } = this;
    let pos = this.pos;
    if (this.count > 0) buf[pos++] = 0x2c; // ,
    for (let k = 0; k < openLength; k++) buf[pos++] = open[k]!;
    this.pos = pos;
    return true;
  }

  /** Closes the entry being written (room for its quote is always kept). */
  endEntry(): void {
    this.buf[this.pos++] = QUOTE;
    if (this.count === this.ends.length) {
      const grown = new Uint32Array(this.count * 2);
      grown.set(this.ends);
      this.ends = grown;
    }
    this.ends[this.count++] = this.pos;
  }

  /**
   * Escapes `n` bytes of UTF-8 from `src` into entries, a newline ending one and opening the next.
   * False when the cap was reached: the entry being written is dropped.
   */
  encodeChunk(src: Buffer, n: number): boolean {
    // Checked before each byte: room for the widest write, an escape or a close-and-open.
    const step = this.openLength + 8;
    let { buf, pos } = this;
    let limit = Math.min(buf.length, this.cap) - step;
    for (let i = 0; i < n; i++) {
      if (pos > limit) {
        this.pos = pos;
        if (!this.reserve(step)) {
          this.pos = this.entryStart;
          return false;
        }
        buf = this.buf;
        limit = Math.min(buf.length, this.cap) - step;
      }
      const b = src[i]!;
      if (b >= 0x20 && b !== QUOTE && b !== BACKSLASH) buf[pos++] = b;
      else if (b === NEWLINE) {
        // One line ends; the next, of the same write, shares its time.
        this.pos = pos;
        this.endEntry();
        if (!this.beginEntry()) {
          this.pos = this.entryStart;
          return false;
        }
        buf = this.buf;
        pos = this.pos;
        limit = Math.min(buf.length, this.cap) - step;
      } else {
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
      }
    }
    this.pos = pos;
    // Room for the closing quote, which endEntry writes unchecked.
    if (!this.reserve(1)) {
      this.pos = this.entryStart;
      return false;
    }
    return true;
  }

  /** The entries, with `marker` (already JSON) as the last one when given. */
  finish(marker?: Buffer): EncodedLogs {
    if (marker) {
      // Past the cap on purpose: formatLogs keeps room back for it.
      const sep = this.count > 0 ? 1 : 0;
      const out = Buffer.allocUnsafe(this.pos + sep + marker.length);
      this.buf.copy(out, 0, 0, this.pos);
      if (sep) out[this.pos] = 0x2c;
      marker.copy(out, this.pos + sep);
      const ends = new Uint32Array(this.count + 1);
      ends.set(this.ends.subarray(0, this.count));
      ends[this.count] = out.length;
      return new EncodedLogs(out, ends);
    }
    return new EncodedLogs(this.buf.subarray(0, this.pos), this.ends.slice(0, this.count));
  }
}

/**
 * One entry per line of output, `<time> <stream>: <text>`, encoded straight to JSON bytes (as
 * JSON.stringify would). A LogLine's text may hold several lines (see parseLogs), which share its
 * time. O(bytes kept) with a small constant and no object per line; in slices that give way to the
 * event loop.
 */
export async function formatLogs(lines: readonly LogLine[], opts: FormatOptions): Promise<EncodedLogs> {
  const marker = (text: string) => Buffer.from(JSON.stringify(`${timestamp(opts.end)} stderr: ${text}`));
  // Room for a marker line is kept back, so a cut can always say so.
  const out = new EntryWriter(lines.reduce((n, l) => n + l.text.length + 64, 64), Math.max(0, opts.maxBytes - 512));
  const slicer = new Slicer();
  let cut: string | undefined;
  for (const line of lines) {
    out.openLength = out.open.write(`"${timestamp(line.time)} ${line.stream}: `, 0, "latin1");
    if (!out.beginEntry()) {
      cut = recordFullMarker(opts.maxBytes, out.count === 0);
      break;
    }
    const { text } = line;
    let from = 0;
    do {
      let to = Math.min(text.length, from + ENCODE_CHUNK);
      // Never split a surrogate pair between two chunks.
      if (to < text.length && (text.charCodeAt(to - 1) & 0xfc00) === 0xd800) to--;
      // Used up before the next await, so one buffer serves every call.
      const n = SCRATCH.write(from === 0 && to === text.length ? text : text.slice(from, to), 0, "utf8");
      from = to;
      if (!out.encodeChunk(SCRATCH, n)) {
        // The record is full in the middle of a line: that line goes, the kept ones stay.
        cut = recordFullMarker(opts.maxBytes, out.count === 0);
        break;
      }
      if (slicer.due()) {
        if (Date.now() > opts.deadline) {
          out.pos = out.entryStart;
          cut = lateMarker(opts.timeoutMs);
          break;
        }
        await slicer.pause();
      }
    } while (from < text.length);
    if (cut !== undefined) break;
    out.endEntry();
  }
  const tail = cut ?? (opts.truncated ? truncatedLogsMarker(opts.limitBytes) : undefined);
  return out.finish(tail === undefined ? undefined : marker(tail));
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

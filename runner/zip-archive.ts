// The files of a zip action (`exec.binary: true`, the code a base64 zip, as OpenWhisk takes Node.js
// actions with dependencies). The archive is the user's and may be hostile, so it is read with
// bounds: its central directory is walked here (a few fixed-size records), and only the modules
// the guest can load (.js, .mjs, .cjs, .json) are inflated (fflate), each stopped as soon as it
// passes the size its directory entry declared, after the declared total was checked against the
// limit. Every refusal is a ZipError whose message names the problem and the field.
import { Inflate } from "fflate";

export interface ZipLimits {
  /** Entries in the archive, folders and skipped files included. */
  maxEntries: number;
  /** Bytes of the modules unpacked, all together (what the guest holds as source). */
  maxUnzippedBytes: number;
}

/**
 * 16 MiB of modules: the guest holds them as source next to their compiled form, in the action's
 * memory (a few MiB per MiB of code loaded), and the load check runs them in 128 MiB. OpenWhisk's
 * own bound is on the archive (48 MiB); Vespid's request body (5 MiB) bounds that first.
 */
export const DEFAULT_ZIP_LIMITS: Readonly<ZipLimits> = Object.freeze({
  maxEntries: 10_000,
  maxUnzippedBytes: 16 * 1024 * 1024,
});

/** Files the JS guest can load: everything else (READMEs, maps, typings) could only be read with fs. */
const MODULE_FILE = /\.(?:js|mjs|cjs|json)$/;
/** Input handed to the inflater at a time: bounds what one step can expand to (~1000× at most). */
const INFLATE_CHUNK = 16 * 1024;

export class ZipError extends Error {}

const fail = (why: string): never => {
  throw new ZipError(`exec.code: ${why}`);
};

/** Base64 as encoders write it: whitespace (line breaks of `base64`) is allowed, nothing else. */
export function decodeBase64(text: string): Buffer {
  const bad = /[^A-Za-z0-9+/=\s]/.exec(text);
  if (bad) fail(`with exec.binary true the code must be a base64-encoded zip archive, and character ${JSON.stringify(bad[0])} at ${bad.index} is not base64`);
  const compact = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
    fail("with exec.binary true the code must be a base64-encoded zip archive, and it is not valid base64 (misplaced padding or a truncated last group)");
  }
  return Buffer.from(compact, "base64");
}

/**
 * The module files of a zip, by path from the archive's root with a leading `/` (`/lib/x.js`).
 * Refuses archives that are not zips, split, zip64, encrypted or corrupt; entries whose names
 * escape the root (`../`, absolute paths, drive letters, backslashes); and more entries or more
 * unpacked bytes than the limits.
 */
export function readZipModules(zip: Uint8Array, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Map<string, string> {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const u16 = (at: number) => (at + 2 <= zip.length ? view.getUint16(at, true) : fail("the zip archive is truncated"));
  const u32 = (at: number) => (at + 4 <= zip.length ? view.getUint32(at, true) : fail("the zip archive is truncated"));

  // End of central directory: 22 bytes plus a comment of up to 64 KiB, at the very end.
  let eocd = -1;
  for (let at = zip.length - 22; at >= 0 && at >= zip.length - 22 - 0xffff; at--) {
    if (view.getUint32(at, true) === 0x06054b50) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) fail("with exec.binary true the code must be a base64-encoded zip archive, and it is not a zip archive (no end-of-central-directory record)");
  if (u16(eocd + 4) !== 0 || u16(eocd + 6) !== 0 || u16(eocd + 8) !== u16(eocd + 10)) fail("split (multi-part) zip archives are not supported");
  const entries = u16(eocd + 10);
  let at = u32(eocd + 16);
  if (entries === 0xffff || at === 0xffffffff || u32(eocd + 12) === 0xffffffff) fail("zip64 archives are not supported");
  if (entries > limits.maxEntries) fail(`the zip archive has ${entries} entries, more than the limit of ${limits.maxEntries}`);

  interface Entry { path: string; method: number; crc: number; packed: number; size: number; local: number }
  const wanted: Entry[] = [];
  const seen = new Set<string>();
  let declared = 0;
  for (let i = 0; i < entries; i++) {
    if (u32(at) !== 0x02014b50) fail("the zip archive's central directory is corrupt");
    const flags = u16(at + 8);
    const method = u16(at + 10);
    const crc = u32(at + 16);
    const packed = u32(at + 20);
    const size = u32(at + 24);
    const nameLength = u16(at + 28);
    const next = at + 46 + nameLength + u16(at + 30) + u16(at + 32);
    if (next > zip.length) fail("the zip archive is truncated");
    const raw = zip.subarray(at + 46, at + 46 + nameLength);
    const name = Buffer.from(raw).toString(flags & 0x800 ? "utf8" : "latin1");
    const local = u32(at + 42);
    at = next;

    const path = entryPath(name);
    if (path === undefined) continue; // a folder
    if (flags & 0x1) fail(`zip entry ${JSON.stringify(name)} is encrypted; encrypted archives are not supported`);
    if (seen.has(path)) fail(`the zip archive holds ${JSON.stringify(name)} twice`);
    seen.add(path);
    if (!MODULE_FILE.test(path) || path.startsWith("/__MACOSX/")) continue;
    if (method !== 0 && method !== 8) fail(`zip entry ${JSON.stringify(name)} uses compression method ${method}; only stored (0) and deflate (8) are supported`);
    declared += size;
    if (declared > limits.maxUnzippedBytes) fail(tooBig(limits));
    wanted.push({ path, method, crc, packed, size, local });
  }

  const files = new Map<string, string>();
  const text = new TextDecoder("utf-8"); // as Node reads modules: invalid bytes become U+FFFD
  for (const e of wanted) {
    if (u32(e.local) !== 0x04034b50) fail(`zip entry ${e.path.slice(1)} has no local header where the directory says`);
    const start = e.local + 30 + u16(e.local + 26) + u16(e.local + 28);
    if (start + e.packed > zip.length) fail("the zip archive is truncated");
    const data = unpack(e, zip.subarray(start, start + e.packed));
    if (crc32(data) !== e.crc) fail(`zip entry ${e.path.slice(1)} is corrupt (its CRC-32 does not match)`);
    files.set(e.path, text.decode(data).replace(/^\uFEFF/, ""));
  }
  return files;
}

function tooBig(limits: ZipLimits): string {
  return `the zip archive's modules (.js, .mjs, .cjs, .json) unpack to more than the limit of ${limits.maxUnzippedBytes / 1048576} MiB`;
}

/**
 * `/a/b.js` for an entry name, undefined for a folder. Names are relative paths with `/`; one that
 * could land outside the action's root when unpacked is refused, never rewritten.
 */
function entryPath(name: string): string | undefined {
  const quoted = JSON.stringify(name);
  if (name.includes("\0")) fail(`zip entry ${quoted} has a NUL character in its name`);
  if (name.includes("\\")) fail(`zip entry ${quoted} has a backslash in its name; zip paths use /`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) fail(`zip entry ${quoted} has an absolute path; entries must be relative to the archive's root`);
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) fail(`zip entry ${quoted} has a path that leaves the archive's root (..)`);
  if (name.endsWith("/") || parts.length === 0) return undefined;
  return `/${parts.join("/")}`;
}

/** One entry's bytes, never more than it declared (a zip bomb stops at its declared size). */
function unpack(e: { path: string; method: number; packed: number; size: number }, data: Uint8Array): Uint8Array {
  const name = e.path.slice(1);
  if (e.method === 0) {
    if (e.packed !== e.size) fail(`zip entry ${name} is corrupt (stored with two different sizes)`);
    return data;
  }
  const out = new Uint8Array(e.size);
  let filled = 0;
  const inflater = new Inflate((chunk) => {
    // A bomb that declares a small size: stopped here, at most one chunk's expansion later.
    if (filled + chunk.length > e.size) fail(`zip entry ${name} unpacks to more than the ${e.size} bytes its directory entry declares`);
    out.set(chunk, filled);
    filled += chunk.length;
  });
  try {
    for (let off = 0; off < data.length || off === 0; off += INFLATE_CHUNK) {
      inflater.push(data.subarray(off, off + INFLATE_CHUNK), off + INFLATE_CHUNK >= data.length);
    }
  } catch (err) {
    if (err instanceof ZipError) throw err;
    fail(`zip entry ${name} is not valid deflate data (${(err as Error).message})`);
  }
  if (filled !== e.size) fail(`zip entry ${name} is corrupt (it unpacks to ${filled} bytes, its directory entry says ${e.size})`);
  return out;
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE), as zip stores it per entry. */
function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// What the JS guest reads as its INIT input (native/guest/js_main.c): the action's source as it is
// when main is `main`, or else an envelope, a mark then JSON, naming main and carrying the source
// (`{"main", "source"}`) or a zip action's module map (`{"main", "files": {"/path": source}}`).
// The guest loads all of it before its snapshot point, so only cold starts read it.
import { decodeBase64, DEFAULT_ZIP_LIMITS, readZipModules, ZipError, type ZipLimits } from "./zip-archive.ts";

/** How an action's code is given: OpenWhisk's `exec.binary` (a base64 zip) and `exec.main`. */
export interface JsSource {
  binary?: boolean;
  main?: string;
}

/** A NUL cannot start valid JavaScript, so no plain source is taken for an envelope (js_main.c). */
const ENVELOPE_MARK = "\0vespid:init\n";

/**
 * What tells this code's init apart from another code's in the image store's hash, beyond the code
 * itself: nothing for plain code with `main` (its hash stays what it always was), else the form
 * and main. Never equal to a kind's name, so no input of one form hashes like another's.
 */
export function jsVariant(source: JsSource): string | undefined {
  const main = source.main ?? "main";
  if (!source.binary && main === "main") return undefined;
  return `${source.binary ? "zip" : "js"}:${JSON.stringify(main)}`;
}

/** The INIT bytes; throws ZipError, naming the problem, for a zip that cannot be used. */
export function jsInit(code: string, source: JsSource = {}, limits?: ZipLimits): Uint8Array {
  const main = source.main ?? "main";
  if (!source.binary) {
    return new TextEncoder().encode(main === "main" ? code : ENVELOPE_MARK + JSON.stringify({ main, source: code }));
  }
  const files = readZipModules(decodeBase64(code), limits);
  // OpenWhisk's rule and words; with `file.fn` the entry is ./file instead (the guest resolves it).
  if (!main.includes(".") && !files.has("/package.json") && !files.has("/index.js")) {
    throw new ZipError("exec.code: Zipped actions must contain either package.json or index.js at the root.");
  }
  const init = new TextEncoder().encode(ENVELOPE_MARK + JSON.stringify({ main, files: Object.fromEntries(files) }));
  // Text grows little as JSON; bytes that are not text (control characters are escaped to six,
  // invalid UTF-8 becomes three-byte U+FFFD) can grow it six times: bounded too.
  const most = 2 * (limits ?? DEFAULT_ZIP_LIMITS).maxUnzippedBytes;
  if (init.length > most) {
    throw new ZipError(`exec.code: the zip's modules are not plain text: handed to the guest they take ${Math.ceil(init.length / 1048576)} MiB, more than the limit of ${most / 1048576} MiB`);
  }
  return init;
}

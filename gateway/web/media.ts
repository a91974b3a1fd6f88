// Media types as OpenWhisk's web actions see them: which bodies are text and which are binary
// (binary request bodies reach the action base64-encoded, binary response bodies are decoded
// from base64). OpenWhisk asks akka-http's media type registry; this is the same split for the
// types that matter: text/*, JSON, XML, JavaScript and form data are text, and so is any type
// given with a charset; everything else (images, octet-stream, pdf, unknown types) is binary.

export interface MediaType {
  /** `type/subtype`, lower case, without parameters. */
  essence: string;
  /** The parameters as given, e.g. `; charset=utf-8`, or "". */
  params: string;
}

const TOKEN = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

/** The media type of a Content-Type value, or undefined when it is not one. */
export function parseMediaType(value: string): MediaType | undefined {
  const [essence = "", ...rest] = value.split(";");
  const type = essence.trim().toLowerCase();
  if (!TOKEN.test(type)) return undefined;
  return { essence: type, params: rest.length ? `;${rest.join(";")}` : "" };
}

/** application/json and every `+json` type. */
export const isJsonFamily = (m: MediaType): boolean => m.essence === "application/json" || m.essence.endsWith("+json");

const TEXT_TYPES = new Set([
  "application/json",
  "application/javascript",
  "application/ecmascript",
  "application/xml",
  "application/xhtml+xml",
  "application/x-www-form-urlencoded",
  "application/graphql",
  "application/soap+xml",
  "application/rss+xml",
  "application/atom+xml",
]);

export function isBinary(m: MediaType): boolean {
  if (m.essence.startsWith("text/") || TEXT_TYPES.has(m.essence) || isJsonFamily(m)) return false;
  if (m.essence.endsWith("+xml") && !m.essence.startsWith("image/")) return false;
  return !/;\s*charset=/i.test(m.params);
}

/** What OpenWhisk takes for base64 (its `Exec.isBinaryCode`): a padded base64 string. */
export function looksLikeBase64(text: string): boolean {
  const t = text.trim();
  return t.length > 0 && t.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(t);
}

/** Strict base64 decoding: undefined when `text` is not base64 (Buffer.from would skip junk). */
export function decodeBase64(text: string): Uint8Array | undefined {
  const t = text.replace(/\s+/g, "");
  if (t.length % 4 === 1 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return undefined;
  return Buffer.from(t, "base64");
}

/** The Content-Type to answer with: text types get charset UTF-8 unless they name one (as akka does). */
export function responseContentType(m: MediaType): string {
  if (isBinary(m) || m.essence === "application/json" || /;\s*charset=/i.test(m.params)) return `${m.essence}${m.params}`;
  return `${m.essence}${m.params}; charset=UTF-8`;
}

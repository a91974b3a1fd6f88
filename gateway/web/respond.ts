// Turns a web action's result into the HTTP response its extension asks for, with OpenWhisk's
// rules and messages (its WebActions.scala): `.http` reads statusCode, headers and body from the
// result; `.json` answers the result; `.text`, `.html` and `.svg` answer its `body` field (or the
// field named like the extension).
import { ApiError } from "../errors.ts";
import { decodeBase64, isBinary, isJsonFamily, looksLikeBase64, parseMediaType, responseContentType } from "./media.ts";

export const EXTENSIONS = ["http", "json", "text", "html", "svg"] as const;
export type Extension = (typeof EXTENSIONS)[number];

/** A response before the CORS and activation headers are added. */
export interface WebResponse {
  status: number;
  /** In order; a name may repeat (an array value in the result's headers). */
  headers: Array<[string, string]>;
  body?: string | Uint8Array;
}

/** OpenWhisk's wording, which clients may match on. */
export const WebMessages = {
  invalidMedia: (type: string) => `Response is not valid '${type}'.`,
  propertyNotFound: "Response does not include requested property.",
  unknownContentType: "Response did not specify a known content-type.",
  contentTypeMismatch: "Response type in header did not match generated content type.",
  parametersNotAllowed: "Request defines parameters that are not allowed (e.g., reserved properties).",
  notReady: "Response not yet ready.",
  errorProcessing: "There was an error processing your request.",
} as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const pretty = (v: unknown) => JSON.stringify(v, null, 2);

export function transcode(extension: Extension, result: unknown): WebResponse {
  switch (extension) {
    case "http":
      return asHttp(result);
    case "json":
      if (typeof result !== "object" || result === null) throw new ApiError(400, WebMessages.invalidMedia("application/json"));
      return { status: 200, headers: [["content-type", "application/json"]], body: JSON.stringify(result) };
    case "text": {
      const value = isObject(result) ? (result.body ?? result.text) : result;
      if (value === undefined) throw new ApiError(404, WebMessages.propertyNotFound);
      const text = typeof value === "string" ? value : typeof value === "object" && value !== null ? pretty(value) : String(value);
      return { status: 200, headers: [["content-type", "text/plain; charset=UTF-8"]], body: text };
    }
    case "html":
    case "svg": {
      const value = isObject(result) ? (result.body ?? result[extension]) : result;
      const type = extension === "html" ? "text/html" : "image/svg+xml";
      if (typeof value !== "string") throw new ApiError(400, WebMessages.invalidMedia(type));
      return { status: 200, headers: [["content-type", extension === "html" ? "text/html; charset=UTF-8" : type]], body: value };
    }
  }
}

const FRAMING_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"]);

/** Statuses whose responses carry no body (the Fetch API refuses to build one with a body). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

function asHttp(result: unknown): WebResponse {
  const invalid = () => new ApiError(400, WebMessages.invalidMedia("message/http"));
  if (!isObject(result)) throw invalid();
  const headers: Array<[string, string]> = [];
  if (result.headers !== undefined) {
    if (!isObject(result.headers)) throw invalid();
    for (const [name, value] of Object.entries(result.headers)) {
      for (const one of Array.isArray(value) ? value : [value]) {
        if (!["string", "number", "boolean"].includes(typeof one)) throw invalid();
        // A name or value no HTTP header can carry would fail later, in the server; refuse it here.
        if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[^\t\x20-\x7e\x80-\xff]/.test(String(one))) throw invalid();
        // The server frames the body itself (akka ignores these too): a wrong length would break it.
        if (FRAMING_HEADERS.has(name.toLowerCase())) continue;
        headers.push([name, String(one)]);
      }
    }
  }
  let status: number | undefined;
  if (result.statusCode !== undefined) {
    const code = typeof result.statusCode === "string" && /^\s*\d+\s*$/.test(result.statusCode) ? Number(result.statusCode) : result.statusCode;
    if (typeof code !== "number" || !Number.isInteger(code) || code < 200 || code > 599) throw invalid();
    status = code;
  }
  const withoutType = headers.filter(([name]) => name.toLowerCase() !== "content-type");
  const declared = headers.find(([name]) => name.toLowerCase() === "content-type")?.[1];
  const body = result.body;
  const empty = (): WebResponse => ({ status: status ?? 204, headers: withoutType });
  if (body === undefined || body === null || body === "") return empty();
  if (NULL_BODY.has(status ?? 200)) return { status: status!, headers: withoutType };

  const media = declared === undefined ? undefined : parseMediaType(declared);
  if (declared !== undefined && !media) throw new ApiError(400, WebMessages.unknownContentType);
  if (typeof body === "string") {
    const type = media ?? parseMediaType("text/html")!;
    const contentType: [string, string] = ["content-type", responseContentType(type)];
    // Binary types carry base64; so may JSON types, a form older web actions still use.
    if (isBinary(type) || (isJsonFamily(type) && looksLikeBase64(body))) {
      const bytes = decodeBase64(body);
      if (!bytes) throw new ApiError(400, WebMessages.contentTypeMismatch);
      return { status: status ?? 200, headers: [...withoutType, contentType], body: bytes };
    }
    return { status: status ?? 200, headers: [...withoutType, contentType], body };
  }
  // A JSON value as the body: answered as JSON, which the declared type (if any) must be.
  const type = media ?? parseMediaType("application/json")!;
  if (!isJsonFamily(type)) throw new ApiError(400, WebMessages.contentTypeMismatch);
  const text = type.essence === "application/json" ? JSON.stringify(body) : pretty(body);
  return { status: status ?? 200, headers: [...withoutType, ["content-type", type.essence === "application/json" ? "application/json" : `${type.essence}; charset=UTF-8`]], body: text };
}

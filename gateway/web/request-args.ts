// The parameters a web action receives for an HTTP request, as OpenWhisk builds them: the request's
// context in `__ow_method`, `__ow_headers`, `__ow_path` (and `__ow_user` when the caller
// authenticated), then the query parameters and a JSON-object or form body as parameters of their
// own (the body's win). A raw-http action gets the query as the string `__ow_query` and the body
// as the string `__ow_body` instead; so does any action whose body is not a JSON object or form.
import { jsonTextTooDeepAt, MAX_JSON_DEPTH } from "../../contracts/index.ts";
import { ApiError, Messages } from "../errors.ts";
import { isBinary, isJsonFamily, parseMediaType } from "./media.ts";

export const RESERVED_PARAMS = ["__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query", "__ow_body"] as const;

export interface WebRequest {
  method: string;
  headers: Headers;
  /** The path after the action (and its extension): `/a/b`, or "". */
  path: string;
  /** The query string without `?`, as sent. */
  rawQuery: string;
  body: Uint8Array;
}

export interface WebArgs {
  /** Everything the action gets from the request. */
  args: Record<string, unknown>;
  /** The names the query, the body and `extra` set (checked against final and reserved parameters). */
  requestKeys: string[];
}

/**
 * `extra` are parameters the caller of this function adds beside the query and body, below the
 * body and above the query (an API route's path parameters).
 */
export function webArgs(req: WebRequest, opts: { raw: boolean; user?: string; extra?: Record<string, string> }): WebArgs {
  const headers: Record<string, string> = {};
  // The caller's API key is not handed to the action: it would let any web action, which may
  // belong to another namespace, act as the caller. (OpenWhisk passes it on.)
  req.headers.forEach((value, name) => {
    if (name !== "authorization") headers[name] = value;
  });
  const context: Record<string, unknown> = {
    __ow_method: req.method.toLowerCase(),
    __ow_headers: headers,
    __ow_path: req.path,
    ...(opts.user !== undefined && { __ow_user: opts.user }),
  };
  const extra = opts.extra ?? {};
  const contentType = req.headers.get("content-type");
  // No declared type is application/octet-stream, as in akka-http.
  const media = parseMediaType(contentType ?? "application/octet-stream");
  if (contentType !== null && !media) throw new ApiError(400, `the Content-Type header (${contentType.slice(0, 100)}) is not a media type`);

  if (opts.raw) {
    const rawBody = req.body.length === 0 ? "" : opaqueBody(req.body, media!, true);
    return { args: { ...context, ...extra, __ow_query: req.rawQuery, __ow_body: rawBody }, requestKeys: Object.keys(extra) };
  }

  const query: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(req.rawQuery)) query[key] = value;
  let body: Record<string, unknown> = {};
  // Only a JSON object's or a form's keys are the sender's to choose; `__ow_body` is ours.
  let bodyKeys: string[] = [];
  if (req.body.length > 0) {
    if (isJsonFamily(media!)) {
      const parsed = parseJson(new TextDecoder().decode(req.body));
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        body = parsed as Record<string, unknown>;
        bodyKeys = Object.keys(body);
      } else body = { __ow_body: parsed };
    } else if (media!.essence === "application/x-www-form-urlencoded") {
      for (const [key, value] of new URLSearchParams(new TextDecoder().decode(req.body))) body[key] = value;
      bodyKeys = Object.keys(body);
    } else {
      body = { __ow_body: opaqueBody(req.body, media!, false) };
    }
  }
  const requestKeys = [...new Set([...Object.keys(query), ...Object.keys(extra), ...bodyKeys])];
  return { args: { ...context, ...query, ...extra, ...body }, requestKeys };
}

/** A body the action gets as a string: base64 when binary (and, for raw-http, JSON as well, as OpenWhisk does). */
function opaqueBody(bytes: Uint8Array, media: NonNullable<ReturnType<typeof parseMediaType>>, raw: boolean): string {
  if (isBinary(media) || (raw && media.essence === "application/json")) return Buffer.from(bytes).toString("base64");
  return new TextDecoder().decode(bytes);
}

function parseJson(text: string): unknown {
  const at = jsonTextTooDeepAt(text);
  if (at >= 0) throw new ApiError(400, `request body nests arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels (at character ${at})`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, Messages.invalidJson, {}, { cause: err });
  }
}

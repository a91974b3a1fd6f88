// Request bodies: a size cap enforced on the declared and the streamed length, a nesting cap
// checked on the text before it is parsed, and JSON parsing that fails with the gateway's own
// 400/413/415 rather than Hono's plain-text defaults.
import type { IncomingMessage } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { jsonTextTooDeepAt, MAX_JSON_DEPTH } from "../contracts/index.ts";
import { ApiError, Messages } from "./errors.ts";

/** OpenWhisk accepts up to 5 MiB of code or parameters in one request. */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;

const tooLarge = () => new ApiError(413, `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`);

/**
 * Bounds the body. A declared Content-Length is checked as a number, and Node's HTTP parser
 * delivers exactly that many bytes, so nothing more is needed, and readJsonBody can read Node's
 * own request: the web Request and stream Hono's limiter would build cost ~75 µs a call. A body
 * without one (chunked) is counted as it streams, by Hono's limiter.
 */
export const limitBody = (): MiddlewareHandler => {
  const streamed = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: () => { throw tooLarge(); } });
  return async (c, next) => {
    const declared = c.req.header("content-length");
    if (declared === undefined || !/^\d{1,16}$/.test(declared) || c.req.header("transfer-encoding") !== undefined) return streamed(c, next);
    if (Number(declared) > MAX_BODY_BYTES) throw tooLarge();
    c.set("bodyDeclared", true);
    await next();
  };
};

/** Node's own request under @hono/node-server (its `env.incoming`), when the body may be read from it. */
function nodeRequest(c: Context): IncomingMessage | undefined {
  if (!c.get("bodyDeclared")) return undefined;
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return incoming && typeof incoming.on === "function" && !incoming.readableEnded ? incoming : undefined;
}

async function bodyText(c: Context): Promise<string> {
  const incoming = nodeRequest(c);
  if (!incoming) return c.req.text();
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  // As the web Request's text() does: a UTF-8 byte order mark is not part of the text.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * The request body parsed as JSON. An empty body yields `whenEmpty` when given (a POST without
 * parameters is fine); otherwise the body must be declared, nest at most MAX_JSON_DEPTH levels and
 * be valid JSON.
 */
export async function readJsonBody(c: Context, options: { whenEmpty?: unknown } = {}): Promise<unknown> {
  const text = await bodyText(c);
  if (text.trim() === "" && options.whenEmpty !== undefined) return options.whenEmpty;
  if (!JSON_MEDIA_TYPE.test(c.req.header("content-type") ?? "")) throw new ApiError(415, Messages.notJson);
  // Before the parse: a body nested 100k deep parses fine in V8 but overflowed the stack later, in
  // the JSON.stringify that stores an action or queues an invocation (a 500, or a 503 that blamed
  // the queue). Every route reading JSON comes through here, so nothing deeper gets further.
  const at = jsonTextTooDeepAt(text);
  if (at >= 0) {
    throw new ApiError(400, `request body nests arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels (at character ${at})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, Messages.invalidJson, {}, { cause: err });
  }
}

// Request bodies: a size cap enforced on the declared and the streamed length, a nesting cap
// checked on the text before it is parsed, and JSON parsing that fails with the gateway's own
// 400/413/415 rather than Hono's plain-text defaults.
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { jsonTextTooDeepAt, MAX_JSON_DEPTH } from "../contracts/index.ts";
import { ApiError, Messages } from "./errors.ts";

/** OpenWhisk accepts up to 5 MiB of code or parameters in one request. */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;

export const limitBody = () =>
  bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new ApiError(413, `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`);
    },
  });

const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * The request body parsed as JSON. An empty body yields `whenEmpty` when given (a POST without
 * parameters is fine); otherwise the body must be declared, nest at most MAX_JSON_DEPTH levels and
 * be valid JSON.
 */
export async function readJsonBody(c: Context, options: { whenEmpty?: unknown } = {}): Promise<unknown> {
  const text = await c.req.text();
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

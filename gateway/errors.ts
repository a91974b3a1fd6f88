// Every error leaves the gateway as OpenWhisk's `{error, code}` JSON. `code` is the request id (the
// X-Request-Id response header, also logged with server errors), as OpenWhisk puts its transaction
// id there: clients show it to users, operators grep the logs for it.
import type { ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import type { z } from "zod";
import type { GatewayEnv } from "./env.ts";

/** OpenWhisk's wording where it has one, so clients matching on messages keep working. */
export const Messages = {
  notFound: "The requested resource does not exist.",
  unauthenticated: "The supplied authentication is invalid.",
  forbidden: "The supplied authentication is not authorized to access this resource.",
  exists: "resource already exists",
  concurrentModification: "Concurrent modification to resource detected.",
  invalidJson: "request body is not valid JSON",
  notJson: "Content-Type must be application/json",
  internal: "There was an error processing your request.",
  unavailable: "The platform is busy or reconnecting to NATS; try again shortly.",
} as const;

/**
 * Retry-After (s) on a 503 that names no wait of its own: every 503 the gateway sends carries one,
 * so clients back off instead of hammering a platform that is reconnecting.
 */
export const DEFAULT_RETRY_AFTER_S = 1;

/**
 * NATS failures that say "not now" rather than "broken": a request that timed out, nobody
 * answering, a connection being re-established, JetStream shedding load. They become 503 with
 * Retry-After, which clients retry, instead of a 500.
 */
const TRANSIENT_NATS_ERRORS = new Set([
  "TimeoutError", "NoResponders", "RequestError", "ClosedConnectionError", "DrainingConnectionError", "ConnectionError",
]);
function isTransientNatsError(err: Error): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (TRANSIENT_NATS_ERRORS.has(e.name)) return true;
    if (e.name === "JetStreamApiError" && (e as { code?: number }).code === 503) return true;
  }
  return false;
}

/** An error with the status and message the client should see; headers go on the response. */
export class ApiError extends HTTPException {
  override name = "ApiError";
  constructor(
    status: ContentfulStatusCode,
    message: string,
    readonly headers: Record<string, string> = {},
    options?: ErrorOptions,
  ) {
    super(status, { message, ...options });
  }
}

/** `exec.kind: Invalid option: expected one of "nodejs"|"c"`, one clause per issue. */
export function describeIssues(error: z.ZodError, root = "body"): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : root}: ${issue.message}`)
    .join("; ");
}

/** Parses `value` with `schema` or fails the request with 400 naming the offending fields. */
export function validate<T extends z.ZodType>(schema: T, value: unknown, root?: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, describeIssues(parsed.error, root));
  return parsed.data;
}

export function errorHandler(logger: Logger): ErrorHandler<GatewayEnv> {
  return function renderError(err, c) {
    const code = c.get("requestId");
    if (err instanceof HTTPException) {
      const headers = err instanceof ApiError ? err.headers : {};
      for (const [name, value] of Object.entries(headers)) c.header(name, value);
      if (err.status === 503 && !Object.keys(headers).some((name) => name.toLowerCase() === "retry-after")) {
        c.header("Retry-After", String(DEFAULT_RETRY_AFTER_S));
      }
      return c.json({ error: err.message, code }, err.status);
    }
    if (isTransientNatsError(err)) {
      logger.warn({ err, reqId: code, method: c.req.method, path: c.req.path }, "NATS unavailable for a request");
      c.header("Retry-After", String(DEFAULT_RETRY_AFTER_S));
      return c.json({ error: Messages.unavailable, code }, 503);
    }
    logger.error({ err, reqId: code, method: c.req.method, path: c.req.path }, "unexpected error");
    return c.json({ error: Messages.internal, code }, 500);
  };
}

export const notFoundHandler: NotFoundHandler<GatewayEnv> = (c) =>
  c.json({ error: Messages.notFound, code: c.get("requestId") }, 404);

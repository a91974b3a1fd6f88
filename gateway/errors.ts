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
} as const;

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
      return c.json({ error: err.message, code }, err.status);
    }
    logger.error({ err, code, method: c.req.method, path: c.req.path }, "unexpected error");
    return c.json({ error: Messages.internal, code }, 500);
  };
}

export const notFoundHandler: NotFoundHandler<GatewayEnv> = (c) =>
  c.json({ error: Messages.notFound, code: c.get("requestId") }, 404);

// One debug line per HTTP request, tagged with its id (`reqId`, the X-Request-Id the caller sent
// or the gateway made) and, for an invocation, the activation it queued, so a call can be followed
// from the gateway's line to the scheduler's and the runner's, which carry the same two ids.
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { GatewayEnv } from "./env.ts";

/** Set by invocations (routes/actions.ts, web actions) on their answers. */
const ACTIVATION_ID_HEADER = "x-openwhisk-activation-id";

/**
 * Costs one level check per request at the default level (info): request lines are debug lines,
 * as a busy gateway's info log would otherwise be nothing but them.
 */
export function logRequests(logger: Logger): MiddlewareHandler<GatewayEnv> {
  return async (c, next) => {
    if (!logger.isLevelEnabled("debug")) return next();
    const started = performance.now();
    await next();
    const activationId = c.res.headers.get(ACTIVATION_ID_HEADER) ?? undefined;
    logger.debug(
      {
        reqId: c.get("requestId"),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ...(activationId !== undefined && { activationId }),
      },
      "request",
    );
  };
}

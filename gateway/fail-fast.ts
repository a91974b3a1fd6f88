// Every namespaced route reads or writes NATS (keys, entities, records, the queue). While the
// gateway is not connected, such a request would wait for the client's request timeout (seconds)
// and then fail anyway; this answers it 503 with Retry-After at once instead.
import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "./env.ts";
import { ApiError, Messages } from "./errors.ts";

export function failFastWhenDisconnected(isConnected: () => boolean): MiddlewareHandler<GatewayEnv> {
  return async (_c, next) => {
    if (!isConnected()) throw new ApiError(503, Messages.unavailable, { "Retry-After": "1" });
    await next();
  };
}

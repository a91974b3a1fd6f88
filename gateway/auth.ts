// Middleware that puts the caller's namespace on the context, and scopes `{ns}` paths to it.
import type { MiddlewareHandler } from "hono";
import type { Authenticate } from "./authenticator.ts";
import type { GatewayEnv } from "./env.ts";
import { ApiError, Messages } from "./errors.ts";

/** Stands for "the caller's own namespace" in paths, as in OpenWhisk. */
const OWN_NAMESPACE = "_";

export function requireApiKey(authenticate: Authenticate): MiddlewareHandler<GatewayEnv> {
  return async function apiKeyAuth(c, next) {
    const namespace = await authenticate(c.req.header("authorization"));
    if (namespace === undefined) {
      throw new ApiError(401, Messages.unauthenticated, { "WWW-Authenticate": 'Basic realm="vespid"' });
    }
    c.set("namespace", namespace);
    await next();
  };
}

/** Resolves the path's `:namespace` against the caller's: `_` means theirs, any other is forbidden. */
export function scopeToCallerNamespace(): MiddlewareHandler<GatewayEnv> {
  return async function namespaceScope(c, next) {
    const requested = c.req.param("namespace");
    if (requested !== OWN_NAMESPACE && requested !== c.get("namespace")) {
      throw new ApiError(403, Messages.forbidden);
    }
    await next();
  };
}

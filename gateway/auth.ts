// Middleware that puts the caller's namespace on the context, and scopes `{ns}` paths to it.
import type { MiddlewareHandler } from "hono";
import { EntityName } from "../contracts/index.ts";
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

/**
 * What OpenWhisk lets any authenticated caller do in another namespace (its entitlement rules):
 * list its packages (only the published ones are answered), read a package, and read or invoke an
 * action inside a package. Whether that package is published is the routes' check; every other
 * method or path naming another namespace is refused here. HEAD is answered by the GET routes.
 */
const SHARED_ROUTES: ReadonlyArray<{ methods: readonly string[]; path: RegExp }> = [
  { methods: ["GET", "HEAD"], path: /^\/packages\/?$/ },
  { methods: ["GET", "HEAD"], path: /^\/packages\/[^/]+\/?$/ },
  { methods: ["GET", "HEAD", "POST"], path: /^\/actions\/[^/]+\/[^/]+\/?$/ },
];

/** The part of the path after `/api/v1/namespaces/{ns}`. */
const rest = (path: string): string => path.replace(/^\/api\/v1\/namespaces\/[^/]*/, "");

/**
 * Resolves the path's `:namespace` against the caller's: `_` means theirs; another one is allowed
 * only for the shared routes above, and is then put on the context as `pathNamespace`.
 */
export function scopeToCallerNamespace(): MiddlewareHandler<GatewayEnv> {
  return async function namespaceScope(c, next) {
    const caller = c.get("namespace");
    const requested = c.req.param("namespace") ?? OWN_NAMESPACE;
    if (requested === OWN_NAMESPACE || requested === caller) {
      c.set("pathNamespace", caller);
      return next();
    }
    const shared = SHARED_ROUTES.some(({ methods, path }) => methods.includes(c.req.method) && path.test(rest(c.req.path)));
    // A name no namespace could have is refused like any other foreign path, not looked up.
    if (!shared || !EntityName.safeParse(requested).success) throw new ApiError(403, Messages.forbidden);
    c.set("pathNamespace", requested);
    await next();
  };
}

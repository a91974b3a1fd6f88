// /api/{namespace}/{base path}/{path}: the URLs `wsk api create` hands out. The route table
// (gateway/api-gateway/store.ts, kept current by a KV watch) names the web action, which runs as a
// web action would (gateway/web/run-web-action.ts) with the route's response type; path
// parameters (`/books/{id}`) reach it as parameters, and `__ow_path` is the path under the base
// path. No credentials are needed, as with OpenWhisk's API gateway.
import { Hono, type Context, type Next } from "hono";
import type { RouteStore } from "../api-gateway/store.ts";
import { limitBody } from "../body.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages } from "../errors.ts";
import { REQUIRE_WHISK_AUTH_HEADER, runWebAction, type WebActionDeps } from "../web/run-web-action.ts";
import { webRequestOf } from "./web.ts";

export interface ApiGatewayDeps extends WebActionDeps {
  routes: RouteStore;
}

export function apiGatewayRoutes(deps: ApiGatewayDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const serve = async (c: Context<GatewayEnv>, next: Next) => {
    const [, , nsSegment = "", ...rest] = c.req.path.split("/");
    // /api/v1/… is the REST API's: a route registered after this one still gets its requests.
    if (nsSegment === "v1") return next();
    let namespace: string;
    try {
      namespace = decodeURIComponent(nsSegment);
    } catch {
      throw new ApiError(404, Messages.notFound);
    }
    const match = deps.routes.match(namespace, `/${rest.join("/")}`, c.req.method);
    if (match.kind === "none") throw new ApiError(404, Messages.notFound);
    if (match.kind === "wrong-method") {
      throw new ApiError(405, `the route does not answer ${c.req.method}; it answers ${match.allowed.join(", ")}`, { Allow: match.allowed.join(", ") });
    }
    const request = await webRequestOf(c, match.relPath);
    if (match.operation.secureKey !== undefined) {
      // The route's secure key is what OpenWhisk's gateway adds for `require-whisk-auth: "<key>"`.
      const headers = new Headers(request.headers);
      headers.set(REQUIRE_WHISK_AUTH_HEADER, match.operation.secureKey);
      request.headers = headers;
    }
    return runWebAction(deps, {
      at: match.operation.action,
      extension: match.operation.responseType,
      request,
      // OpenWhisk's gateway calls the action with its owner's key: the route counts as authenticated.
      caller: match.api.namespace,
      extra: match.params,
      requestId: c.get("requestId"),
    });
  };
  app.all("/api/:namespace", limitBody(), serve);
  app.all("/api/:namespace/*", limitBody(), serve);
  return app;
}

// /api/v1/web/{namespace}/{package|default}/{action}[.http|.json|.text|.html|.svg][/more/path]:
// OpenWhisk's web actions, answered without an API key (gateway/web/run-web-action.ts). Any HTTP
// method; a valid key, when sent, is passed on as `__ow_user` and satisfies `require-whisk-auth: true`.
import { Hono, type Context } from "hono";
import { EntityName } from "../../contracts/index.ts";
import type { Authenticate } from "../authenticator.ts";
import { limitBody } from "../body.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages } from "../errors.ts";
import type { WebRequest } from "../web/request-args.ts";
import { EXTENSIONS, type Extension } from "../web/respond.ts";
import { runWebAction, type WebActionDeps } from "../web/run-web-action.ts";

export interface WebRoutesDeps extends WebActionDeps {
  authenticate: Authenticate;
}

export const WEB_PREFIX = "/api/v1/web";

/** The package segment that means "no package", as in OpenWhisk. */
const DEFAULT_PACKAGE = "default";

/** `name.json` → [name, json]; a name without a known extension is `.http` (OpenWhisk's default). */
export function splitExtension(segment: string): [string, Extension] {
  for (const ext of EXTENSIONS) if (segment.endsWith(`.${ext}`) && segment.length > ext.length + 1) return [segment.slice(0, -ext.length - 1), ext];
  return [segment, "http"];
}

const decode = (segment: string): string | undefined => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
};
const validName = (name: string | undefined): name is string => name !== undefined && EntityName.safeParse(name).success;

/** The request as a web action sees it; `path` is what follows the action in the URL. */
export async function webRequestOf(c: Context<GatewayEnv>, path: string): Promise<WebRequest> {
  const url = new URL(c.req.url);
  return {
    method: c.req.method,
    headers: c.req.raw.headers,
    path,
    rawQuery: url.search.replace(/^\?/, ""),
    body: new Uint8Array(await c.req.arrayBuffer()),
  };
}

/** The caller's namespace when the request carries a valid key; none or a wrong one is anonymous. */
export const callerOf = (deps: { authenticate: Authenticate }, c: Context<GatewayEnv>) => deps.authenticate(c.req.header("authorization"));

export function webRoutes(deps: WebRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.all(`${WEB_PREFIX}/*`, limitBody(), async (c) => {
    const [nsSegment, pkgSegment, actionSegment, ...rest] = c.req.path.slice(WEB_PREFIX.length + 1).split("/");
    const namespace = decode(nsSegment ?? "");
    const pkg = decode(pkgSegment ?? "");
    const [name, extension] = splitExtension(decode(actionSegment ?? "") ?? "");
    if (!validName(namespace) || !validName(pkg) || !validName(name)) throw new ApiError(404, Messages.notFound);
    const request = await webRequestOf(c, rest.length > 0 ? `/${rest.join("/")}` : "");
    const caller = await callerOf(deps, c);
    return runWebAction(deps, {
      at: { namespace, ...(pkg !== DEFAULT_PACKAGE && { pkg }), name },
      extension,
      request,
      ...(caller !== undefined && { caller }),
      requestId: c.get("requestId"),
    });
  });
  return app;
}

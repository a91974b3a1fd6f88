// The Hono environment every gateway route shares: what middleware puts on the context.
import type { RequestIdVariables } from "hono/request-id";

export type GatewayEnv = {
  Variables: RequestIdVariables & {
    /** The caller's namespace, set by the auth middleware once the credentials check out. */
    namespace: string;
    /**
     * The namespace the path names, `_` resolved: the caller's, or another one's when the request
     * is one of the shared reads and invocations auth.ts lets through (published packages only).
     */
    pathNamespace: string;
    /**
     * Set by limitBody (gateway/body.ts) when the declared Content-Length is within the bound:
     * the body may be read straight from Node's request, without a web Request around it.
     */
    bodyDeclared?: boolean;
  };
};

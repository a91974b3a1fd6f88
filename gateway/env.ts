// The Hono environment every gateway route shares: what middleware puts on the context.
import type { RequestIdVariables } from "hono/request-id";

export type GatewayEnv = {
  Variables: RequestIdVariables & {
    /** The caller's namespace, set by the auth middleware once the credentials check out. */
    namespace: string;
  };
};

// GET /api/v1/namespaces: the namespaces the caller's key may use — exactly its own, as in
// OpenWhisk where one key belongs to one namespace (`wsk namespace list` calls this).
import { Hono } from "hono";
import { requireApiKey } from "../auth.ts";
import type { Authenticate } from "../authenticator.ts";
import type { GatewayEnv } from "../env.ts";

export function namespaceListRoutes(deps: { authenticate: Authenticate }): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.get("/api/v1/namespaces", requireApiKey(deps.authenticate), (c) => c.json([c.get("namespace")]));
  return app;
}

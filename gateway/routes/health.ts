// Unauthenticated endpoints for load balancers and clients discovering the API.
import { Hono } from "hono";
import { ActionKind, CodeKind, runtimeOf } from "../../contracts/index.ts";
import type { GatewayEnv } from "../env.ts";

export function healthRoutes(deps: { isConnected: () => boolean }): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get("/health", (c) =>
    deps.isConnected() ? c.json({ status: "ok" }) : c.json({ status: "unavailable", reason: "not connected to NATS" }, 503),
  );

  app.get("/api/v1", (c) =>
    c.json({
      description: "Vespid, an OpenWhisk-compatible API",
      api_version: "1.0.0",
      api_version_path: "v1",
      // By family, as OpenWhisk lists them: every kind a PUT accepts, the family's own name the default.
      runtimes: Object.fromEntries(
        ActionKind.options.map((family) => [
          family,
          CodeKind.options.filter((kind) => runtimeOf(kind) === family).map((kind) => ({ kind, default: kind === family })),
        ]),
      ),
    }),
  );

  return app;
}

// Unauthenticated endpoints for load balancers and clients discovering the API.
import { Hono } from "hono";
import { ActionKind, CodeKind, runtimeOf } from "../../contracts/index.ts";
import type { GatewayEnv } from "../env.ts";
import type { LiveRunner } from "../runners.ts";

export interface HealthDeps {
  isConnected: () => boolean;
  /** The runners heard from lately (gateway/runners.ts). */
  liveRunners: () => LiveRunner[];
}

/** Why a platform without runners is degraded rather than down: the API still answers. */
export const NO_RUNNER_REASON = "no runner is live: invocations wait until one starts, and creating or updating code answers 503";

export function healthRoutes(deps: HealthDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  // 503 only when this gateway cannot serve at all (NATS away); without runners it still serves
  // reads and queues invocations, so it answers 200 with status "degraded" and says why.
  app.get("/health", (c) => {
    if (!deps.isConnected()) return c.json({ status: "unavailable", reason: "not connected to NATS" }, 503);
    const runners = deps.liveRunners();
    if (runners.length === 0) return c.json({ status: "degraded", reason: NO_RUNNER_REASON, runners });
    return c.json({ status: "ok", runners });
  });

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

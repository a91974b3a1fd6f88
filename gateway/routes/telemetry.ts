// GET /metrics (Prometheus text, bearer token) and GET /api/v1/stats (the caller's namespace's
// figures and the live runners', API key): docs/telemetry.md.
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { requireApiKey } from "../auth.ts";
import type { Authenticate } from "../authenticator.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError } from "../errors.ts";
import type { GatewayTelemetry } from "../telemetry.ts";

export interface TelemetryDeps {
  authenticate: Authenticate;
  /** The gateway's telemetry and the token /metrics requires (gateway/metrics-token.ts); absent: 404. */
  telemetry?: { telemetry: GatewayTelemetry; metricsToken: string };
}

/** The telemetry, or a 404 for a gateway built without it (a test's app). */
function enabled(deps: TelemetryDeps): NonNullable<TelemetryDeps["telemetry"]> {
  if (!deps.telemetry) throw new ApiError(404, "telemetry is not enabled on this gateway");
  return deps.telemetry;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Whether `header` is `Bearer <token>`, compared in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m !== null && timingSafeEqual(digest(m[1]!), digest(token));
}

export function telemetryRoutes(deps: TelemetryDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.get("/metrics", async (c) => {
    const { telemetry, metricsToken } = enabled(deps);
    if (!bearerMatches(c.req.header("authorization"), metricsToken)) {
      throw new ApiError(401, "The metrics token is missing or wrong: send Authorization: Bearer <token> (VESPID_METRICS_TOKEN, or the file metrics.token in the data directory).", {
        "WWW-Authenticate": 'Bearer realm="vespid-metrics"',
      });
    }
    const { contentType, text } = await telemetry.metricsText();
    return c.body(text, 200, { "Content-Type": contentType });
  });
  // The authenticator is looked up per request: routes are built before deps are complete in tests.
  app.get("/api/v1/stats", (c, next) => requireApiKey(deps.authenticate)(c, next), (c) => c.json(enabled(deps).telemetry.stats(c.get("namespace"))));
  return app;
}

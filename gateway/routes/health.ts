// Unauthenticated endpoints for load balancers and clients discovering the API.
import { Hono } from "hono";
import { ActionKind, CodeKind, runtimeOf } from "../../contracts/index.ts";
import type { GatewayEnv } from "../env.ts";
import type { JetStreamHealth } from "../jetstream-status.ts";
import { DEFAULT_RETRY_AFTER_S } from "../errors.ts";
import type { LiveRunner } from "../runners.ts";

export interface HealthDeps {
  isConnected: () => boolean;
  /** The runners heard from lately (gateway/runners.ts). */
  liveRunners: () => LiveRunner[];
  /** JetStream's state as last checked: leaders of the queue and buckets, queue depth. */
  jetstream?: () => JetStreamHealth;
}

/** Why a platform without runners is degraded rather than down: the API still answers. */
export const NO_RUNNER_REASON = "no runner is live: invocations wait until one starts, and creating or updating code answers 503";

/** Why a gateway that takes invocations is still not quite well: a full queue, the fires stream. */
function degradation(jetstream: JetStreamHealth): string | undefined {
  if (jetstream.queued !== undefined && jetstream.queued >= jetstream.maxQueue) {
    return `the invocation queue is full (${jetstream.queued} waiting, the limit is ${jetstream.maxQueue}): new invocations are refused with 503 until runners catch up`;
  }
  const streams = Object.entries(jetstream.streams);
  if (streams.length > 0) return streams.map(([name, problem]) => `${name}: ${problem}`).join("; ");
  return undefined;
}

export function healthRoutes(deps: HealthDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  // 503 only when this gateway cannot serve at all (NATS away); without runners it still serves
  // reads and queues invocations, so it answers 200 with status "degraded" and says why.
  app.get("/health", (c) => {
    if (!deps.isConnected()) return c.json({ status: "unavailable", reason: "not connected to NATS" }, 503, { "Retry-After": String(DEFAULT_RETRY_AFTER_S) });
    // JetStream counts as up only when it answers and the queue and buckets have leaders
    // (gateway/jetstream-status.ts, checked every 250 ms–2 s), not merely when the TCP link is.
    const jetstream = deps.jetstream?.();
    if (jetstream && !jetstream.ok) {
      return c.json({ status: "unavailable", reason: jetstream.reason, jetstream }, 503, { "Retry-After": String(DEFAULT_RETRY_AFTER_S) });
    }
    const runners = deps.liveRunners();
    if (runners.length === 0) return c.json({ status: "degraded", reason: NO_RUNNER_REASON, runners, ...(jetstream && { jetstream }) });
    const degraded = jetstream && degradation(jetstream);
    if (degraded) return c.json({ status: "degraded", reason: degraded, runners, jetstream });
    return c.json({ status: "ok", runners, ...(jetstream && { jetstream }) });
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

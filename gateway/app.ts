// The gateway's HTTP API as a Hono app built from its dependencies, so tests can drive it with
// app.request() without a socket.
import { Hono } from "hono";
import { randomHex } from "../infra/random-hex.ts";
import { requestId } from "hono/request-id";
import type { Logger } from "pino";
import type { ActionStore } from "./action-store.ts";
import type { ActivationStore } from "./activation-store.ts";
import { requireApiKey, scopeToCallerNamespace } from "./auth.ts";
import type { Authenticate } from "./authenticator.ts";
import type { BuildCode } from "./build.ts";
import type { GatewayEnv } from "./env.ts";
import { errorHandler, notFoundHandler } from "./errors.ts";
import { failFastWhenDisconnected } from "./fail-fast.ts";
import { logRequests } from "./request-log.ts";
import type { Invoker } from "./invoke.ts";
import type { RouteStore } from "./api-gateway/store.ts";
import { actionRoutes } from "./routes/actions.ts";
import { apiGatewayRoutes } from "./routes/api-gateway.ts";
import { apiMgmtRoutes } from "./routes/apimgmt.ts";
import { activationRoutes } from "./routes/activations.ts";
import { consoleRoutes } from "./routes/console.ts";
import { docsRoutes } from "./routes/docs.ts";
import { healthRoutes } from "./routes/health.ts";
import { namespaceListRoutes } from "./routes/namespaces.ts";
import { packageRoutes } from "./routes/packages.ts";
import { webRoutes } from "./routes/web.ts";
import { ruleRoutes } from "./routes/rules.ts";
import { deadLetterRoutes } from "./routes/dead-letters.ts";
import { triggerRoutes } from "./routes/triggers.ts";
import { webhookRoutes } from "./routes/webhooks.ts";
import { telemetryRoutes } from "./routes/telemetry.ts";
import type { GatewayTelemetry } from "./telemetry.ts";
import type { EventEntities } from "../triggers/entities.ts";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { PackageStore } from "./package-store.ts";
import type { LiveRunner } from "./runners.ts";
import type { Isolation } from "../contracts/index.ts";
import type { VersionStore } from "./version-store.ts";
import type { IdempotencyStore } from "./idempotency.ts";
import type { JetStreamHealth } from "./jetstream-status.ts";

export interface GatewayDeps {
  logger: Logger;
  authenticate: Authenticate;
  actions: ActionStore;
  activations: ActivationStore;
  packages: PackageStore;
  versions: VersionStore;
  build: BuildCode;
  invoker: Invoker;
  blockingWaitMs: number;
  isConnected: () => boolean;
  /** The runners heard from lately, for /health. */
  liveRunners: () => LiveRunner[];
  /** The weakest tier a namespace's actions may run on, when its admin set one. */
  namespaceIsolation: (namespace: string) => Isolation | undefined;
  /** Triggers, rules and feed registrations (watched copies kept current), for their routes. */
  events: EventEntities;
  /** Where trigger fires are published (triggers/publish.ts). */
  js: JetStreamClient;
  /** The NATS server's largest message, bytes. */
  maxPayload: () => number;
  /** API gateway routes (`wsk api`), watched from KV. */
  routes: RouteStore;
  /** Idempotency-Key claims (gateway/idempotency.ts). */
  idempotency: IdempotencyStore;
  /** JetStream's state as last checked (gateway/jetstream-status.ts), for /health and failing fast. */
  jetstream?: () => JetStreamHealth;
  /** Metrics and stats (gateway/telemetry.ts) with the token /metrics requires; absent: no such routes. */
  telemetry?: { telemetry: GatewayTelemetry; metricsToken: string };
}

/** Short enough to read out, long enough not to collide within a log's lifetime. */
const newRequestId = () => randomHex(8);

export function createApp(deps: GatewayDeps): Hono<GatewayEnv> {
  const namespaced = new Hono<GatewayEnv>()
    .use(failFastWhenDisconnected(deps.isConnected), requireApiKey(deps.authenticate), scopeToCallerNamespace())
    .route("/actions", actionRoutes(deps))
    .route("/activations", activationRoutes(deps))
    .route("/packages", packageRoutes(deps))
    .route("/triggers", triggerRoutes(deps))
    .route("/rules", ruleRoutes(deps))
    .route("/deadletters", deadLetterRoutes(deps));

  const app = new Hono<GatewayEnv>()
    // An incoming X-Request-Id of up to 128 word characters is kept (the caller's own tracing id);
    // anything else gets a new one. Either way it is echoed and carried into the logs.
    .use(requestId({ generator: newRequestId, limitLength: 128 }))
    .use(logRequests(deps.logger))
    .use(deps.telemetry ? deps.telemetry.telemetry.countRequests() : (_c, next) => next())
    // Webhooks and web actions read NATS before anything else: 503 at once while it is away.
    .use("/api/v1/webhooks/*", failFastWhenDisconnected(deps.isConnected))
    .use("/api/v1/web/*", failFastWhenDisconnected(deps.isConnected))
    .route("/", healthRoutes(deps))
    .route("/", docsRoutes())
    .route("/", telemetryRoutes(deps))
    // The web console: `/` and /console/<asset> only, so it shadows no API route.
    .route("/", consoleRoutes())
    .route("/", namespaceListRoutes(deps))
    // No API key: a trigger's own annotations say whether it answers, and with which secret.
    .route("/api/v1/webhooks", webhookRoutes(deps))
    .route("/api/v1/namespaces/:namespace", namespaced)
    // Web actions and API routes answer without an API key (they may check one themselves).
    // The route management endpoints come before the web actions whose paths they borrow, and
    // the API routes (/api/{namespace}/…) after everything else under /api.
    .route("/", apiMgmtRoutes(deps))
    .route("/", webRoutes(deps))
    .route("/", apiGatewayRoutes(deps));
  app.onError(errorHandler(deps.logger));
  app.notFound(notFoundHandler);
  return app;
}

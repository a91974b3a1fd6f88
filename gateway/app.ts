// The gateway's HTTP API as a Hono app built from its dependencies, so tests can drive it with
// app.request() without a socket.
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { Logger } from "pino";
import type { ActionStore } from "./action-store.ts";
import type { ActivationStore } from "./activation-store.ts";
import { requireApiKey, scopeToCallerNamespace } from "./auth.ts";
import type { Authenticate } from "./authenticator.ts";
import type { BuildCode } from "./build.ts";
import type { GatewayEnv } from "./env.ts";
import { errorHandler, notFoundHandler } from "./errors.ts";
import type { Invoker } from "./invoke.ts";
import { actionRoutes } from "./routes/actions.ts";
import { activationRoutes } from "./routes/activations.ts";
import { docsRoutes } from "./routes/docs.ts";
import { healthRoutes } from "./routes/health.ts";
import { namespaceListRoutes } from "./routes/namespaces.ts";
import { packageRoutes } from "./routes/packages.ts";
import type { PackageStore } from "./package-store.ts";
import type { LiveRunner } from "./runners.ts";
import type { Isolation } from "../contracts/index.ts";
import type { VersionStore } from "./version-store.ts";

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
}

/** Short enough to read out, long enough not to collide within a log's lifetime. */
const newRequestId = () => randomBytes(8).toString("hex");

export function createApp(deps: GatewayDeps): Hono<GatewayEnv> {
  const namespaced = new Hono<GatewayEnv>()
    .use(requireApiKey(deps.authenticate), scopeToCallerNamespace())
    .route("/actions", actionRoutes(deps))
    .route("/activations", activationRoutes(deps))
    .route("/packages", packageRoutes(deps));

  const app = new Hono<GatewayEnv>()
    .use(requestId({ generator: newRequestId }))
    .route("/", healthRoutes(deps))
    .route("/", docsRoutes())
    .route("/", namespaceListRoutes(deps))
    .route("/api/v1/namespaces/:namespace", namespaced);
  app.onError(errorHandler(deps.logger));
  app.notFound(notFoundHandler);
  return app;
}

// Everything the gateway's routes depend on, opened over one NATS connection.
import { randomBytes } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { activationKey, IDEMPOTENCY_BUCKET } from "../contracts/index.ts";
import { DEFAULT_MAX_BLOCKING_WAITS, DEFAULT_MAX_QUEUE } from "../infra/config.ts";
import { IdempotencyStore } from "./idempotency.ts";
import { JetStreamStatus } from "./jetstream-status.ts";
import { ACTION_VERSIONS_BUCKET, ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, LIMIT_COUNTS_BUCKET, NAMESPACES_BUCKET, PACKAGES_BUCKET, ROUTES_BUCKET, type NamespaceLimits } from "../contracts/index.ts";
import { ActionStore } from "./action-store.ts";
import { RouteStore } from "./api-gateway/store.ts";
import { ActivationStore } from "./activation-store.ts";
import type { GatewayDeps } from "./app.ts";
import { createAuthenticator } from "./authenticator.ts";
import { createBuilder } from "./build.ts";
import { Admin } from "../admin/namespaces.ts";
import { installCatalog } from "../catalog/install.ts";
import { DEFAULT_NAMESPACE, ensureDefaultApiKey } from "./default-key.ts";
import { DEFAULT_NAMESPACE_LIMITS, NamespaceLimiter } from "./limits.ts";
import { createInvoker } from "./invoke.ts";
import { DirectDispatch } from "./direct-dispatch.ts";
import { KvReadCache, readThrough, watchChangedKeys } from "../infra/kv-cache.ts";
import { PackageStore } from "./package-store.ts";
import { watchRunners } from "./runners.ts";
import { ResultInbox } from "./result-inbox.ts";
import { VersionStore } from "./version-store.ts";
import { openEventEntities } from "../triggers/entities.ts";
import { ensureMetricsToken } from "./metrics-token.ts";
import { GatewayTelemetry } from "./telemetry.ts";

/** OpenWhisk's blocking invocations wait this long before answering 202 with the id, ms. */
export const DEFAULT_BLOCKING_WAIT_MS = 60_000;

export interface GatewayServicesOptions {
  nc: NatsConnection;
  dataDir: string;
  logger: Logger;
  blockingWaitMs?: number;
  /** Limits of namespaces the admin set none for (gateway/limits.ts DEFAULT_NAMESPACE_LIMITS). */
  namespaceLimits?: NamespaceLimits;
  /** Pending invocations beyond which this gateway refuses more (503); infra/config.ts DEFAULT_MAX_QUEUE. */
  maxQueue?: number;
  /** Blocking callers this gateway waits for at once; infra/config.ts DEFAULT_MAX_BLOCKING_WAITS. */
  maxBlockingWaits?: number;
  /** Blocking calls go straight to runners (default true; VESPID_DIRECT_CALLS=off turns it off). */
  directCalls?: boolean;
}

export interface GatewayServices {
  deps: GatewayDeps;
  /** The default namespace's `uuid:key`, when this data directory holds it. */
  apiKey?: string;
  /** Where GET /metrics' token comes from: the token file's path, or VESPID_METRICS_TOKEN. */
  metricsTokenSource?: string;
  close(): void;
}

export async function openGatewayServices(opts: GatewayServicesOptions): Promise<GatewayServices> {
  const { nc, dataDir, logger } = opts;
  const kvm = new Kvm(nc);
  const [actionsKv, activationsKv, authKv, packagesKv, versionsKv] = await Promise.all([
    kvm.open(ACTIONS_BUCKET),
    kvm.open(ACTIVATIONS_BUCKET),
    kvm.open(AUTH_BUCKET),
    kvm.open(PACKAGES_BUCKET),
    kvm.open(ACTION_VERSIONS_BUCKET),
  ]);
  const apiKey = await ensureDefaultApiKey(authKv, dataDir, logger);
  // Every invocation reads its action (and package): from memory, kept current by watches.
  const actionsCache = new KvReadCache(actionsKv, logger);
  const packagesCache = new KvReadCache(packagesKv, logger);
  await Promise.all([actionsCache.start(), packagesCache.start()]);
  // A verified key is remembered; a change to its record (deleted, replaced) forgets it at once.
  const authenticate = createAuthenticator(authKv);
  const stopKeyWatch = await watchChangedKeys(authKv, (uuid) => authenticate.forget(uuid), (err) => {
    if (err) logger.warn({ err }, "watching API keys stopped; verified keys expire after their time instead");
  });
  await (await Admin.open(nc)).ensureNamespace(DEFAULT_NAMESPACE);
  // whisk.system and its published packages (utils, alarms, nats): stored or brought up to date.
  await installCatalog(nc, logger);
  // Names this gateway's result subjects; only [A-Za-z0-9_-] so it is a single subject token.
  const gatewayId = `gw-${randomBytes(6).toString("hex")}`;
  const limiter = new NamespaceLimiter(
    await kvm.open(NAMESPACES_BUCKET),
    await kvm.open(LIMIT_COUNTS_BUCKET),
    gatewayId,
    opts.namespaceLimits ?? DEFAULT_NAMESPACE_LIMITS,
    logger,
  );
  await limiter.start();
  const inbox = new ResultInbox(nc, gatewayId, logger, async (namespace, activationId) => {
    const entry = await activationsKv.get(activationKey(namespace, activationId));
    return entry?.operation === "PUT" ? entry.value : undefined;
  });
  // JetStream's state, checked in the background: invocations are refused at once (503) when it
  // cannot take them or the queue is full, and /health says so.
  const jetstreamStatus = new JetStreamStatus(nc, opts.maxQueue ?? DEFAULT_MAX_QUEUE, logger);
  await jetstreamStatus.start();
  const maxBlockingWaits = opts.maxBlockingWaits ?? DEFAULT_MAX_BLOCKING_WAITS;
  const idempotency = new IdempotencyStore(await kvm.open(IDEMPOTENCY_BUCKET), activationsKv, maxBlockingWaits);
  const routes = new RouteStore(await kvm.open(ROUTES_BUCKET), logger);
  await routes.start();
  const link = watchConnection(nc);
  // Blocking calls go straight to a runner with room (gateway/direct-dispatch.ts) unless turned off.
  const direct = opts.directCalls === false ? undefined : new DirectDispatch({
    nc,
    gatewayId,
    logger,
    // The invoker's own republish (its checks and bounds); called only later, once it exists.
    requeue: async (event) => void (await invoker.requeue(event)),
  });
  const runners = watchRunners(nc, logger, undefined, direct && ((beat) => direct.heartbeat(beat)));
  const events = await openEventEntities(nc, logger);
  // GET /metrics and /api/v1/stats: the runners' published metrics merged with this gateway's.
  const metricsToken = await ensureMetricsToken(dataDir);
  const invoker = createInvoker(jetstream(nc), inbox, logger, limiter, () => nc.info?.max_payload ?? Infinity, { status: jetstreamStatus, maxBlockingWaits, direct });
  const telemetry = new GatewayTelemetry({ nc, gatewayId, logger, liveRunners: () => runners.live(), blockingWaits: () => inbox.waitingCount });
  const deps: GatewayDeps = {
    logger,
    authenticate,
    actions: new ActionStore(readThrough(actionsKv, actionsCache)),
    activations: new ActivationStore(activationsKv, jetstream(nc)),
    packages: new PackageStore(readThrough(packagesKv, packagesCache)),
    versions: new VersionStore(versionsKv),
    build: createBuilder(nc, () => runners.live()),
    invoker: telemetry.countInvocations(invoker),
    telemetry: { telemetry, metricsToken: metricsToken.token },
    idempotency,
    jetstream: () => jetstreamStatus.health(),
    blockingWaitMs: opts.blockingWaitMs ?? DEFAULT_BLOCKING_WAIT_MS,
    isConnected: () => link.connected && !nc.isClosed(),
    liveRunners: () => runners.live(),
    namespaceIsolation: (namespace) => limiter.requiredIsolation(namespace),
    events,
    js: jetstream(nc),
    maxPayload: () => nc.info?.max_payload ?? Infinity,
    routes,
  };
  return {
    deps,
    apiKey,
    metricsTokenSource: metricsToken.source,
    close: () => {
      telemetry.close();
      jetstreamStatus.close();
      runners.close();
      direct?.close();
      actionsCache.stop();
      stopKeyWatch();
      packagesCache.stop();
      events.stop();
      inbox.close();
      routes.close();
      void limiter.close();
    },
  };
}

/**
 * Whether the connection is up right now: the client reconnects forever, so "not closed" is not
 * enough for /health to tell a load balancer to look elsewhere while NATS is away.
 */
function watchConnection(nc: NatsConnection): { connected: boolean } {
  const link = { connected: true };
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnecting") link.connected = false;
      else if (status.type === "reconnect") link.connected = true;
    }
  })();
  return link;
}

// Everything the gateway's routes depend on, opened over one NATS connection.
import { randomBytes } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ACTION_VERSIONS_BUCKET, ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, LIMIT_COUNTS_BUCKET, NAMESPACES_BUCKET, PACKAGES_BUCKET, type NamespaceLimits } from "../contracts/index.ts";
import { ActionStore } from "./action-store.ts";
import { ActivationStore } from "./activation-store.ts";
import type { GatewayDeps } from "./app.ts";
import { createAuthenticator } from "./authenticator.ts";
import { createBuilder } from "./build.ts";
import { Admin } from "../admin/namespaces.ts";
import { DEFAULT_NAMESPACE, ensureDefaultApiKey } from "./default-key.ts";
import { DEFAULT_NAMESPACE_LIMITS, NamespaceLimiter } from "./limits.ts";
import { createInvoker } from "./invoke.ts";
import { PackageStore } from "./package-store.ts";
import { watchRunners } from "./runners.ts";
import { ResultInbox } from "./result-inbox.ts";
import { VersionStore } from "./version-store.ts";

/** OpenWhisk's blocking invocations wait this long before answering 202 with the id, ms. */
export const DEFAULT_BLOCKING_WAIT_MS = 60_000;

export interface GatewayServicesOptions {
  nc: NatsConnection;
  dataDir: string;
  logger: Logger;
  blockingWaitMs?: number;
  /** Limits of namespaces the admin set none for (gateway/limits.ts DEFAULT_NAMESPACE_LIMITS). */
  namespaceLimits?: NamespaceLimits;
}

export interface GatewayServices {
  deps: GatewayDeps;
  /** The default namespace's `uuid:key`, when this data directory holds it. */
  apiKey?: string;
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
  await (await Admin.open(nc)).ensureNamespace(DEFAULT_NAMESPACE);
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
  const inbox = new ResultInbox(nc, gatewayId, logger);
  const link = watchConnection(nc);
  const runners = watchRunners(nc, logger);
  const deps: GatewayDeps = {
    logger,
    authenticate: createAuthenticator(authKv),
    actions: new ActionStore(actionsKv),
    activations: new ActivationStore(activationsKv, jetstream(nc)),
    packages: new PackageStore(packagesKv),
    versions: new VersionStore(versionsKv),
    build: createBuilder(nc),
    invoker: createInvoker(jetstream(nc), inbox, logger, limiter, () => nc.info?.max_payload ?? Infinity),
    blockingWaitMs: opts.blockingWaitMs ?? DEFAULT_BLOCKING_WAIT_MS,
    isConnected: () => link.connected && !nc.isClosed(),
    liveRunners: () => runners.live(),
    namespaceIsolation: (namespace) => limiter.requiredIsolation(namespace),
  };
  return {
    deps,
    apiKey,
    close: () => {
      runners.close();
      inbox.close();
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

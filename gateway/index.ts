// The gateway: OpenWhisk's REST API over HTTP, turning requests into KV reads/writes and
// invocation events on JetStream.
import type { NatsConnection } from "@nats-io/transport-node";
import type pino from "pino";
import type { NamespaceLimits } from "../contracts/index.ts";
import { createApp } from "./app.ts";
import { startHttpServer } from "./http-server.ts";
import { openGatewayServices } from "./services.ts";

export interface GatewayOptions {
  nc: NatsConnection;
  /** 0 picks a free port. */
  port: number;
  host: string;
  dataDir: string;
  logger: pino.Logger;
  /** How long a blocking invocation waits before answering 202 (ms); OpenWhisk's 60 s by default. */
  blockingWaitMs?: number;
  /** Limits of namespaces the admin set none for (default: gateway/limits.ts DEFAULT_NAMESPACE_LIMITS). */
  namespaceLimits?: NamespaceLimits;
  /** Pending invocations beyond which invocations are refused with 503 (VESPID_MAX_QUEUE). */
  maxQueue?: number;
  /** Blocking callers waited for at once (VESPID_MAX_BLOCKING_WAITS). */
  maxBlockingWaits?: number;
  /** Blocking calls go straight to runners with room (default true; VESPID_DIRECT_CALLS). */
  directCalls?: boolean;
}

export interface Gateway {
  port: number;
  url: string;
  /** The default namespace's `uuid:key`, when this data directory holds it. */
  apiKey?: string;
  close(): Promise<void>;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const logger = opts.logger.child({ component: "gateway" });
  const services = await openGatewayServices({ nc: opts.nc, dataDir: opts.dataDir, logger, blockingWaitMs: opts.blockingWaitMs, namespaceLimits: opts.namespaceLimits, maxQueue: opts.maxQueue, maxBlockingWaits: opts.maxBlockingWaits, directCalls: opts.directCalls });
  const app = createApp(services.deps);
  let http;
  try {
    http = await startHttpServer(app.fetch, opts.port, opts.host);
  } catch (err) {
    services.close();
    throw err;
  }
  const url = `http://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${http.port}`;
  logger.info({ url }, "gateway listening");

  return {
    port: http.port,
    url,
    apiKey: services.apiKey,
    async close() {
      const closed = http.close();
      // Blocking callers still waiting are answered 202 now rather than after their full wait.
      services.close();
      await closed;
    },
  };
}

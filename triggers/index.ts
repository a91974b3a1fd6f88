// The triggers component: everything that turns events into activations. Each service is
// `start(opts) → { stop() }`; adding one is one line in SERVICES. They start in list order and
// stop in reverse, and one that fails to start stops the ones already running.
import type { NatsConnection } from "@nats-io/transport-node";
import type pino from "pino";
import type { NamespaceLimits } from "../contracts/index.ts";
import { startFireConsumer } from "./fire-consumer.ts";
import { startNatsFeeds } from "./nats-feed.ts";
import { startAlarms } from "./alarms.ts";

export interface TriggersOptions {
  nc: NatsConnection;
  logger: pino.Logger;
  /** Limits of namespaces the admin set none for (gateway/limits.ts DEFAULT_NAMESPACE_LIMITS). */
  namespaceLimits?: NamespaceLimits;
}

export interface TriggersService {
  stop(): Promise<void>;
}

type StartService = (opts: TriggersOptions) => Promise<TriggersService>;

/** Every service of the component, in start order. */
const SERVICES: Array<{ name: string; start: StartService }> = [
  { name: "fire consumer", start: startFireConsumer },
  { name: "NATS feed service", start: startNatsFeeds },
  { name: "alarms service", start: startAlarms },
];

export async function startTriggers(opts: TriggersOptions): Promise<{ stop(): Promise<void> }> {
  const logger = opts.logger.child({ component: "triggers" });
  const running: Array<{ name: string; service: TriggersService }> = [];
  const stopAll = async () => {
    for (const { name, service } of running.splice(0).reverse()) {
      try {
        await service.stop();
      } catch (err) {
        logger.error({ err }, `stopping the ${name} failed`);
      }
    }
  };
  try {
    for (const { name, start } of SERVICES) running.push({ name, service: await start({ ...opts, logger }) });
  } catch (err) {
    await stopAll();
    throw err;
  }
  logger.info({ services: SERVICES.map((s) => s.name) }, "triggers started");
  return { stop: stopAll };
}

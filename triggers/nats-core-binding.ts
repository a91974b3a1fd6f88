// A trigger bound to a core-NATS subject: a queue-group subscription whose messages are fired in
// the order they arrived. Core NATS is at-most-once: a message that arrives while no triggers
// component is subscribed, or while the backlog below is full, is gone — use a stream for
// delivery that survives that.
import { randomBytes } from "node:crypto";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { entityKey, type FeedRegistration, type NatsFeedParams } from "../contracts/index.ts";
import { MAX_NATS_DATA_BYTES, natsFirePayload } from "./nats-payload.ts";
import type { FireFromFeed } from "./nats-feed.ts";

/**
 * Messages received and not yet fired, per trigger. Firing is one JetStream publish, so the
 * backlog only grows while publishes are slower than the publisher; beyond these bounds messages
 * are dropped (and counted in the log) rather than held in memory without limit.
 */
export const MAX_CORE_BACKLOG_MESSAGES = 10_000;
export const MAX_CORE_BACKLOG_BYTES = 64 * 1024 * 1024;
/** Tries per message before it is dropped, and the pause between them (ms). */
const FIRE_ATTEMPTS = 3;
const RETRY_PAUSE_MS = 250;
/** Dropped messages are logged as one count at most this often (ms), not one line each. */
const DROP_REPORT_MS = 5_000;

export interface FeedBinding {
  /** Stops firing; what the binding holds on the server stays (the process is stopping, or a pause). */
  stop(): Promise<void>;
  /** Stops firing and releases what the binding made on the server (its registration is gone). */
  remove(): Promise<void>;
}

/**
 * Every triggers component subscribes in the same queue group, one per trigger: each message
 * fires the trigger once however many components run, and two triggers on one subject each fire.
 */
export const coreQueueGroup = (reg: FeedRegistration): string => `vespid-feed.${entityKey(reg.namespace, reg.trigger)}`;

export function bindCoreSubject(nc: NatsConnection, reg: FeedRegistration, params: NatsFeedParams, fire: FireFromFeed, logger: Logger): FeedBinding {
  const log = logger.child({ trigger: `${reg.namespace}/${reg.trigger}`, subject: params.subject });
  const backlog: Msg[] = [];
  let backlogBytes = 0;
  let dropped = 0;
  let lastDropReport = 0;
  let stopped = false;
  let draining: Promise<void> | undefined;

  const drop = (why: string) => {
    dropped++;
    const now = Date.now();
    if (now - lastDropReport >= DROP_REPORT_MS) {
      log.warn({ dropped, why }, "dropped NATS messages for a trigger (core NATS is at-most-once)");
      lastDropReport = now;
      dropped = 0;
    }
  };

  const fireOne = async (msg: Msg) => {
    const payload = natsFirePayload({ subject: msg.subject, data: msg.data, headers: msg.headers });
    // One id for every attempt: a retry after a publish whose answer was lost is deduplicated.
    const activationId = randomBytes(16).toString("hex");
    for (let attempt = 1; ; attempt++) {
      try {
        await fire(reg, payload, activationId);
        return;
      } catch (err) {
        if (attempt >= FIRE_ATTEMPTS || stopped) {
          log.warn({ err, activationId }, "could not fire a trigger for a NATS message; dropped");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS * attempt));
      }
    }
  };

  // One loop per binding, so fires are stored in the order the messages arrived.
  const drain = async () => {
    while (backlog.length > 0 && !stopped) {
      const msg = backlog.shift()!;
      backlogBytes -= msg.data.length;
      await fireOne(msg);
    }
    draining = undefined;
  };

  const sub: Subscription = nc.subscribe(params.subject, {
    queue: coreQueueGroup(reg),
    callback: (err, msg) => {
      if (err) return log.error({ err }, "NATS feed subscription failed");
      if (stopped) return;
      if (msg.data.length > MAX_NATS_DATA_BYTES) return drop(`message of ${msg.data.length} bytes is larger than the limit of ${MAX_NATS_DATA_BYTES}`);
      if (backlog.length >= MAX_CORE_BACKLOG_MESSAGES || backlogBytes + msg.data.length > MAX_CORE_BACKLOG_BYTES) return drop("backlog full");
      backlog.push(msg);
      backlogBytes += msg.data.length;
      draining ??= drain();
    },
  });
  log.debug("bound trigger to a core NATS subject");

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    sub.unsubscribe();
    if (backlog.length > 0) log.info({ discarded: backlog.length }, "NATS feed stopped with messages not yet fired");
    backlog.length = 0;
    backlogBytes = 0;
    await draining;
  };
  return { stop, remove: stop };
}

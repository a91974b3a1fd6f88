// The scheduler: takes invocation events off JetStream and places each on the live runner with
// the most free slots, acking the event once the runner has recorded the activation.
import { jetstreamManager, type ConsumerMessages } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type pino from "pino";
import {
  ACTIVATIONS_BUCKET,
  decodeMessage,
  INVOCATIONS_STREAM,
  RUNNER_HEARTBEAT_SUBJECT,
  RunnerHeartbeat,
  SCHEDULER_CONSUMER,
} from "../contracts/index.ts";
import { ActivationRecorder } from "../runner/recorder.ts";
import { createAbandon } from "./abandon.ts";
import { ensureSchedulerConsumer } from "./consumer.ts";
import { Dispatcher } from "./dispatcher.ts";
import { RunnerTable } from "./runner-table.ts";

export interface SchedulerOptions {
  nc: NatsConnection;
  logger: pino.Logger;
}

export async function startScheduler(opts: SchedulerOptions): Promise<{ close(): Promise<void> }> {
  const { nc } = opts;
  const logger = opts.logger.child({ component: "scheduler" });
  const jsm = await jetstreamManager(nc);
  await ensureSchedulerConsumer(jsm);
  const activations = await new Kvm(nc).open(ACTIVATIONS_BUCKET);

  const runners = new RunnerTable();
  const dispatcher = new Dispatcher({
    nc,
    runners,
    abandon: createAbandon(new ActivationRecorder(nc, activations, logger)),
    logger,
  });

  const heartbeats = nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, {
    callback: (err, msg) => {
      if (err) return logger.error({ err }, "heartbeat subscription failed");
      const heartbeat = decodeMessage(RunnerHeartbeat, msg.data);
      if (!heartbeat.success) return logger.warn({ issues: heartbeat.error.issues }, "ignoring a malformed heartbeat");
      runners.observe(heartbeat.data);
      dispatcher.pump();
    },
  });

  const consumer = await jsm.jetstream().consumers.get(INVOCATIONS_STREAM, SCHEDULER_CONSUMER);
  const messages = await consumer.consume();
  reportTrouble(messages, logger).catch((err) => logger.error({ err }, "consumer status stream failed"));
  const consuming = (async () => {
    for await (const msg of messages) dispatcher.accept(msg);
  })().catch((err) => logger.error({ err }, "consuming invocation events failed"));
  logger.info("scheduler started");

  return {
    async close() {
      await messages.close();
      await consuming;
      // Placements under way still need heartbeats to tell a live runner from a dead one.
      await dispatcher.close();
      heartbeats.unsubscribe();
    },
  };
}

/** Consumer notifications worth an operator's attention; the client recovers from them itself. */
async function reportTrouble(messages: ConsumerMessages, logger: pino.Logger): Promise<void> {
  for await (const status of messages.status()) {
    switch (status.type) {
      case "heartbeats_missed":
      case "consumer_not_found":
      case "consumer_deleted":
      case "stream_not_found":
      case "no_responders":
        logger.warn({ status }, "invocation consumer trouble");
    }
  }
}

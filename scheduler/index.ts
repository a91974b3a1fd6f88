// The scheduler: takes invocation events off JetStream and places each on the live runner with
// the most free slots, acking the event once the runner has recorded the activation (leases and
// retries: scheduler/dispatcher.ts).
import { randomBytes } from "node:crypto";
import { jetstreamManager, type ConsumerMessages } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type pino from "pino";
import {
  ACTIVATIONS_BUCKET,
  AssignmentNotice,
  decodeMessage,
  INVOCATIONS_STREAM,
  RUNNER_HEARTBEAT_SUBJECT,
  RunnerHeartbeat,
  SCHEDULER_CONSUMER,
  schedulerNoticeSubject,
} from "../contracts/index.ts";
import { ActivationRecorder } from "../runner/recorder.ts";
import { createAbandon } from "./abandon.ts";
import { ensureSchedulerConsumer } from "./consumer.ts";
import { createDeadLetterWriter } from "./dead-letters.ts";
import { Dispatcher } from "./dispatcher.ts";
import { maxRetriesFromEnv } from "./retries.ts";
import { RunnerTable } from "./runner-table.ts";

export interface SchedulerOptions {
  nc: NatsConnection;
  logger: pino.Logger;
  /** System failures retried before an event is dead-lettered (default: VESPID_MAX_RETRIES, else 4). */
  maxRetries?: number;
  /** Defaults to a random one; names the subject runners send this scheduler's notices to. */
  schedulerId?: string;
}

export async function startScheduler(opts: SchedulerOptions): Promise<{ close(): Promise<void> }> {
  const { nc } = opts;
  const maxRetries = opts.maxRetries ?? maxRetriesFromEnv();
  const schedulerId = opts.schedulerId ?? randomBytes(8).toString("hex");
  const logger = opts.logger.child({ component: "scheduler", schedulerId });
  const jsm = await jetstreamManager(nc);
  await ensureSchedulerConsumer(jsm);
  const activations = await new Kvm(nc).open(ACTIVATIONS_BUCKET);

  const runners = new RunnerTable();
  const recorder = new ActivationRecorder(nc, activations, logger);
  const noticeSubject = schedulerNoticeSubject(schedulerId);
  const dispatcher = new Dispatcher({
    nc,
    runners,
    abandon: createAbandon(recorder),
    logger,
    noticeSubject,
    hasRecord: async (event) => (await recorder.existing(event.namespace, event.activationId)) !== undefined,
    deadLetter: createDeadLetterWriter(nc),
    maxRetries,
  });

  // Subscribed before any assignment goes out, so no notice can come too early.
  const notices = nc.subscribe(noticeSubject, {
    callback: (err, msg) => {
      if (err) return logger.error({ err }, "notice subscription failed");
      const notice = decodeMessage(AssignmentNotice, msg.data);
      if (!notice.success) return logger.warn({ issues: notice.error.issues }, "ignoring a malformed runner notice");
      dispatcher.notice(notice.data);
    },
  });
  watchConnection(nc, dispatcher, logger).catch((err) => logger.error({ err }, "connection status stream failed"));

  const heartbeats = nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, {
    callback: (err, msg) => {
      if (err) return logger.error({ err }, "heartbeat subscription failed");
      const heartbeat = decodeMessage(RunnerHeartbeat, msg.data);
      if (!heartbeat.success) return logger.warn({ issues: heartbeat.error.issues }, "ignoring a malformed heartbeat");
      runners.observe(heartbeat.data);
      dispatcher.heartbeat(heartbeat.data.runnerId);
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
      notices.unsubscribe();
    },
  };
}

/** Tells the dispatcher when this connection drops and comes back (runners are not judged meanwhile). */
async function watchConnection(nc: NatsConnection, dispatcher: Dispatcher, logger: pino.Logger): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === "disconnect") {
      logger.warn("disconnected from NATS");
      dispatcher.connection(false);
    } else if (status.type === "reconnect") {
      logger.info("reconnected to NATS");
      dispatcher.connection(true);
    }
  }
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

// A trigger bound to a subject of an existing JetStream stream, through a durable pull consumer.
// Delivery is at-least-once: a message is acked only after its fire is durable in VESPID_FIRES,
// and the fire's activation id is derived from (stream, sequence, trigger), so a redelivered
// message is dropped by the fires stream's duplicate window instead of firing twice. Messages are
// pulled in bounded batches and fired one at a time, so a burst waits in the stream (the consumer's
// pending count), never in this process's memory.
import { createHash } from "node:crypto";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { FeedRegistration, NatsFeedParams } from "../contracts/index.ts";
import type { FeedBinding } from "./nats-core-binding.ts";
import type { FireFromFeed } from "./nats-feed.ts";
import { MAX_NATS_DATA_BYTES, natsFirePayload } from "./nats-payload.ts";

/** Messages pulled at once per trigger: all the memory a burst can take here. */
export const STREAM_PULL_BATCH = 64;
/** Unacked this long (ms), a message is redelivered; working() extends it while a fire is pending. */
const ACK_WAIT_MS = 30_000;
/** Delivered and not yet acked, across every triggers component: the consumer's backpressure. */
const MAX_ACK_PENDING = 1_000;
/** Tries to fire one message before it is handed back (nak) for redelivery later. */
const FIRE_ATTEMPTS = 3;
const RETRY_PAUSE_MS = 500;
const NAK_DELAY_MS = 2_000;
/** Pause before binding again after the stream or consumer could not be reached (ms). */
const REBIND_PAUSE_MS = 2_000;
/** Metadata marking a consumer Vespid made, so it deletes only its own. */
const OWNER_METADATA = "vespid-trigger";
const CREATED_METADATA = "vespid-registered";

/** The consumer's name when the registration names none: stable per trigger, a valid name. */
export function derivedDurable(reg: FeedRegistration): string {
  const digest = createHash("sha256").update(`${reg.namespace}/${reg.trigger}`).digest("hex");
  return `vespid-feed-${digest.slice(0, 24)}`;
}

/**
 * The fire's activation id for one stream message: the same for every delivery of it, different
 * for every trigger and for a stream of the same name created anew (sequences restart).
 */
export function streamFireId(streamCreated: string, stream: string, sequence: number, reg: FeedRegistration): string {
  return createHash("sha256")
    .update(`${streamCreated}\n${stream}\n${sequence}\n${reg.namespace}\n${reg.trigger}`)
    .digest("hex")
    .slice(0, 32);
}

export function bindStream(jsm: JetStreamManager, reg: FeedRegistration, params: NatsFeedParams & { stream: string }, fire: FireFromFeed, logger: Logger): FeedBinding {
  const stream = params.stream;
  const durable = params.durable ?? derivedDurable(reg);
  const owner = `${reg.namespace}/${reg.trigger}`;
  const log = logger.child({ trigger: owner, subject: params.subject, stream, durable });
  let stopped = false;
  let messages: ConsumerMessages | undefined;
  let wake: (() => void) | undefined;
  let lastProblem = "";

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const wanted: Partial<ConsumerConfig> = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    // Every message stored from the moment the trigger was registered, even those published
    // before this component got round to creating the consumer.
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(reg.created).toISOString(),
    filter_subject: params.subject,
    ack_wait: nanos(ACK_WAIT_MS),
    max_ack_pending: MAX_ACK_PENDING,
    metadata: { [OWNER_METADATA]: owner, [CREATED_METADATA]: String(reg.created) },
  };

  /** Makes sure the durable exists, reads this trigger's subject, and is ours or a pull consumer given by name. */
  const ensureConsumer = async () => {
    let refused: JetStreamApiError;
    try {
      await jsm.consumers.add(stream, wanted);
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code === JetStreamApiCodes.StreamNotFound) throw err;
      refused = err;
    }
    // It exists with another configuration, or the server refused ours (say, a subject the
    // stream does not hold): then its reason is the one to log.
    const info = await jsm.consumers.info(stream, durable).catch((err) => {
      throw err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound ? refused : err;
    });
    const meta = info.config.metadata ?? {};
    if (meta[OWNER_METADATA] === owner) {
      if (meta[CREATED_METADATA] !== String(reg.created)) {
        // Left from an earlier registration of this trigger: start over from this one's time.
        await jsm.consumers.delete(stream, durable);
        await jsm.consumers.add(stream, wanted);
      } else if (info.config.filter_subject !== params.subject) {
        await jsm.consumers.update(stream, durable, { filter_subject: params.subject });
      }
      return;
    }
    if (meta[OWNER_METADATA] !== undefined) throw new Error(`consumer ${durable} on stream ${stream} belongs to trigger ${meta[OWNER_METADATA]}`);
    // A consumer the user made and named: used as it is, if it is a pull consumer of this subject.
    if (info.config.deliver_subject) throw new Error(`consumer ${durable} on stream ${stream} is a push consumer; a NATS feed needs a pull consumer`);
    const filters = info.config.filter_subjects ?? (info.config.filter_subject ? [info.config.filter_subject] : []);
    if (filters.length !== 1 || filters[0] !== params.subject) {
      throw new Error(`consumer ${durable} on stream ${stream} reads ${filters.join(", ") || "every subject"}, not ${params.subject}`);
    }
  };

  const handle = async (msg: JsMsg, streamCreated: string) => {
    const sequence = msg.info.streamSequence;
    if (msg.data.length > MAX_NATS_DATA_BYTES) {
      log.warn({ sequence, bytes: msg.data.length }, `stream message larger than the limit of ${MAX_NATS_DATA_BYTES} bytes; not fired (terminated)`);
      msg.term(`larger than ${MAX_NATS_DATA_BYTES} bytes`);
      return;
    }
    const payload = natsFirePayload({ subject: msg.subject, data: msg.data, headers: msg.headers, stream: { name: stream, sequence } });
    const activationId = streamFireId(streamCreated, stream, sequence, reg);
    // A slow publish must not let the message be redelivered meanwhile.
    const keepAlive = setInterval(() => msg.working(), ACK_WAIT_MS / 3);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await fire(reg, payload, activationId);
          msg.ack();
          return;
        } catch (err) {
          if (attempt >= FIRE_ATTEMPTS || stopped) {
            log.warn({ err, sequence, activationId }, "could not fire a trigger for a stream message; it will be redelivered");
            msg.nak(NAK_DELAY_MS);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS * attempt));
        }
      }
    } finally {
      clearInterval(keepAlive);
    }
  };

  const problem = (err: unknown) => {
    const text = (err as Error)?.message ?? String(err);
    // Logged once per distinct problem, not every retry.
    if (text !== lastProblem) log.warn({ err }, "NATS stream feed cannot read its stream; retrying");
    lastProblem = text;
  };

  const run = async () => {
    while (!stopped) {
      try {
        const info = await jsm.streams.info(stream);
        await ensureConsumer();
        if (stopped) return;
        const consumer = await jsm.jetstream().consumers.get(stream, durable);
        messages = await consumer.consume({ max_messages: STREAM_PULL_BATCH, abort_on_missing_resource: true });
        if (stopped) {
          await messages.close();
          return;
        }
        lastProblem = "";
        log.debug("bound trigger to a stream");
        for await (const msg of messages) {
          if (stopped) break;
          await handle(msg, info.created);
        }
        // The iterator ended: stopped, or the stream or consumer went away (then bind again).
      } catch (err) {
        if (!stopped) problem(err);
      }
      messages = undefined;
      if (!stopped) await pause(REBIND_PAUSE_MS);
    }
  };
  const running = run();

  const stop = async () => {
    stopped = true;
    wake?.();
    // Messages pulled but not yet handled go back to the stream when their ack wait runs out.
    await messages?.close().catch(() => undefined);
    await running;
  };

  return {
    stop,
    async remove() {
      await stop();
      try {
        const info = await jsm.consumers.info(stream, durable);
        if (info.config.metadata?.[OWNER_METADATA] === owner) await jsm.consumers.delete(stream, durable);
      } catch (err) {
        // Gone already (another triggers component removed it, or the stream was deleted).
        if (!(err instanceof JetStreamApiError)) log.warn({ err }, "could not delete a NATS feed's consumer");
      }
    },
  };
}

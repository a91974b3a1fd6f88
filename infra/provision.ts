// Creates the JetStream stream and KV buckets Vespid needs. Every component calls it at startup, so
// start order does not matter: it is idempotent and safe to run from several processes at once.
import { jetstreamManager, DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, INVOCATIONS_STREAM, INVOKE_SUBJECT_PREFIX } from "../contracts/index.ts";

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** An invocation nobody placed within this time is dropped (ms); callers have long given up. */
export const INVOCATION_MAX_AGE_MS = DAY_MS;
/** A republished invocation with the same Nats-Msg-Id within this window is ignored (ms). */
export const INVOCATION_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
/** Activation records are kept this long (ms), then expire. */
export const ACTIVATION_TTL_MS = 7 * DAY_MS;

/** JetStream's error code for "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

export const INVOCATIONS_STREAM_CONFIG = {
  name: INVOCATIONS_STREAM,
  subjects: [`${INVOKE_SUBJECT_PREFIX}.>`],
  // Each event is deleted once a scheduler acks it: a queue, not a log.
  retention: RetentionPolicy.Workqueue,
  storage: StorageType.File,
  max_age: nanos(INVOCATION_MAX_AGE_MS),
  duplicate_window: nanos(INVOCATION_DUPLICATE_WINDOW_MS),
  discard: DiscardPolicy.Old,
} satisfies Partial<StreamConfig>;

/** Bucket name → what it must look like. History 1: only the current value of a key matters. */
export const BUCKETS = {
  [ACTIONS_BUCKET]: { history: 1, ttl: 0 },
  [ACTIVATIONS_BUCKET]: { history: 1, ttl: ACTIVATION_TTL_MS },
  [AUTH_BUCKET]: { history: 1, ttl: 0 },
} as const;

export async function provision(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, INVOCATIONS_STREAM_CONFIG);
  const kvm = new Kvm(nc);
  for (const [bucket, want] of Object.entries(BUCKETS)) {
    await ensureBucket(jsm, kvm, bucket, want);
  }
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    // Adding a stream that exists with the very same config succeeds, which covers the common case
    // and two processes racing to create it.
    await jsm.streams.add(config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE)) throw err;
    // It exists, from an older Vespid or changed by hand: bring our settings back, keep the rest.
    try {
      await jsm.streams.update(config.name, config);
    } catch (updateErr) {
      throw new Error(`stream ${config.name} exists with a configuration Vespid cannot update: ${(updateErr as Error).message}`);
    }
  }
}

async function ensureBucket(jsm: JetStreamManager, kvm: Kvm, bucket: string, want: { history: number; ttl: number }): Promise<void> {
  // Creates the bucket, or opens it if it exists (whatever its settings).
  const kv = await kvm.create(bucket, { history: want.history, ttl: want.ttl, storage: StorageType.File });
  const status = await kv.status();
  if (status.history === want.history && status.ttl === want.ttl) return;
  const stream = status.streamInfo.config.name;
  await jsm.streams.update(stream, { max_msgs_per_subject: want.history, max_age: nanos(want.ttl) });
}

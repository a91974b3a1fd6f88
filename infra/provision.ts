// Creates the JetStream stream and KV buckets Vespid needs. Every component calls it at startup, so
// start order does not matter: it is idempotent and safe to run from several processes at once.
import { jetstreamManager, DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  ACTION_VERSIONS_BUCKET, LIMIT_COUNTS_BUCKET, NAMESPACES_BUCKET, ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, PACKAGES_BUCKET, INVOCATIONS_STREAM, INVOKE_SUBJECT_PREFIX,
  FIRES_STREAM, FIRE_SUBJECT_PREFIX, TRIGGERS_BUCKET, RULES_BUCKET, FEEDS_BUCKET, ALARM_TICKS_BUCKET,
} from "../contracts/index.ts";

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** How long a gateway's published invocation counts outlive its last refresh (ms). */
export const LIMIT_COUNT_TTL_MS = 10_000;
/** An invocation nobody placed within this time is dropped (ms); callers have long given up. */
export const INVOCATION_MAX_AGE_MS = DAY_MS;
/** A republished invocation with the same Nats-Msg-Id within this window is ignored (ms). */
export const INVOCATION_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
/** Activation records are kept this long (ms) by default, then expire (VESPID_ACTIVATION_RETENTION). */
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

/** Trigger fires wait here until a triggers component has started their rules: a queue as well. */
export const FIRES_STREAM_CONFIG = {
  ...INVOCATIONS_STREAM_CONFIG,
  name: FIRES_STREAM,
  subjects: [`${FIRE_SUBJECT_PREFIX}.>`],
} satisfies Partial<StreamConfig>;

/** Bucket name → what it must look like. History 1: only the current value of a key matters. */
export const BUCKETS = {
  [ACTIONS_BUCKET]: { history: 1, ttl: 0 },
  [ACTIVATIONS_BUCKET]: { history: 1, ttl: ACTIVATION_TTL_MS },
  [AUTH_BUCKET]: { history: 1, ttl: 0 },
  [PACKAGES_BUCKET]: { history: 1, ttl: 0 },
  // One key per version (bounded by gateway/version-store.ts), not KV history: versions must be
  // listable and individually deletable.
  [ACTION_VERSIONS_BUCKET]: { history: 1, ttl: 0 },
  [NAMESPACES_BUCKET]: { history: 1, ttl: 0 },
  // Gateways refresh their counts every LIMIT_COUNT_REFRESH_MS (gateway/limits.ts); a crashed
  // gateway's counts, in-flight invocations included, vanish after this.
  [LIMIT_COUNTS_BUCKET]: { history: 1, ttl: LIMIT_COUNT_TTL_MS },
  [TRIGGERS_BUCKET]: { history: 1, ttl: 0 },
  [RULES_BUCKET]: { history: 1, ttl: 0 },
  [FEEDS_BUCKET]: { history: 1, ttl: 0 },
  // A claimed tick only has to outlive the moment it could be claimed twice.
  [ALARM_TICKS_BUCKET]: { history: 1, ttl: DAY_MS },
} as const;

export interface ProvisionOptions {
  /**
   * Max age of activation records, ms (VESPID_ACTIVATION_RETENTION). Given: applied, to an
   * existing bucket too. Not given: a new bucket gets ACTIVATION_TTL_MS and an existing one keeps
   * its retention, so a process started without the setting (a runner, the admin command) does
   * not undo the operator's choice.
   */
  activationRetentionMs?: number;
}

export async function provision(nc: NatsConnection, opts: ProvisionOptions = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, INVOCATIONS_STREAM_CONFIG);
  await ensureStream(jsm, FIRES_STREAM_CONFIG);
  const kvm = new Kvm(nc);
  for (const [bucket, want] of Object.entries(BUCKETS)) {
    const retention = bucket === ACTIVATIONS_BUCKET ? opts.activationRetentionMs : want.ttl;
    await ensureBucket(jsm, kvm, bucket, { history: want.history, ttl: retention ?? want.ttl, keepTtl: retention === undefined });
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

/** `keepTtl`: `ttl` is only for a new bucket; an existing one keeps its own. */
async function ensureBucket(jsm: JetStreamManager, kvm: Kvm, bucket: string, want: { history: number; ttl: number; keepTtl?: boolean }): Promise<void> {
  // Creates the bucket, or opens it if it exists (whatever its settings).
  const kv = await kvm.create(bucket, { history: want.history, ttl: want.ttl, storage: StorageType.File });
  const status = await kv.status();
  const ttl = want.keepTtl ? status.ttl : want.ttl;
  if (status.history === want.history && status.ttl === ttl) return;
  const stream = status.streamInfo.config.name;
  await jsm.streams.update(stream, { max_msgs_per_subject: want.history, max_age: nanos(ttl) });
}

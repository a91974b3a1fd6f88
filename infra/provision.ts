// Creates the JetStream stream and KV buckets Vespid needs. Every component calls it at startup, so
// start order does not matter: it is idempotent and safe to run from several processes at once.
import { jetstreamManager, DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection, type ServerInfo } from "@nats-io/transport-node";
import {
  ACTION_VERSIONS_BUCKET, LIMIT_COUNTS_BUCKET, NAMESPACES_BUCKET, ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, PACKAGES_BUCKET, INVOCATIONS_STREAM, INVOKE_SUBJECT_PREFIX,
  FIRES_STREAM, FIRE_SUBJECT_PREFIX, TRIGGERS_BUCKET, RULES_BUCKET, FEEDS_BUCKET, ALARM_TICKS_BUCKET,
  ALARM_STATE_BUCKET, ROUTES_BUCKET, IDEMPOTENCY_BUCKET,
  DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECT_PREFIX,
} from "../contracts/index.ts";
import { isElectionError, retryDuringElection } from "./retry-jetstream.ts";

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
/** Idempotency keys are remembered this long (ms) by default (VESPID_IDEMPOTENCY_WINDOW). */
export const IDEMPOTENCY_WINDOW_MS = DAY_MS;

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

/** Dead letters are kept this long (ms) for users to inspect and replay. */
export const DEAD_LETTER_MAX_AGE_MS = 30 * DAY_MS;

/**
 * Invocations that used up their retries (scheduler/dead-letters.ts): a log, one message per
 * activation (the subject ends in its id), removed when replayed.
 */
export const DEAD_LETTER_STREAM_CONFIG = {
  name: DEAD_LETTER_STREAM,
  subjects: [`${DEAD_LETTER_SUBJECT_PREFIX}.>`],
  retention: RetentionPolicy.Limits,
  storage: StorageType.File,
  max_age: nanos(DEAD_LETTER_MAX_AGE_MS),
  max_msgs_per_subject: 1,
  duplicate_window: nanos(INVOCATION_DUPLICATE_WINDOW_MS),
  discard: DiscardPolicy.Old,
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
  // Counters of alarms that may fire once a year: never expire (deleted with the registration).
  [ALARM_STATE_BUCKET]: { history: 1, ttl: 0 },
  [ROUTES_BUCKET]: { history: 1, ttl: 0 },
  // The max age is the idempotency window: a key is forgotten when its entry expires.
  [IDEMPOTENCY_BUCKET]: { history: 1, ttl: IDEMPOTENCY_WINDOW_MS },
} as const;

export interface ProvisionOptions {
  /**
   * Max age of activation records, ms (VESPID_ACTIVATION_RETENTION). Given: applied, to an
   * existing bucket too. Not given: a new bucket gets ACTIVATION_TTL_MS and an existing one keeps
   * its retention, so a process started without the setting (a runner, the admin command) does
   * not undo the operator's choice.
   */
  activationRetentionMs?: number;
  /** How long idempotency keys are remembered, ms (VESPID_IDEMPOTENCY_WINDOW); kept as the retention is. */
  idempotencyWindowMs?: number;
  /**
   * Copies JetStream keeps of the streams and every bucket (VESPID_REPLICAS, 1 to 5). Given:
   * applied, to existing ones too (up or down). Not given: defaultReplicas() of the server
   * connected to, and an existing stream or bucket with more replicas keeps them, so a process
   * that connects while a node is away does not scale the platform down.
   */
  replicas?: number;
}

/** Replicas of every stream and bucket when a cluster has at least this many servers. */
export const CLUSTER_REPLICAS = 3;

/**
 * Replicas for a server that says this about itself when a client connects: CLUSTER_REPLICAS
 * (R3) when it is in a cluster (`cluster` names it) and its INFO lists at least that many servers
 * (`connect_urls`: the client URLs of every server routed to it, its own included); else 1, as
 * for the embedded single server. A cluster with `no_advertise` lists none: set VESPID_REPLICAS.
 */
export function defaultReplicas(info: Pick<ServerInfo, "cluster" | "connect_urls"> | undefined): number {
  if (!info?.cluster) return 1;
  return new Set(info.connect_urls ?? []).size >= CLUSTER_REPLICAS ? CLUSTER_REPLICAS : 1;
}

export async function provision(nc: NatsConnection, opts: ProvisionOptions = {}): Promise<void> {
  // Every step is retried while a leader is being elected (a node of the cluster just died, or
  // the server is restarting): a component starting then waits instead of failing.
  const jsm = await retryDuringElection(() => jetstreamManager(nc));
  const replicas = { replicas: opts.replicas ?? defaultReplicas(nc.info), keepMore: opts.replicas === undefined };
  try {
    await retryDuringElection(() => ensureStream(jsm, INVOCATIONS_STREAM_CONFIG, replicas));
    await retryDuringElection(() => ensureStream(jsm, FIRES_STREAM_CONFIG, replicas));
    await retryDuringElection(() => ensureStream(jsm, DEAD_LETTER_STREAM_CONFIG, replicas));
    const kvm = new Kvm(nc);
    for (const [bucket, want] of Object.entries(BUCKETS)) {
      const retention = bucket === ACTIVATIONS_BUCKET ? opts.activationRetentionMs : bucket === IDEMPOTENCY_BUCKET ? opts.idempotencyWindowMs : want.ttl;
      await retryDuringElection(() => ensureBucket(jsm, kvm, bucket, { history: want.history, ttl: retention ?? want.ttl, keepTtl: retention === undefined, ...replicas }));
    }
  } catch (err) {
    // More replicas than the servers can hold: say which setting asked for them.
    if (err instanceof JetStreamApiError && REPLICA_REFUSALS.has(err.code)) {
      throw new Error(`JetStream cannot keep ${replicas.replicas} replicas of Vespid's streams here (VESPID_REPLICAS): ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/**
 * JetStream's answers to more replicas than it can place: 10074 "replicas > 1 not supported in
 * non-clustered mode"; 10023 insufficient resources.
 */
const REPLICA_REFUSALS = new Set([10074, 10023]);

/** `replicas` wanted; `keepMore`: an existing stream with more keeps them (a default, not a choice). */
interface ReplicaChoice {
  replicas: number;
  keepMore: boolean;
}

async function ensureStream(jsm: JetStreamManager, base: Partial<StreamConfig> & { name: string }, choice: ReplicaChoice = { replicas: 1, keepMore: true }): Promise<void> {
  let config = { ...base, num_replicas: choice.replicas };
  try {
    // Adding a stream that exists with the very same config succeeds, which covers the common case
    // and two processes racing to create it.
    await jsm.streams.add(config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE)) throw err;
    // It exists, from an older Vespid, with other replicas, or changed by hand: bring our settings
    // back, keep the rest. Raising num_replicas is an update JetStream allows (it copies the data
    // to the new peers); a default never lowers it.
    if (choice.keepMore) {
      const existing = (await jsm.streams.info(config.name)).config.num_replicas ?? 1;
      config = { ...config, num_replicas: Math.max(existing, choice.replicas) };
    }
    try {
      await jsm.streams.update(config.name, config);
    } catch (updateErr) {
      // Leaderless for the moment: the caller's retry handles it.
      if (isElectionError(updateErr)) throw updateErr;
      throw new Error(`stream ${config.name} exists with a configuration Vespid cannot update: ${(updateErr as Error).message}`);
    }
  }
}

/** `keepTtl`: `ttl` is only for a new bucket; an existing one keeps its own. */
async function ensureBucket(
  jsm: JetStreamManager,
  kvm: Kvm,
  bucket: string,
  want: { history: number; ttl: number; keepTtl?: boolean } & Partial<ReplicaChoice>,
): Promise<void> {
  const wanted = want.replicas ?? 1;
  // Creates the bucket, or opens it if it exists (whatever its settings).
  const kv = await kvm.create(bucket, { history: want.history, ttl: want.ttl, storage: StorageType.File, replicas: wanted });
  const status = await kv.status();
  const ttl = want.keepTtl ? status.ttl : want.ttl;
  const replicas = want.keepMore === false ? wanted : Math.max(status.replicas, wanted);
  if (status.history === want.history && status.ttl === ttl && status.replicas === replicas) return;
  const stream = status.streamInfo.config.name;
  await jsm.streams.update(stream, { max_msgs_per_subject: want.history, max_age: nanos(ttl), num_replicas: replicas });
}

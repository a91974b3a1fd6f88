// Takes FireEvents off FIRES_STREAM (a work queue shared by every triggers component), starts the
// fired trigger's active rules and writes the trigger's activation record, then acks. A fire is
// redelivered if this process dies half way: the rules' activation ids are derived from the fire
// (rule-runner.ts) and the record is created only if absent, so nothing runs or is recorded twice.
import { randomBytes } from "node:crypto";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError, type JsMsg } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { nanos } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  ACTION_VERSIONS_BUCKET,
  ACTIONS_BUCKET,
  activationKey,
  ACTIVATIONS_BUCKET,
  decodeMessage,
  entityKey,
  FIRES_CONSUMER,
  FIRES_STREAM,
  FireEvent,
  keyValuesToObject,
  LIMIT_COUNTS_BUCKET,
  MAX_FIRE_DEPTH,
  NAMESPACES_BUCKET,
  PACKAGES_BUCKET,
  type Activation,
} from "../contracts/index.ts";
import { ActionStore } from "../gateway/action-store.ts";
import { ifUnchanged } from "../gateway/kv-entities.ts";
import { createInvoker } from "../gateway/invoke.ts";
import { DEFAULT_NAMESPACE_LIMITS, NamespaceLimiter } from "../gateway/limits.ts";
import { PackageStore } from "../gateway/package-store.ts";
import { ResultInbox } from "../gateway/result-inbox.ts";
import { VersionStore } from "../gateway/version-store.ts";
import { openEventEntities, type EventEntities } from "./entities.ts";
import type { TriggersOptions, TriggersService } from "./index.ts";
import { runRule, type RuleOutcome } from "./rule-runner.ts";

/** Unacked this long (ms), a fire is redelivered. */
const ACK_WAIT_MS = 30_000;
/** Deliveries of one fire before it is given up (each failure is logged). */
const MAX_DELIVER = 5;
/** Fires handled at once by one process. */
const CONCURRENCY = 32;
/** A fire that failed for the platform's reasons (NATS away) is retried after this, ms. */
const RETRY_DELAY_MS = 1_000;

const EDITABLE_CONFIG = { ack_wait: nanos(ACK_WAIT_MS), max_deliver: MAX_DELIVER };

async function ensureFiresConsumer(nc: TriggersOptions["nc"]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.add(FIRES_STREAM, { durable_name: FIRES_CONSUMER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ...EDITABLE_CONFIG });
  } catch (err) {
    if (!(err instanceof JetStreamApiError)) throw err;
    await jsm.consumers.update(FIRES_STREAM, FIRES_CONSUMER, EDITABLE_CONFIG);
  }
}

export async function startFireConsumer(opts: TriggersOptions): Promise<TriggersService> {
  const { nc } = opts;
  const logger = opts.logger.child({ service: "fire-consumer" });
  await ensureFiresConsumer(nc);
  const kvm = new Kvm(nc);
  const [actionsKv, packagesKv, versionsKv, activations, namespacesKv, countsKv] = await Promise.all(
    [ACTIONS_BUCKET, PACKAGES_BUCKET, ACTION_VERSIONS_BUCKET, ACTIVATIONS_BUCKET, NAMESPACES_BUCKET, LIMIT_COUNTS_BUCKET].map((b) => kvm.open(b)),
  );
  const events = await openEventEntities(nc, logger);
  // The rules' invocations count against their namespace's limits like the gateways' do: this
  // process publishes its own counts (LIMIT_COUNTS_BUCKET) under its own id.
  const limiterId = `trg-${randomBytes(6).toString("hex")}`;
  const limiter = new NamespaceLimiter(namespacesKv!, countsKv!, limiterId, opts.namespaceLimits ?? DEFAULT_NAMESPACE_LIMITS, logger);
  await limiter.start();
  const inbox = new ResultInbox(nc, limiterId, logger);
  const deps = {
    actions: new ActionStore(actionsKv!),
    packages: new PackageStore(packagesKv!),
    versions: new VersionStore(versionsKv!),
    namespaceIsolation: (namespace: string) => limiter.requiredIsolation(namespace),
    invoker: createInvoker(jetstream(nc), inbox, logger, limiter, () => nc.info?.max_payload ?? Infinity),
  };

  const consumer = await jetstream(nc).consumers.get(FIRES_STREAM, FIRES_CONSUMER);
  const messages = await consumer.consume({ max_messages: CONCURRENCY });
  const handling = new Set<Promise<void>>();
  const inProgress = new Map<string, Promise<void>>();
  const consuming = (async () => {
    for await (const msg of messages) {
      // Bounded: a fire waiting here is not yet handed out again, one started must finish within ACK_WAIT_MS.
      if (handling.size >= CONCURRENCY) await Promise.race(handling);
      const done = handleFire(msg, { ...deps, events, activations: activations!, logger, inProgress }).finally(() => handling.delete(done));
      handling.add(done);
    }
  })().catch((err) => logger.error({ err }, "consuming fires failed"));
  logger.info("fire consumer started");

  return {
    async stop() {
      await messages.close();
      await consuming;
      await Promise.allSettled(handling);
      events.stop();
      inbox.close();
      await limiter.close();
    },
  };
}

type FireDeps = Parameters<typeof runRule>[0] & {
  events: EventEntities;
  activations: KV;
  logger: Logger;
  /** Fires being handled by this process, by activation id, with a promise of their end. */
  inProgress: Map<string, Promise<void>>;
};

async function handleFire(msg: JsMsg, deps: FireDeps): Promise<void> {
  const parsed = decodeMessage(FireEvent, msg.data);
  if (!parsed.success) {
    // Nothing can come of it however often it is delivered. Issues are logged without their
    // input: a malformed message may be large.
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`);
    deps.logger.warn({ subject: msg.subject, issues }, "dropping a malformed fire");
    msg.term();
    return;
  }
  const fire = parsed.data;
  // The same fire twice at once in this process (stored twice, or redelivered while still being
  // handled): the second waits for the first and then finds its record. Running both would be
  // harmless for the rules (same ids, dropped by JetStream) but count them twice against the limits.
  for (let earlier; (earlier = deps.inProgress.get(fire.activationId)); ) await earlier;
  let finished!: () => void;
  deps.inProgress.set(fire.activationId, new Promise<void>((resolve) => (finished = resolve)));
  try {
    await processFire(fire, deps);
    msg.ack();
  } catch (err) {
    if (msg.info.deliveryCount < MAX_DELIVER) {
      deps.logger.error({ err, activationId: fire.activationId, deliveries: msg.info.deliveryCount }, "a fire failed; it will be retried");
      msg.nak(RETRY_DELAY_MS);
      return;
    }
    // The last delivery: the fire is not dropped silently but recorded as the platform's failure.
    deps.logger.error({ err, activationId: fire.activationId }, "a fire failed on every delivery; recording it as failed");
    try {
      await storeOnce(deps.activations, fire, failureRecord(fire, "0.0.0", 3, "whisk internal error", `the fire could not be processed: ${(err as Error).message ?? String(err)}`));
    } catch (again) {
      deps.logger.error({ err: again, activationId: fire.activationId }, "could not record a failed fire");
    }
    msg.term();
  } finally {
    deps.inProgress.delete(fire.activationId);
    finished();
  }
}

/** A trigger activation saying the fire started nothing, and why. */
function failureRecord(fire: FireEvent, version: string, statusCode: 1 | 3, status: "application error" | "whisk internal error", error: string): Activation {
  return { ...triggerRecord(fire, version, []), response: { status, statusCode, success: false, result: { error } } };
}

/**
 * The trigger's activation record. OpenWhisk writes no end (epoch 0) and no duration for a
 * trigger; Vespid's records always have both, so the fire's acceptance time and 0 stand in.
 */
function triggerRecord(fire: FireEvent, version: string, logs: string[]): Activation {
  return {
    activationId: fire.activationId,
    namespace: fire.namespace,
    name: fire.trigger,
    version,
    subject: fire.subject,
    ...(fire.cause && { cause: fire.cause }),
    start: fire.time,
    end: fire.time,
    duration: 0,
    response: { status: "success", statusCode: 0, success: true, result: fire.payload },
    logs,
    annotations: [],
  };
}

/** Stores the record unless one exists: an earlier delivery of this very fire wrote it, and it stands. */
async function storeOnce(activations: KV, fire: FireEvent, activation: Activation): Promise<void> {
  // ifUnchanged answers false for "exists already"; any other failure (too big, NATS away) throws.
  await ifUnchanged(() => activations.create(activationKey(fire.namespace, fire.activationId), JSON.stringify(activation)));
}

/** Starts the fire's rules and records the trigger's activation; throws only for the platform's failures. */
export async function processFire(fire: FireEvent, deps: FireDeps): Promise<void> {
  const key = activationKey(fire.namespace, fire.activationId);
  // Recorded already: a redelivery after the record was written but before the ack.
  if ((await deps.activations.get(key))?.operation === "PUT") return;

  const store = (activation: Activation) => storeOnce(deps.activations, fire, activation);

  if (fire.depth > MAX_FIRE_DEPTH) {
    return store(failureRecord(fire, "0.0.0", 1, "application error", `the fire was caused by a chain of ${fire.depth} fires, more than the limit of ${MAX_FIRE_DEPTH}; no rule was started`));
  }
  await Promise.all([deps.events.triggers.watched.sync(), deps.events.rules.watched.sync()]);
  const trigger = deps.events.triggers.watched.get(entityKey(fire.namespace, fire.trigger));
  if (!trigger) return store(failureRecord(fire, "0.0.0", 1, "application error", `trigger /${fire.namespace}/${fire.trigger} does not exist`));

  const rules = deps.events.rulesOf(fire.namespace, fire.trigger).filter((r) => r.status === "active");
  rules.sort((a, b) => a.name.localeCompare(b.name));
  // OpenWhisk's merge: the fire's payload overrides the trigger's parameters.
  const params = { ...keyValuesToObject(trigger.parameters), ...fire.payload };
  const outcomes: RuleOutcome[] = await Promise.all(rules.map((rule) => runRule(deps, fire.activationId, rule, params)));
  // A trigger fired with no active rule (a feed's fire, or a rule disabled since the API accepted
  // it) is recorded with no logs, so the fire is still visible.
  await store(triggerRecord(fire, trigger.version, outcomes.map((o) => JSON.stringify(o))));
}

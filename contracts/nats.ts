// Names on the NATS side: every subject, stream, consumer and bucket that more than one component
// touches is spelled here and nowhere else.
import type { Isolation } from "./schemas.ts";

/** JetStream stream that holds invocation events until the scheduler has placed them. */
export const INVOCATIONS_STREAM = "VESPID_INVOCATIONS";
/** Invocation events are published on `vespid.invoke.<namespace>`. */
export const INVOKE_SUBJECT_PREFIX = "vespid.invoke";
export const invokeSubject = (namespace: string): string => `${INVOKE_SUBJECT_PREFIX}.${subjectToken(namespace)}`;
/** Durable pull consumer shared by all schedulers (a work queue: each event goes to one of them). */
export const SCHEDULER_CONSUMER = "vespid-scheduler";

/** Runners announce themselves here every HEARTBEAT_INTERVAL_MS (core NATS, fire and forget). */
export const RUNNER_HEARTBEAT_SUBJECT = "vespid.runner.heartbeat";
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** A runner not heard from for this long is considered gone. */
export const RUNNER_EXPIRY_MS = 3_500;
/** The scheduler sends a runner its assignments on this subject (request/reply). */
export const runnerAssignSubject = (runnerId: string): string => `vespid.runner.${runnerId}.assign`;
/** Any runner compiles/validates action code on this subject (queue group RUNNER_BUILD_QUEUE). */
export const RUNNER_BUILD_SUBJECT = "vespid.runner.build";
export const RUNNER_BUILD_QUEUE = "vespid-runners";
/**
 * Only runners of `tier` answer here (same queue group): code that must run on a tier is checked
 * on it, since a JS check runs the code's top level in the engine.
 */
export const runnerBuildSubject = (tier: Isolation): string => `${RUNNER_BUILD_SUBJECT}.${tier}`;

/**
 * Each runner publishes its prom-client registry (getMetricsAsJSON(), gzipped JSON) here every
 * METRICS_INTERVAL_MS (core NATS, fire and forget); gateways merge them for /metrics and
 * /api/v1/stats (docs/telemetry.md).
 */
export const RUNNER_METRICS_SUBJECT_PREFIX = "vespid.metrics.runner";
export const runnerMetricsSubject = (runnerId: string): string => `${RUNNER_METRICS_SUBJECT_PREFIX}.${runnerId}`;
export const METRICS_INTERVAL_MS = 1_000;

/** Results for blocking callers: `vespid.result.<gatewayId>.<activationId>`. */
export const RESULT_SUBJECT_PREFIX = "vespid.result";
export const resultSubject = (gatewayId: string, activationId: string): string =>
  `${RESULT_SUBJECT_PREFIX}.${gatewayId}.${activationId}`;

/** Key-value buckets. */
export const ACTIONS_BUCKET = "vespid_actions";
export const ACTIVATIONS_BUCKET = "vespid_activations";
export const AUTH_BUCKET = "vespid_auth";
/** Packages, under `<namespace>.<package>`. */
export const PACKAGES_BUCKET = "vespid_packages";
/** Every stored version of every action, under `<namespace>.<name>.<version>` (bounded per action). */
export const ACTION_VERSIONS_BUCKET = "vespid_action_versions";

/**
 * KV keys and subject tokens allow only [A-Za-z0-9_-] safely, while entity names allow more
 * (`@`, `.`, spaces). Anything else is written as `=XX` (hex), which keeps keys readable and
 * the mapping reversible.
 */
const PLAIN_TOKEN = /^[A-Za-z0-9_-]*$/;

export function subjectToken(name: string): string {
  // Most names need no escaping; this is on every invocation's path (a key or two per call).
  if (PLAIN_TOKEN.test(name)) return name;
  return Array.from(new TextEncoder().encode(name), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9_-]/.test(c) ? c : `=${b.toString(16).padStart(2, "0")}`;
  }).join("");
}

export function fromSubjectToken(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === "=") {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Key of an action in ACTIONS_BUCKET: `<namespace>.<name>`, both encoded. */
export const actionKey = (namespace: string, name: string): string =>
  `${subjectToken(namespace)}.${subjectToken(name)}`;

/**
 * Key of an activation record in ACTIVATIONS_BUCKET: `<namespace>.<activationId>`. The namespace
 * comes first so one namespace's records are the key filter `<namespace>.>` (listing), and a
 * lookup by id is only ever made within the caller's namespace.
 */
export const activationKey = (namespace: string, activationId: string): string =>
  `${subjectToken(namespace)}.${activationId}`;
/** Key filter matching every activation record of `namespace`. */
export const activationKeyFilter = (namespace: string): string => `${subjectToken(namespace)}.>`;

/** Key of a package in PACKAGES_BUCKET: `<namespace>.<package>`, both encoded. */
export const packageKey = (namespace: string, name: string): string =>
  `${subjectToken(namespace)}.${subjectToken(name)}`;

/** Key of one version of an action in ACTION_VERSIONS_BUCKET. */
export const actionVersionKey = (namespace: string, name: string, version: string): string =>
  `${actionKey(namespace, name)}.${subjectToken(version)}`;

/** Namespaces (and their invocation limits), under the encoded namespace name. */
export const NAMESPACES_BUCKET = "vespid_namespaces";
/**
 * Invocation counts each gateway publishes for the namespace limits, under
 * `<namespace>.<gatewayId>`; entries of a gateway that stopped refreshing them expire (bucket TTL).
 */
export const LIMIT_COUNTS_BUCKET = "vespid_limit_counts";
export const namespaceKey = (namespace: string): string => subjectToken(namespace);
export const limitCountKey = (namespace: string, gatewayId: string): string =>
  `${subjectToken(namespace)}.${gatewayId}`;

/*
 * Events (triggers, rules, feeds). A trigger fire — from the API, a webhook, an alarm or a NATS
 * message — is one FireEvent on `vespid.fire.<namespace>` in FIRES_STREAM; the triggers component
 * (`triggers/`) consumes it, starts every active rule's action and writes the trigger's activation.
 */
export const FIRES_STREAM = "VESPID_FIRES";
export const FIRE_SUBJECT_PREFIX = "vespid.fire";
export const fireSubject = (namespace: string): string => `${FIRE_SUBJECT_PREFIX}.${subjectToken(namespace)}`;
/** Durable pull consumer shared by every triggers component (a work queue). */
export const FIRES_CONSUMER = "vespid-triggers";

/** Triggers under `<namespace>.<trigger>`. */
export const TRIGGERS_BUCKET = "vespid_triggers";
/** Rules under `<namespace>.<rule>`. */
export const RULES_BUCKET = "vespid_rules";
/** Feed registrations (what a feed action's CREATE set up), under `<namespace>.<trigger>`. */
export const FEEDS_BUCKET = "vespid_feeds";
/**
 * Alarm ticks claimed by a scheduler, under `<namespace>.<trigger>.<tick epoch ms>`: created only
 * if absent, so each tick fires once across the cluster; expire after a day.
 */
export const ALARM_TICKS_BUCKET = "vespid_alarm_ticks";

/**
 * What the alarms service keeps per alarm registration, under `<namespace>.<trigger>` (no expiry,
 * unlike the ticks): how often it fired (maxTriggers), its last tick (missed ticks), whether it
 * finished (stopDate, maxTriggers, a `once` that fired).
 */
export const ALARM_STATE_BUCKET = "vespid_alarm_state";

/** Key of a trigger, rule or feed registration: `<namespace>.<name>`, both encoded. */
export const entityKey = (namespace: string, name: string): string => `${subjectToken(namespace)}.${subjectToken(name)}`;
/** Key filter matching every entity of `namespace` in a bucket keyed by entityKey. */
export const namespaceKeyFilter = (namespace: string): string => `${subjectToken(namespace)}.>`;

/**
 * API gateway routes (`wsk api create`): one API per namespace and base path, under
 * `<namespace>.<base path>`, both encoded; every gateway watches the bucket to serve them.
 */
export const ROUTES_BUCKET = "vespid_routes";
export const routeApiKey = (namespace: string, basePath: string): string => `${subjectToken(namespace)}.${subjectToken(basePath)}`;

/*
 * Dispatch leases (scheduler/lease-book.ts, runner/assignments.ts). A runner answers an assignment
 * at once (AssignmentAck); how it ends comes as AssignmentNotice on the assigning scheduler's own
 * subject, named in the assignment's DONE_TO_HEADER. Notices may be lost: the runner's heartbeats
 * list every activation it holds, and that list is what the scheduler trusts.
 */
export const schedulerNoticeSubject = (schedulerId: string): string => `vespid.scheduler.${schedulerId}.notice`;
/** NATS header of an assignment: the subject its AssignmentNotice messages go to. */
export const DONE_TO_HEADER = "Vespid-Done-To";

/*
 * The direct path of blocking calls (gateway/direct-dispatch.ts, runner/assignments.ts): a gateway
 * hands a blocking invocation straight to a runner on `vespid.runner.<id>.run` (answered at once
 * with an AssignmentAck; the runner may queue it behind its busy slots), and the record comes back
 * on the event's replyTo as on the queued path. Only a failure to finish is told, as an `ended`
 * AssignmentNotice on the gateway's own notice subject (DONE_TO_HEADER); the gateway then queues
 * the event on JetStream like any other.
 */
export const runnerRunSubject = (runnerId: string): string => `vespid.runner.${runnerId}.run`;
export const gatewayNoticeSubject = (gatewayId: string): string => `vespid.gateway.${gatewayId}.notice`;

/**
 * Invocations that used up their retries (VESPID_MAX_RETRIES system failures), one message per
 * activation under `vespid.deadletter.<namespace>.<activationId>`; listed, read and replayed
 * through `/api/v1/namespaces/{ns}/deadletters`.
 */
export const DEAD_LETTER_STREAM = "VESPID_DEADLETTERS";
export const DEAD_LETTER_SUBJECT_PREFIX = "vespid.deadletter";
export const deadLetterSubject = (namespace: string, activationId: string): string =>
  `${DEAD_LETTER_SUBJECT_PREFIX}.${subjectToken(namespace)}.${activationId}`;
export const deadLetterFilter = (namespace: string): string => `${DEAD_LETTER_SUBJECT_PREFIX}.${subjectToken(namespace)}.>`;

/**
 * Idempotency keys of invocations and fires (`Idempotency-Key` header), under
 * `<namespace>.<sha256 of the key, hex>`: created only if absent, holding the activation id the
 * first request queued, so a repeat through any gateway answers that activation. The bucket's max
 * age is the window in which a key is remembered (VESPID_IDEMPOTENCY_WINDOW, default 24 h).
 */
export const IDEMPOTENCY_BUCKET = "vespid_idempotency";
export const idempotencyKey = (namespace: string, keyHash: string): string => `${subjectToken(namespace)}.${keyHash}`;

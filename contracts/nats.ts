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
export function subjectToken(name: string): string {
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

/** Key of a trigger, rule or feed registration: `<namespace>.<name>`, both encoded. */
export const entityKey = (namespace: string, name: string): string => `${subjectToken(namespace)}.${subjectToken(name)}`;
/** Key filter matching every entity of `namespace` in a bucket keyed by entityKey. */
export const namespaceKeyFilter = (namespace: string): string => `${subjectToken(namespace)}.>`;

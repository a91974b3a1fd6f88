// What a feed action does with a lifecycle event: OpenWhisk's feed protocol (the `openwhisk`
// client's feeds.create/get/update/delete and `wsk trigger create --feed` invoke the feed action
// with `lifecycleEvent`, `triggerName` and `authKey` plus the feed's own parameters) applied to
// the trigger's FeedRegistration in FEEDS_BUCKET. The services that act on registrations
// (triggers/alarms.ts, triggers/nats-feed.ts) watch that bucket. Every refusal is an answer with
// an `error` naming the parameter; nothing is written before every check has passed.
import type { KV } from "@nats-io/kv";
import {
  EntityName,
  entityKey,
  FeedRegistration,
  NatsFeedParams,
  type FeedKind,
} from "../../contracts/index.ts";
import { ifUnchanged } from "../../gateway/kv-entities.ts";
import { nextTick, parseAlarmParams } from "../../triggers/alarm-schedule.ts";
import { AlarmState, isFinished } from "../../triggers/alarm-state.ts";

export interface FeedStores {
  feeds: KV;
  triggers: KV;
  /** ALARM_STATE_BUCKET: READ reports how often an alarm fired; DELETE removes it. */
  alarmState: KV;
}

export interface FeedOutcome {
  ok: boolean;
  result: Record<string, unknown>;
  /** Lines for the activation's logs, without timestamps. */
  logs: string[];
}

export const LIFECYCLE_EVENTS = ["CREATE", "READ", "UPDATE", "DELETE", "PAUSE", "UNPAUSE"] as const;
type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number];
/** Parameters of the protocol itself, not of the feed: never stored (authKey least of all). */
const PROTOCOL_PARAMS = new Set(["lifecycleEvent", "triggerName", "authKey"]);

/** A refusal: the activation fails with this message. */
class FeedError extends Error {}

/**
 * Runs one lifecycle event of the feed `feed` (`/whisk.system/alarms/alarm`) of kind `kind` for
 * the invoking namespace `caller` (InvocationEvent.namespace: the key's namespace, never what the
 * parameters claim).
 */
export async function runFeedLifecycle(
  kind: FeedKind,
  feed: string,
  caller: string,
  params: Record<string, unknown>,
  stores: FeedStores,
  now = Date.now(),
): Promise<FeedOutcome> {
  const logs: string[] = [];
  try {
    const event = lifecycleEventOf(params.lifecycleEvent);
    const trigger = triggerOf(params.triggerName, caller);
    const feedParams = Object.fromEntries(Object.entries(params).filter(([key]) => !PROTOCOL_PARAMS.has(key)));
    const key = entityKey(caller, trigger);
    const path = `/${caller}/${trigger}`;
    const base = { lifecycleEvent: event, triggerName: path };
    switch (event) {
      case "CREATE": {
        const checked = checkParams(kind, feedParams, now);
        if (!(await exists(stores.triggers, key))) throw new FeedError(`triggerName: trigger ${path} does not exist; create the trigger first`);
        const registration: FeedRegistration = { namespace: caller, trigger, feed, kind, params: feedParams, status: "active", created: now, updated: now };
        // Counters of an earlier registration of this trigger are not deleted here: they name the
        // registration they count (its `created`), so they never count against this one.
        if (!(await ifUnchanged(() => stores.feeds.create(key, JSON.stringify(registration))))) {
          const existing = await readRegistration(stores.feeds, key);
          throw new FeedError(`triggerName: trigger ${path} already has a feed (${existing?.registration.feed ?? "another one"}); DELETE it first`);
        }
        logs.push(`${path}: ${feed} registered${checked ? `, ${checked}` : ""}`);
        return { ok: true, result: { ...base, status: "active" }, logs };
      }
      case "READ": {
        const { registration } = await requireRegistration(stores.feeds, key, path, feed);
        const state = await readState(stores.alarmState, key);
        return { ok: true, result: readView(registration, state, now), logs };
      }
      case "UPDATE": {
        const { registration, revision } = await requireRegistration(stores.feeds, key, path, feed);
        // Parameters left out keep their values, as OpenWhisk's alarms feed updates.
        const merged = { ...registration.params, ...feedParams };
        const checked = checkParams(kind, merged, now);
        if (!(await exists(stores.triggers, key))) throw new FeedError(`triggerName: trigger ${path} does not exist`);
        await writeRegistration(stores.feeds, key, { ...registration, params: merged, updated: now }, revision);
        logs.push(`${path}: ${feed} updated${checked ? `, ${checked}` : ""}`);
        return { ok: true, result: { ...base, status: registration.status }, logs };
      }
      case "PAUSE":
      case "UNPAUSE": {
        const { registration, revision } = await requireRegistration(stores.feeds, key, path, feed);
        const status = event === "PAUSE" ? "paused" : "active";
        if (registration.status !== status) await writeRegistration(stores.feeds, key, { ...registration, status, updated: now }, revision);
        logs.push(`${path}: ${feed} ${status}`);
        return { ok: true, result: { ...base, status }, logs };
      }
      case "DELETE": {
        const { revision } = await requireRegistration(stores.feeds, key, path, feed);
        if (!(await ifUnchanged(() => stores.feeds.delete(key, { previousSeq: revision })))) throw new FeedError(`the feed of ${path} changed meanwhile; try again`);
        await stores.alarmState.delete(key);
        logs.push(`${path}: ${feed} deleted`);
        return { ok: true, result: { ...base, status: "deleted" }, logs };
      }
    }
  } catch (err) {
    if (!(err instanceof FeedError)) throw err;
    logs.push(`error: ${err.message}`);
    return { ok: false, result: { error: err.message }, logs };
  }
}

function lifecycleEventOf(value: unknown): LifecycleEvent {
  const event = typeof value === "string" ? value.toUpperCase() : value;
  if (!LIFECYCLE_EVENTS.includes(event as LifecycleEvent)) {
    throw new FeedError(`lifecycleEvent: must be one of ${LIFECYCLE_EVENTS.join(", ")}, got ${JSON.stringify(value) ?? "nothing"}`);
  }
  return event as LifecycleEvent;
}

/** `/ns/name`, `/_/name` or a bare name; only the caller's own namespace. */
function triggerOf(value: unknown, caller: string): string {
  if (typeof value !== "string" || value === "") throw new FeedError("triggerName: is required, as /namespace/trigger");
  const parts = value.startsWith("/") ? value.slice(1).split("/") : [value];
  const [ns, name] = parts.length === 2 ? parts : parts.length === 1 && !value.startsWith("/") ? ["_", parts[0]!] : [undefined, undefined];
  if (ns === undefined || name === undefined) throw new FeedError(`triggerName: must be /namespace/trigger, got ${JSON.stringify(value)}`);
  if (ns !== "_" && ns !== caller) {
    throw new FeedError(`triggerName: ${value} is in namespace ${ns}; a feed manages only triggers of the namespace that invokes it (${caller})`);
  }
  const parsed = EntityName.safeParse(name);
  if (!parsed.success) throw new FeedError(`triggerName: the trigger name ${JSON.stringify(name)} ${parsed.error.issues[0]?.message ?? "is invalid"}`);
  return name;
}

/** The kind's parameters checked; returns a short description for the logs. */
function checkParams(kind: FeedKind, params: Record<string, unknown>, now: number): string {
  if (kind === "nats") {
    const parsed = NatsFeedParams.safeParse(params);
    if (!parsed.success) {
      throw new FeedError(parsed.error.issues.map((i) => `${i.path.join(".") || "parameters"}: ${i.message}`).join("; "));
    }
    return `subject ${parsed.data.subject}${parsed.data.stream ? ` on stream ${parsed.data.stream}` : ""}`;
  }
  const parsed = parseAlarmParams(kind, params, { now });
  if (!parsed.ok) throw new FeedError(parsed.error);
  const first = nextTick(parsed.spec, now, now);
  return first === undefined ? "no tick left" : `first tick ${new Date(first).toISOString()}`;
}

async function exists(kv: KV, key: string): Promise<boolean> {
  const entry = await kv.get(key);
  return entry?.operation === "PUT";
}

async function readRegistration(kv: KV, key: string): Promise<{ registration: FeedRegistration; revision: number } | undefined> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== "PUT") return undefined;
  return { registration: FeedRegistration.parse(entry.json()), revision: entry.revision };
}

/** The trigger's registration, made by this very feed (another feed's is not this one's to change). */
async function requireRegistration(kv: KV, key: string, path: string, feed: string) {
  const found = await readRegistration(kv, key);
  if (!found) throw new FeedError(`triggerName: trigger ${path} has no feed registered`);
  if (found.registration.feed !== feed) throw new FeedError(`triggerName: trigger ${path} is fed by ${found.registration.feed}, not ${feed}`);
  return found;
}

async function writeRegistration(kv: KV, key: string, registration: FeedRegistration, revision: number): Promise<void> {
  if (!(await ifUnchanged(() => kv.update(key, JSON.stringify(registration), revision)))) {
    throw new FeedError(`the feed of /${registration.namespace}/${registration.trigger} changed meanwhile; try again`);
  }
}

async function readState(kv: KV, key: string): Promise<AlarmState | undefined> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== "PUT") return undefined;
  const parsed = AlarmState.safeParse(entry.json());
  return parsed.success ? parsed.data : undefined;
}

/** OpenWhisk's alarms feed answers READ with `{config, status}`; the counters are Vespid's. */
function readView(registration: FeedRegistration, state: AlarmState | undefined, now: number) {
  const current = state && state.created === registration.created ? state : undefined;
  const finished = current && isFinished(current, registration) ? current.finished : undefined;
  let next: number | undefined;
  if (registration.kind !== "nats" && !finished && registration.status === "active") {
    const parsed = parseAlarmParams(registration.kind, registration.params);
    if (parsed.ok) next = nextTick(parsed.spec, Math.max(now, current?.lastTick ?? 0), registration.created);
  }
  return {
    config: {
      triggerName: `/${registration.namespace}/${registration.trigger}`,
      feed: registration.feed,
      ...registration.params,
    },
    status: {
      active: registration.status === "active" && !finished,
      state: finished ? "finished" : registration.status,
      ...(finished && { reason: finished.reason }),
      dateChanged: registration.updated,
      dateChangedISO: new Date(registration.updated).toISOString(),
      ...(registration.kind !== "nats" && {
        fired: current?.fired ?? 0,
        ...(current?.lastTick !== undefined && { lastTick: new Date(current.lastTick).toISOString() }),
        ...(next !== undefined && { nextTick: new Date(next).toISOString() }),
      }),
    },
  };
}

// The alarms service: watches FEEDS_BUCKET and fires the trigger of every active registration of
// kind alarm, once or interval at its ticks (triggers/alarm-schedule.ts computes them). Every
// triggers component runs one; each tick still fires exactly once across the cluster:
//   1. claim: create `<namespace>.<trigger>.<tick ms>` in ALARM_TICKS_BUCKET; only the service
//      whose create succeeded goes on (the others check back later, see takeOver);
//   2. count: add one to the registration's fired count in ALARM_STATE_BUCKET (compare-and-set),
//      refusing past maxTriggers, so the count is exact whoever fires;
//   3. publish the FireEvent with an activation id derived from (trigger, tick): a retry — by this
//      service, or by another taking over a claim whose owner died — is dropped by JetStream's
//      duplicate window;
//   4. mark the claim fired.
// A paused registration has no timer; stopDate, maxTriggers or a `once` that fired mark the
// registration finished in its state.
import { createHash, randomBytes } from "node:crypto";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { z } from "zod";
import {
  ALARM_STATE_BUCKET,
  ALARM_TICKS_BUCKET,
  FEEDS_BUCKET,
  FeedRegistration,
  RULES_BUCKET,
  Rule,
  TRIGGERS_BUCKET,
  namespaceKeyFilter,
} from "../contracts/index.ts";
import { ifUnchanged } from "../gateway/kv-entities.ts";
import { entryJson, followBucket } from "../gateway/kv-watch.ts";
import { nextTick, parseAlarmParams, type AlarmKind, type AlarmSpec } from "./alarm-schedule.ts";
import { isFinished, readAlarmState, updateAlarmState } from "./alarm-state.ts";
import type { TriggersOptions, TriggersService } from "./index.ts";
import { publishFire } from "./publish.ts";

const ALARM_KINDS = new Set<string>(["alarm", "once", "interval"]);

/** A tick later than this is missed (the `missed` policy decides), not merely late, ms. */
export const MISSED_AFTER_MS = 5_000;
/** A claim not marked fired within this long is taken over by another service, ms. */
export const CLAIM_TIMEOUT_MS = 10_000;
/** Timers longer than this are re-armed in steps (setTimeout's range is ~24.8 days), ms. */
const MAX_TIMER_MS = 60 * 60 * 1000;
/** Publish attempts of one fire before it is left to a takeover. */
const PUBLISH_ATTEMPTS = 5;

export interface AlarmsOptions extends TriggersOptions {
  /**
   * TEST ONLY: the length of an interval alarm's "minute", ms (default 60000), so a test can watch
   * `minutes: 1` fire every second. Never set in production: every service of a cluster must agree.
   */
  minuteMs?: number;
}

/** A claim in ALARM_TICKS_BUCKET. */
const Claim = z.object({ by: z.string(), at: z.number().int(), counted: z.boolean(), fired: z.boolean() });
type Claim = z.infer<typeof Claim>;

/** The fire's activation id: the same for every service and every retry of one tick. */
export function alarmFireId(namespace: string, trigger: string, tick: number): string {
  return createHash("sha256").update(`alarm\0${namespace}\0${trigger}\0${tick}`).digest("hex").slice(0, 32);
}

/** One registration being scheduled; replaced whole when the registration changes. */
interface Scheduled {
  revision: number;
  stopped: boolean;
  timer?: NodeJS.Timeout;
}

export async function startAlarms(opts: AlarmsOptions): Promise<TriggersService> {
  const logger = opts.logger.child({ service: "alarms" });
  const minuteMs = opts.minuteMs ?? 60_000;
  const serviceId = randomBytes(8).toString("hex");
  const kvm = new Kvm(opts.nc);
  const [feeds, triggers, rules, ticks, states] = await Promise.all(
    [FEEDS_BUCKET, TRIGGERS_BUCKET, RULES_BUCKET, ALARM_TICKS_BUCKET, ALARM_STATE_BUCKET].map((b) => kvm.open(b)),
  ) as [KV, KV, KV, KV, KV];
  const js = jetstream(opts.nc);
  const scheduled = new Map<string, Scheduled>();
  const pending = new Set<Promise<unknown>>();
  const stray = new Set<NodeJS.Timeout>();
  let closing = false;

  /** Runs `work` tracked, so stop() waits for fires in flight; errors are logged, never thrown. */
  const track = (what: string, key: string, work: () => Promise<unknown>) => {
    const p = work().catch((err) => logger.error({ err, key }, what));
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      stray.delete(timer);
      fn();
    }, ms);
    stray.add(timer);
  };

  const unschedule = (key: string) => {
    const current = scheduled.get(key);
    if (!current) return;
    current.stopped = true;
    if (current.timer) clearTimeout(current.timer);
    scheduled.delete(key);
  };

  const schedule = async (key: string, reg: FeedRegistration, revision: number) => {
    unschedule(key);
    if (reg.status !== "active") return;
    const parsed = parseAlarmParams(reg.kind as AlarmKind, reg.params);
    if (!parsed.ok) {
      logger.warn({ key, error: parsed.error }, "ignoring an alarm registration that is not valid");
      return;
    }
    const spec = parsed.spec;
    const entry: Scheduled = { revision, stopped: false };
    scheduled.set(key, entry);
    const state = await readAlarmState(states, key, reg);
    if (entry.stopped) return;
    if (state && isFinished(state, reg)) return;
    // Ticks before the registration's last change belong to what it was then (or to a pause).
    let cursor = Math.max(state?.lastTick ?? -Infinity, reg.updated - 1);
    /** Whether the last tick passed here was fired (by this service or another), not skipped. */
    let lastFired = state?.lastTick !== undefined;

    // A registration that makes the computation throw must stop only itself, never the service.
    const step = (): void => {
      try {
        advance();
      } catch (err) {
        logger.error({ err, key }, "an alarm could not be scheduled");
      }
    };
    const advance = (): void => {
      if (entry.stopped || closing) return;
      const now = Date.now();
      const tick = nextTick(spec, cursor, reg.created, minuteMs);
      if (tick === undefined) {
        const reason = spec.kind !== "once" ? "stopDate reached" : lastFired ? "fired" : "its date passed";
        track("could not mark an alarm finished", key, () => finish(key, reg, reason));
        return;
      }
      if (tick < now - MISSED_AFTER_MS) {
        // Missed while no service ran (or this one was stalled).
        cursor = now - MISSED_AFTER_MS;
        lastFired = spec.missed !== "skip";
        if (spec.missed === "skip") {
          logger.info({ key, tick: new Date(tick).toISOString() }, "skipping ticks missed while no alarms service ran");
          return step();
        }
        logger.info({ key, tick: new Date(tick).toISOString() }, "firing once for ticks missed while no alarms service ran");
        track("an alarm tick failed", key, () => fireTick(key, reg, spec, tick, entry));
        return step();
      }
      const wait = tick - now;
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        if (wait > MAX_TIMER_MS || Date.now() < tick) return step();
        cursor = tick;
        lastFired = true;
        track("an alarm tick failed", key, async () => {
          await fireTick(key, reg, spec, tick, entry);
          step();
        });
      }, Math.min(wait, MAX_TIMER_MS));
    };
    step();
  };

  /** Claims, counts, publishes and marks one tick (see the top of this file). */
  const fireTick = async (key: string, reg: FeedRegistration, spec: AlarmSpec, tick: number, entry: Scheduled) => {
    if (entry.stopped) return;
    const trigger = await triggers.get(key);
    if (trigger?.operation !== "PUT") {
      logger.warn({ key, tick }, "an alarm's trigger does not exist; tick not fired");
      return;
    }
    const claimKey = `${key}.${tick}`;
    const claim: Claim = { by: serviceId, at: Date.now(), counted: false, fired: false };
    if (!(await ifUnchanged(() => ticks.create(claimKey, JSON.stringify(claim))))) {
      // Another service has it; should it die before firing, take it over.
      later(CLAIM_TIMEOUT_MS, () => track("taking over an alarm tick failed", key, () => takeOver(key, reg, spec, tick)));
      return;
    }
    const revision = (await ticks.get(claimKey))?.revision;
    if (revision === undefined) return;
    await complete(key, reg, spec, tick, claimKey, claim, revision);
  };

  /** A claim still unfired after CLAIM_TIMEOUT_MS: its owner died or stalled, so it is finished here. */
  const takeOver = async (key: string, reg: FeedRegistration, spec: AlarmSpec, tick: number) => {
    // Not tied to this service's schedule (which may have moved past the tick, or finished): only
    // to the registration still being the one that tick belongs to.
    if (closing) return;
    const current = await feeds.get(key);
    if (current?.operation !== "PUT" || FeedRegistration.safeParse(current.json()).data?.created !== reg.created) return;
    const claimKey = `${key}.${tick}`;
    const stored = await ticks.get(claimKey);
    if (!stored || stored.operation !== "PUT") return;
    const claim = Claim.safeParse(stored.json());
    if (!claim.success || claim.data.fired || Date.now() - claim.data.at < CLAIM_TIMEOUT_MS) return;
    const mine: Claim = { ...claim.data, by: serviceId, at: Date.now() };
    if (!(await ifUnchanged(() => ticks.update(claimKey, JSON.stringify(mine), stored.revision)))) return;
    logger.warn({ key, tick, from: claim.data.by }, "took over an alarm tick its claimant did not fire");
    const revision = (await ticks.get(claimKey))?.revision;
    if (revision !== undefined) await complete(key, reg, spec, tick, claimKey, mine, revision);
  };

  const complete = async (key: string, reg: FeedRegistration, spec: AlarmSpec, tick: number, claimKey: string, claim: Claim, revision: number) => {
    let rev = revision;
    let reachedMax = false;
    if (!claim.counted) {
      const max = spec.kind === "alarm" ? spec.maxTriggers : undefined;
      let refused = false;
      const { state } = await updateAlarmState(states, key, reg, (s) => {
        if (max !== undefined && s.fired >= max) {
          refused = true;
          return undefined;
        }
        return { ...s, fired: s.fired + 1, lastTick: Math.max(s.lastTick ?? tick, tick) };
      });
      if (refused) return finish(key, reg, `maxTriggers (${max}) reached`);
      reachedMax = max !== undefined && state.fired >= max;
      claim = { ...claim, counted: true };
      await ticks.update(claimKey, JSON.stringify(claim), rev);
      rev = (await ticks.get(claimKey))?.revision ?? rev;
    }
    await publishWithRetry(js, {
      activationId: alarmFireId(reg.namespace, reg.trigger, tick),
      namespace: reg.namespace,
      trigger: reg.trigger,
      payload: spec.payload,
      // OpenWhisk's activation subject: whoever fired it, here the feed's owner.
      subject: reg.namespace,
      source: "alarm",
      time: Date.now(),
      depth: 0,
    });
    await ticks.update(claimKey, JSON.stringify({ ...claim, fired: true }), rev).catch(() => undefined);
    logger.debug({ key, tick: new Date(tick).toISOString() }, "alarm fired");
    if (reachedMax) await finish(key, reg, `maxTriggers (${spec.kind === "alarm" ? spec.maxTriggers : 0}) reached`);
    if (spec.kind === "once") {
      await finish(key, reg, "fired");
      if (spec.deleteAfterFire !== "false") await deleteAfterFire(key, reg, spec.deleteAfterFire === "rules");
    }
  };

  const finish = async (key: string, reg: FeedRegistration, reason: string) => {
    const { written } = await updateAlarmState(states, key, reg, (s) =>
      s.finished?.updated === reg.updated ? undefined : { ...s, finished: { reason, at: Date.now(), updated: reg.updated } },
    );
    if (written) logger.info({ key, reason }, "alarm finished");
    unschedule(key);
  };

  /** OpenWhisk's `deleteAfterFire`: the trigger (and with "rules" its rules) go, and the feed with it. */
  const deleteAfterFire = async (key: string, reg: FeedRegistration, withRules: boolean) => {
    if (withRules) {
      const path = `/${reg.namespace}/${reg.trigger}`;
      for await (const ruleKey of await rules.keys(namespaceKeyFilter(reg.namespace))) {
        const entry = await rules.get(ruleKey);
        const rule = entry?.operation === "PUT" ? Rule.safeParse(entry.json()) : undefined;
        if (rule?.success && rule.data.trigger === path) await rules.delete(ruleKey);
      }
    }
    await triggers.delete(key);
    await feeds.delete(key);
    await states.delete(key);
    logger.info({ key, withRules }, "deleted a once alarm's trigger after it fired (deleteAfterFire)");
  };

  const apply = async (entry: KvWatchEntry) => {
    if (entry.operation !== "PUT") {
      unschedule(entry.key);
      // Its counters go with it (whoever deleted it: the feed's DELETE, or the trigger's), unless
      // a new registration took its place meanwhile.
      if ((await feeds.get(entry.key))?.operation !== "PUT") await states.delete(entry.key);
      return;
    }
    const reg = FeedRegistration.safeParse(entryJson(entry));
    if (!reg.success || !ALARM_KINDS.has(reg.data.kind)) return unschedule(entry.key);
    if (scheduled.get(entry.key)?.revision === entry.revision) return;
    await schedule(entry.key, reg.data, entry.revision);
  };

  // Current registrations first, then every change, applied in order.
  const follower = await followBucket(feeds, apply, logger, "alarm registrations");
  logger.info({ serviceId }, "alarms service started");

  return {
    async stop() {
      closing = true;
      await follower.stop();
      for (const key of [...scheduled.keys()]) unschedule(key);
      for (const timer of stray) clearTimeout(timer);
      stray.clear();
      await Promise.allSettled([...pending]);
    },
  };
}

/** Same id every attempt: JetStream keeps one copy however many get through. */
async function publishWithRetry(js: JetStreamClient, fire: Parameters<typeof publishFire>[1]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await publishFire(js, fire);
    } catch (err) {
      if (attempt >= PUBLISH_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

// Alarms: the schedule computation (cron with seconds and time zones, intervals, once, start and
// stop dates) as units; then real alarms services on a real nats-server — two of them on the same
// registrations fire each tick exactly once, on time, in the alarm's time zone, and stop at
// stopDate; maxTriggers, pause, once (with deleteAfterFire) and the missed-tick policy — reading
// FIRES_STREAM directly; and end to end on a whole platform with two triggers components, through
// a rule to an action.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import openwhisk from "openwhisk";
import {
  ALARM_STATE_BUCKET,
  ALARM_TICKS_BUCKET,
  entityKey,
  FEEDS_BUCKET,
  FIRES_STREAM,
  FireEvent,
  RULES_BUCKET,
  TRIGGERS_BUCKET,
  type FeedRegistration,
} from "../contracts/index.ts";
import { connectNats } from "../infra/connect.ts";
import { createLogger } from "../infra/logger.ts";
import { nextTick, parseAlarmParams, type AlarmSpec } from "../triggers/alarm-schedule.ts";
import { AlarmState } from "../triggers/alarm-state.ts";
import { alarmFireId, CLAIM_TIMEOUT_MS, startAlarms } from "../triggers/alarms.ts";
import { startTriggers } from "../triggers/index.ts";
import { api, startPlatform, startProvisionedNats, waitForActivation } from "./harness.ts";

/** The client's feeds API: get and update exist in its code (lib/feeds.js) but not in its typings. */
type FeedOptions = { name: string; trigger: string; params?: Record<string, unknown> };
const feedsOf = (client: ReturnType<typeof openwhisk>) =>
  client.feeds as unknown as { get(o: FeedOptions): Promise<unknown>; update(o: FeedOptions): Promise<unknown> };

const logger = createLogger("silent");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spec = (kind: "alarm" | "once" | "interval", params: Record<string, unknown>): AlarmSpec => {
  const parsed = parseAlarmParams(kind, params);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.spec;
};
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const at = (date: string) => Date.parse(date);

/** The current hour in `timeZone`, and the next one: an hour field that only matches in that zone. */
function hoursIn(timeZone: string): string {
  const hour = Number(new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", hourCycle: "h23" }).format(new Date()));
  return `${hour},${(hour + 1) % 24}`;
}

// ---- the computation ----

test("cron ticks are read in the alarm's time zone, DST included", (t) => {
  const cron = "0 30 9 * * *";
  t.is(iso(nextTick(spec("alarm", { cron, timezone: "Asia/Kolkata" }), at("2026-01-01T00:00:00Z"), 0)), "2026-01-01T04:00:00.000Z");
  t.is(iso(nextTick(spec("alarm", { cron, timezone: "Asia/Kathmandu" }), at("2026-01-01T00:00:00Z"), 0)), "2026-01-01T03:45:00.000Z");
  t.is(iso(nextTick(spec("alarm", { cron }), at("2026-01-01T00:00:00Z"), 0)), "2026-01-01T09:30:00.000Z", "UTC without a time zone");
  // New York: UTC-5 in winter, UTC-4 in summer.
  const ny = spec("alarm", { cron: "0 9 * * *", timezone: "America/New_York" });
  t.is(iso(nextTick(ny, at("2026-01-10T00:00:00Z"), 0)), "2026-01-10T14:00:00.000Z");
  t.is(iso(nextTick(ny, at("2026-07-10T00:00:00Z"), 0)), "2026-07-10T13:00:00.000Z");
  // Six fields: seconds first; strictly after the given instant.
  const everySecond = spec("alarm", { cron: "*/1 * * * * *" });
  t.is(iso(nextTick(everySecond, at("2026-01-01T00:00:00.000Z"), 0)), "2026-01-01T00:00:01.000Z");
  t.is(iso(nextTick(everySecond, at("2026-01-01T00:00:00.400Z"), 0)), "2026-01-01T00:00:01.000Z");
  t.is(iso(nextTick(spec("alarm", { cron: "*/20 * * * * *" }), at("2026-01-01T00:00:21Z"), 0)), "2026-01-01T00:00:40.000Z");
});

test("startDate and stopDate bound cron and interval ticks; once fires at its date only", (t) => {
  const bounded = spec("alarm", { cron: "0 * * * *", startDate: "2026-03-01T10:30:00Z", stopDate: "2026-03-01T13:00:00Z" });
  t.is(iso(nextTick(bounded, at("2026-01-01T00:00:00Z"), 0)), "2026-03-01T11:00:00.000Z");
  t.is(iso(nextTick(bounded, at("2026-03-01T11:00:00Z"), 0)), "2026-03-01T12:00:00.000Z");
  t.is(nextTick(bounded, at("2026-03-01T12:00:00Z"), 0), undefined, "13:00 is the stopDate: excluded");
  const exactStart = spec("alarm", { cron: "0 * * * *", startDate: "2026-03-01T10:00:00Z" });
  t.is(iso(nextTick(exactStart, at("2026-01-01T00:00:00Z"), 0)), "2026-03-01T10:00:00.000Z", "a tick at startDate counts");

  // Interval: from startDate, else from the registration (anchor), every `minutes`.
  const anchor = at("2026-05-05T10:00:07Z");
  const every2 = spec("interval", { minutes: 2 });
  t.is(iso(nextTick(every2, anchor - 1, anchor)), "2026-05-05T10:00:07.000Z", "first tick at once");
  t.is(iso(nextTick(every2, anchor, anchor)), "2026-05-05T10:02:07.000Z");
  t.is(iso(nextTick(every2, at("2026-05-05T10:05:00Z"), anchor)), "2026-05-05T10:06:07.000Z");
  const started = spec("interval", { minutes: 15, startDate: "2026-05-05T12:00:00Z", stopDate: "2026-05-05T12:31:00Z" });
  t.is(iso(nextTick(started, anchor, anchor)), "2026-05-05T12:00:00.000Z");
  t.is(iso(nextTick(started, at("2026-05-05T12:15:00Z"), anchor)), "2026-05-05T12:30:00.000Z");
  t.is(nextTick(started, at("2026-05-05T12:30:00Z"), anchor), undefined);
  // The test-only minute length scales the period, nothing else.
  t.is(nextTick(every2, anchor, anchor, 1000), anchor + 2000);

  const once = spec("once", { date: "2026-06-01T08:00:00Z" });
  t.is(iso(nextTick(once, at("2026-01-01T00:00:00Z"), 0)), "2026-06-01T08:00:00.000Z");
  t.is(nextTick(once, at("2026-06-01T08:00:00Z"), 0), undefined);
  t.is(iso(nextTick(spec("once", { date: at("2026-06-01T08:00:00Z") }), 0, 0)), "2026-06-01T08:00:00.000Z", "epoch ms as well");
});

test("parameters: defaults, strings as wsk sends them, and clear errors", (t) => {
  t.like(spec("alarm", { cron: "* * * * *" }), { missed: "skip", payload: {} });
  t.like(spec("once", { date: "2030-01-01T00:00:00Z" }), { missed: "fire-once", deleteAfterFire: "false" });
  t.like(spec("interval", { minutes: "5", trigger_payload: '{"a":1}' }), { minutes: 5, payload: { a: 1 } });
  t.like(spec("alarm", { cron: "* * * * *", maxTriggers: -1 }), { maxTriggers: undefined });
  const error = (kind: "alarm" | "once" | "interval", params: Record<string, unknown>) => {
    const parsed = parseAlarmParams(kind, params, { now: at("2026-01-01T00:00:00Z") });
    return parsed.ok ? "accepted" : parsed.error;
  };
  t.regex(error("alarm", { cron: "* * * *" }), /^cron: "\* \* \* \*" has 4 fields; it needs 5/);
  t.regex(error("alarm", { cron: "* 25 * * *" }), /^cron: .* not a valid cron expression: .*hour/);
  t.regex(error("alarm", { cron: 5 }), /^cron: must be a string/);
  t.regex(error("alarm", { cron: "* * * * *", timezone: "Europe/Atlantis" }), /^timezone: unknown time zone/);
  t.regex(error("alarm", { cron: "* * * * *", startDate: "2026-13-45T00:00:00Z" }), /^startDate: must be an ISO 8601 date/);
  t.regex(error("alarm", { cron: "* * * * *", stopDate: "2025-12-31T00:00:00Z" }), /^stopDate: .* is in the past/);
  t.regex(error("alarm", { cron: "0 0 1 1 *", startDate: "2026-02-01T00:00:00Z", stopDate: "2026-03-01T00:00:00Z" }), /never fires between startDate and stopDate/);
  t.regex(error("once", { date: "2025-06-01T00:00:00Z" }), /^date: .* is in the past/);
  t.regex(error("interval", { minutes: "ten" }), /^minutes: must be a whole number/);
  t.is(error("alarm", { cron: "*/5 * * * * *", timezone: "Asia/Tokyo", stopDate: "2026-01-02T00:00:00Z" }), "accepted");
});

// ---- real services on a real nats-server ----

interface Bench {
  nc: NatsConnection;
  feeds: KV;
  triggers: KV;
  ticks: KV;
  states: KV;
  /** Every FireEvent in FIRES_STREAM (nobody consumes it here). */
  fires(): Promise<FireEvent[]>;
  register(trigger: string, kind: FeedRegistration["kind"], params: Record<string, unknown>, extra?: Partial<FeedRegistration>): Promise<FeedRegistration>;
  state(trigger: string): Promise<AlarmState | undefined>;
}

let bench: Bench;
let stopBench: () => Promise<void>;
/** Two alarms services (two "triggers components") on two connections to the same server. */
let services: Array<{ stop(): Promise<void> }> = [];

test.before(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-alarms-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "alarms-test");
  const nc2 = await connectNats(nats.url, "alarms-test-2");
  const kvm = new Kvm(nc);
  const [feeds, triggers, ticks, states] = await Promise.all([FEEDS_BUCKET, TRIGGERS_BUCKET, ALARM_TICKS_BUCKET, ALARM_STATE_BUCKET].map((b) => kvm.open(b)));
  const jsm = await jetstreamManager(nc);
  bench = {
    nc, feeds: feeds!, triggers: triggers!, ticks: ticks!, states: states!,
    async fires() {
      const info = await jsm.streams.info(FIRES_STREAM);
      const out: FireEvent[] = [];
      for (let seq = Number(info.state.first_seq); seq <= Number(info.state.last_seq) && info.state.messages > 0; seq++) {
        const msg = await jsm.streams.getMessage(FIRES_STREAM, { seq }).catch(() => null);
        if (msg) out.push(FireEvent.parse(msg.json()));
      }
      return out;
    },
    async register(trigger, kind, params, extra = {}) {
      const now = Date.now();
      await triggers!.put(entityKey("guest", trigger), JSON.stringify({ namespace: "guest", name: trigger, version: "0.0.1", publish: false, parameters: [], annotations: [], updated: now }));
      const reg: FeedRegistration = { namespace: "guest", trigger, feed: `/whisk.system/alarms/${kind}`, kind, params, status: "active", created: now, updated: now, ...extra };
      await feeds!.put(entityKey("guest", trigger), JSON.stringify(reg));
      return reg;
    },
    async state(trigger) {
      const entry = await states!.get(entityKey("guest", trigger));
      return entry?.operation === "PUT" ? AlarmState.parse(entry.json()) : undefined;
    },
  };
  services = [
    await startAlarms({ nc, logger, minuteMs: 500 }),
    await startAlarms({ nc: nc2, logger, minuteMs: 500 }),
  ];
  stopBench = async () => {
    for (const s of services) await s.stop();
    await nc2.close();
    await nc.close();
    await nats.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
});
test.after.always(async () => {
  await stopBench?.();
});

const firesOf = async (trigger: string) => (await bench.fires()).filter((f) => f.trigger === trigger);

test.serial("two services fire a per-second alarm in its time zone exactly once per tick, on time, until stopDate", async (t) => {
  const zone = "Asia/Kathmandu"; // UTC+05:45: its hours are no UTC hour
  const cron = `*/1 * ${hoursIn(zone)} * * *`;
  const stopDate = Date.now() + 4_500;
  const reg = await bench.register("per-second", "alarm", { cron, timezone: zone, stopDate, trigger_payload: { hello: "tick" } });
  // The same schedule read in UTC never matches now: it must not fire.
  await bench.register("per-second-utc", "alarm", { cron, stopDate });
  await sleep(stopDate - Date.now() + 2_500);

  const fires = await firesOf("per-second");
  const expected: number[] = [];
  for (let s = Math.ceil(reg.created / 1000) * 1000; s < stopDate; s += 1000) expected.push(s);
  t.true(expected.length >= 4, `${expected.length} ticks`);
  t.deepEqual(fires.map((f) => f.activationId).sort(), expected.map((s) => alarmFireId("guest", "per-second", s)).sort(), "one fire per tick, none after stopDate");
  for (const fire of fires) {
    const tick = expected.find((s) => alarmFireId("guest", "per-second", s) === fire.activationId)!;
    t.true(fire.time >= tick && fire.time - tick < 2_000, `tick ${iso(tick)} fired at ${iso(fire.time)}`);
    t.deepEqual(fire.payload, { hello: "tick" });
    t.like(fire, { namespace: "guest", trigger: "per-second", source: "alarm", subject: "guest", depth: 0 });
  }
  // Each tick was claimed once, and the claim is marked fired; both services took part in claiming.
  const claims: Array<{ by: string; fired: boolean }> = [];
  for await (const key of await bench.ticks.keys(`${entityKey("guest", "per-second")}.*`)) claims.push((await bench.ticks.get(key))!.json());
  t.is(claims.length, expected.length);
  t.true(claims.every((c) => c.fired));
  const state = await bench.state("per-second");
  t.like(state, { fired: expected.length, lastTick: expected.at(-1) });
  t.is(state?.finished?.reason, "stopDate reached");
  t.deepEqual(await firesOf("per-second-utc"), []);
});

test.serial("maxTriggers stops an alarm after that many fires, counted across services", async (t) => {
  await bench.register("max-two", "alarm", { cron: "* * * * * *", maxTriggers: 2 });
  await sleep(4_500);
  t.is((await firesOf("max-two")).length, 2);
  t.is((await bench.state("max-two"))?.finished?.reason, "maxTriggers (2) reached");
  await bench.feeds.delete(entityKey("guest", "max-two"));
});

test.serial("a paused registration does not fire; unpaused it does", async (t) => {
  const reg = await bench.register("pausable", "alarm", { cron: "* * * * * *" }, { status: "paused" });
  await sleep(2_500);
  t.is((await firesOf("pausable")).length, 0);
  await bench.feeds.put(entityKey("guest", "pausable"), JSON.stringify({ ...reg, status: "active", updated: Date.now() }));
  await sleep(2_500);
  t.true((await firesOf("pausable")).length >= 1);
  await bench.feeds.delete(entityKey("guest", "pausable"));
  await sleep(500);
  const count = (await firesOf("pausable")).length;
  await sleep(2_000);
  t.is((await firesOf("pausable")).length, count, "a deleted registration stops firing");
});

test.serial("once fires at its date, then finishes; deleteAfterFire removes the trigger", async (t) => {
  const date = Date.now() + 1_500;
  await bench.register("once-keep", "once", { date });
  await bench.register("once-delete", "once", { date, deleteAfterFire: true });
  await sleep(3_500);
  const kept = await firesOf("once-keep");
  t.deepEqual(kept.map((f) => f.activationId), [alarmFireId("guest", "once-keep", date)]);
  t.true(kept[0]!.time - date < 1_500);
  t.is((await bench.state("once-keep"))?.finished?.reason, "fired");
  t.is((await firesOf("once-delete")).length, 1);
  t.is(await bench.triggers.get(entityKey("guest", "once-delete")).then((e) => e?.operation), "DEL");
  t.is(await bench.feeds.get(entityKey("guest", "once-delete")).then((e) => e?.operation), "DEL");
});

test.serial("a claim whose owner died before firing is taken over and fired once, with the same id", async (t) => {
  const date = Date.now() + 1_000;
  const key = entityKey("guest", "orphan");
  // A service that claimed the tick and died: nobody else may fire it until the claim times out.
  await bench.ticks.create(`${key}.${date}`, JSON.stringify({ by: "dead-service", at: Date.now(), counted: false, fired: false }));
  await bench.register("orphan", "once", { date });
  await sleep(2_500);
  t.deepEqual(await firesOf("orphan"), [], "not while the claim is fresh");
  await sleep(CLAIM_TIMEOUT_MS + 1_000);
  t.deepEqual((await firesOf("orphan")).map((f) => f.activationId), [alarmFireId("guest", "orphan", date)]);
  const claim = (await bench.ticks.get(`${key}.${date}`))!.json<{ by: string; fired: boolean }>();
  t.true(claim.fired);
  t.not(claim.by, "dead-service");
  t.is((await bench.state("orphan"))?.fired, 1, "counted once");
});

test.serial("missed ticks: fire-once fires one late tick, skip fires none", async (t) => {
  const past = Date.now() - 30_000;
  const date = past + 10_000;
  // Registered while no service ran (created 30 s ago), its date passed 20 s ago.
  await bench.register("missed-once", "once", { date }, { created: past, updated: past });
  await bench.register("missed-skip", "once", { date, missed: "skip" }, { created: past, updated: past });
  await sleep(2_000);
  t.deepEqual((await firesOf("missed-once")).map((f) => f.activationId), [alarmFireId("guest", "missed-once", date)]);
  t.deepEqual(await firesOf("missed-skip"), []);
  t.is((await bench.state("missed-skip"))?.finished?.reason, "its date passed");
});

test.serial("a recurring alarm resumes after downtime: fire-once fires one missed tick, skip none, then both keep the schedule", async (t) => {
  const now = Date.now();
  const created = now - 60_000;
  const lastTick = Math.floor((now - 20_000) / 1000) * 1000;
  const stopDate = now + 2_500;
  for (const [trigger, missed] of [["resume-once", "fire-once"], ["resume-skip", "skip"]] as const) {
    // As a service left it 20 s ago (3 fires), before every service stopped.
    await bench.states.put(entityKey("guest", trigger), JSON.stringify({ created, fired: 3, lastTick }));
    await bench.register(trigger, "alarm", { cron: "* * * * * *", missed, stopDate }, { created, updated: created });
  }
  await sleep(stopDate - Date.now() + 2_000);
  const regular: number[] = [];
  for (let s = Math.ceil((now - 5_000) / 1000) * 1000; s < stopDate; s += 1000) regular.push(s);
  const ids = async (trigger: string) => new Set((await firesOf(trigger)).map((f) => f.activationId));
  const once = await ids("resume-once");
  const skip = await ids("resume-skip");
  t.true(once.has(alarmFireId("guest", "resume-once", lastTick + 1_000)), "the first missed tick fired once");
  t.false(skip.has(alarmFireId("guest", "resume-skip", lastTick + 1_000)), "skipped");
  // Ticks within the last 5 s are late, not missed; the ones after now are on schedule.
  const future = regular.filter((s) => s > now + 500);
  t.true(future.length >= 1);
  for (const s of future) {
    t.true(once.has(alarmFireId("guest", "resume-once", s)), iso(s));
    t.true(skip.has(alarmFireId("guest", "resume-skip", s)), iso(s));
  }
  t.is(once.size, skip.size + 1, "fire-once fired exactly one tick more");
  t.is((await bench.state("resume-once"))?.fired, 3 + once.size, "counting went on from the stored count");
});

test.serial("a tick of an alarm whose trigger is gone fires nothing; deleteAfterFire \"rules\" deletes the trigger's rules", async (t) => {
  const date = Date.now() + 1_200;
  await bench.register("no-trigger", "once", { date });
  await bench.triggers.delete(entityKey("guest", "no-trigger"));
  await bench.register("with-rules", "once", { date, deleteAfterFire: "rules" });
  const rules = await new Kvm(bench.nc).open(RULES_BUCKET);
  const rule = (name: string, trigger: string) => JSON.stringify({ namespace: "guest", name, version: "0.0.1", publish: false, annotations: [], trigger, action: "/guest/a", status: "active", updated: Date.now() });
  await rules.put(entityKey("guest", "r-mine"), rule("r-mine", "/guest/with-rules"));
  await rules.put(entityKey("guest", "r-other"), rule("r-other", "/guest/something-else"));
  await sleep(3_000);
  t.deepEqual(await firesOf("no-trigger"), []);
  t.is((await firesOf("with-rules")).length, 1);
  t.is((await rules.get(entityKey("guest", "r-mine")))?.operation, "DEL");
  t.is((await rules.get(entityKey("guest", "r-other")))?.operation, "PUT", "another trigger's rule stays");
});

test.serial("interval: ticks every `minutes` from its start (with the test-only 500 ms minute)", async (t) => {
  const reg = await bench.register("interval", "interval", { minutes: 2, stopDate: Date.now() + 3_300 });
  await sleep(5_000);
  const fires = await firesOf("interval");
  const expected = [0, 1, 2, 3].map((k) => alarmFireId("guest", "interval", reg.created + k * 1_000));
  t.deepEqual(fires.map((f) => f.activationId).sort(), expected.sort());
});

// ---- end to end: a whole platform, two triggers components, a rule ----

test.serial("end to end: an alarm feed made with the openwhisk client runs its rule once per tick with two triggers components", async (t) => {
  const platform = await startPlatform({ runnerCapacity: 4 });
  // A second triggers component on its own connection, as another process would run it.
  const nc2 = await connectNats(`nats://${platform.nc.getServer()}`, "second-triggers");
  const second = await startTriggers({ nc: nc2, logger });
  try {
    const ow = openwhisk({ api: `${platform.url}/api/v1/`, api_key: platform.apiKey });
    await ow.actions.create({ name: "tick-echo", action: "function main(p) { return { got: p.hello, zone: p.zone }; }" });
    await ow.triggers.create({ name: "every-second", trigger: { parameters: [{ key: "zone", value: "Asia/Kathmandu" }] } });
    await ow.rules.create({ name: "every-second-rule", trigger: "every-second", action: "tick-echo" });
    // Room for the feed's CREATE (a blocking call through the whole platform, slow on a loaded
    // machine) and several ticks after it; what matters is one activation per tick, not how many.
    const stopDate = Date.now() + 6_500;
    const created: any = await ow.feeds.create({
      name: "/whisk.system/alarms/alarm",
      trigger: "every-second",
      params: { cron: `* * ${hoursIn("Asia/Kathmandu")} * * *`, timezone: "Asia/Kathmandu", stopDate: new Date(stopDate).toISOString(), trigger_payload: { hello: "world" } },
    });
    t.true(created.response.success, JSON.stringify(created.response));
    await sleep(stopDate - Date.now() + 3_000);

    const list = await platform.request("GET", api("activations?name=every-second&limit=100"));
    const ids: string[] = list.body.map((a: { activationId: string }) => a.activationId);
    t.log(`${ids.length} ticks fired between the feed's CREATE and its stopDate`);
    t.true(ids.length >= 2, `${ids.length} trigger activations`);
    t.is(new Set(ids).size, ids.length);
    const actionRecords = (await platform.request("GET", api("activations?name=tick-echo&limit=100"))).body;
    t.is(actionRecords.length, ids.length, "one rule activation per tick");
    for (const id of ids) {
      const record = await waitForActivation(platform, id);
      t.deepEqual(record.response.result, { hello: "world" });
      const ruleLog = JSON.parse(record.logs[0]);
      t.like(ruleLog, { success: true, rule: "guest/every-second-rule", action: "guest/tick-echo" });
      const run = await waitForActivation(platform, ruleLog.activationId);
      t.deepEqual(run.response.result, { got: "world", zone: "Asia/Kathmandu" });
    }
    const read: any = await feedsOf(ow).get({ name: "/whisk.system/alarms/alarm", trigger: "every-second" });
    t.like(read.response.result.status, { active: false, state: "finished", reason: "stopDate reached", fired: ids.length });
    await ow.feeds.delete({ name: "/whisk.system/alarms/alarm", trigger: "every-second" });
  } finally {
    await second.stop();
    await nc2.close();
    await platform.stop();
  }
});

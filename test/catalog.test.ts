// The system catalog (namespace whisk.system, packages utils, alarms and nats) and the feed
// actions' lifecycle, on a whole platform: the utils actions run in guests and answer as
// OpenWhisk's do; the feed actions are run by the platform (isolation "platform") through the
// normal invoke path, driven by the `openwhisk` client's feeds API and by plain requests, and
// refuse bad parameters, other namespaces' triggers and missing triggers without writing anything.
import test from "ava";
import { Kvm, type KV } from "@nats-io/kv";
import openwhisk from "openwhisk";
import { Admin } from "../admin/namespaces.ts";
import { installCatalog } from "../catalog/install.ts";
import { CATALOG } from "../catalog/manifest.ts";
import { ACTIONS_BUCKET, Action, actionKey, entityKey, FEEDS_BUCKET, FeedRegistration } from "../contracts/index.ts";
import { createLogger } from "../infra/logger.ts";
import { annotation, api, startPlatform, waitForActivation, type Platform } from "./harness.ts";

/** The client's feeds API: get and update exist in its code (lib/feeds.js) but not in its typings. */
type FeedOptions = { name: string; trigger: string; params?: Record<string, unknown> };
const feedsOf = (client: ReturnType<typeof openwhisk>) =>
  client.feeds as unknown as { get(o: FeedOptions): Promise<unknown>; update(o: FeedOptions): Promise<unknown> };

let platform: Platform;
let ow: ReturnType<typeof openwhisk>;
let feeds: KV;

const SYS = "/api/v1/namespaces/whisk.system";

test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 4 });
  ow = openwhisk({ api: `${platform.url}/api/v1/`, api_key: platform.apiKey });
  feeds = await new Kvm(platform.nc).open(FEEDS_BUCKET);
});
test.after.always(async () => {
  await platform?.stop();
});

const registration = async (trigger: string): Promise<FeedRegistration | undefined> => {
  const entry = await feeds.get(entityKey("guest", trigger));
  return entry?.operation === "PUT" ? FeedRegistration.parse(entry.json()) : undefined;
};
const makeTrigger = async (name: string) => {
  const res = await platform.request("PUT", api(`triggers/${name}`), {});
  if (res.status !== 200) throw new Error(`PUT trigger ${name}: ${res.status} ${JSON.stringify(res.body)}`);
};
/** A blocking invocation of a whisk.system action by path, as curl would make it. */
const invokeSystem = (action: string, params: Record<string, unknown>) =>
  platform.request("POST", `${SYS}/actions/${action}?blocking=true`, params);

test("whisk.system publishes utils, alarms and nats, readable from every namespace", async (t) => {
  const res = await platform.request("GET", `${SYS}/packages`);
  t.is(res.status, 200, JSON.stringify(res.body));
  const names = res.body.map((p: { name: string }) => p.name).sort();
  t.deepEqual(names, ["alarms", "nats", "utils"]);
  t.true(res.body.every((p: { publish: boolean }) => p.publish));
  const alarms = await platform.request("GET", `${SYS}/packages/alarms`);
  t.is(alarms.status, 200);
  const actions = alarms.body.actions.map((a: { name: string }) => a.name).sort();
  t.deepEqual(actions, ["alarm", "interval", "once"]);
  // Another namespace sees them too (published packages are shared).
  const { apiKey } = await (await Admin.open(platform.nc)).createNamespace("catalog-other");
  const other = await platform.request("GET", `${SYS}/packages/utils`, undefined, {}, { auth: apiKey });
  t.is(other.status, 200, JSON.stringify(other.body));
  const echo = await platform.request("POST", `${SYS}/actions/utils/echo?blocking=true&result=true`, { payload: "hi" }, {}, { auth: apiKey });
  t.is(echo.status, 200, JSON.stringify(echo.body));
  t.deepEqual(echo.body, { payload: "hi" });
});

test("utils actions answer as OpenWhisk's catalog does", async (t) => {
  const run = (name: string, params: Record<string, unknown>) =>
    ow.actions.invoke({ name: `/whisk.system/utils/${name}`, params, blocking: true, result: true }) as Promise<Record<string, any>>;
  t.deepEqual(await run("echo", { payload: "Five fuzzy felines", n: 1 }), { payload: "Five fuzzy felines", n: 1 });
  t.deepEqual(await run("cat", { lines: [4, 2, 3], other: "dropped" }), { lines: [4, 2, 3], payload: "4\n2\n3" });
  t.deepEqual(await run("cat", { payload: "a\r\nb\nc" }), { lines: ["a", "b", "c"], payload: "a\nb\nc" });
  t.deepEqual(await run("cat", {}), { lines: [], payload: "" });
  t.deepEqual(await run("sort", { lines: ["pear", "apple", "fig"] }), { lines: ["apple", "fig", "pear"], length: 3 });
  t.deepEqual(await run("sort", { lines: [4, 2, 3] }), { lines: [2, 3, 4], length: 3 });
  t.deepEqual(await run("head", { lines: [4, 2, 3], num: 2 }), { lines: [4, 2], num: 2 });
  t.deepEqual(await run("head", { lines: ["a", "b"] }), { lines: ["a"], num: 1 });
  t.deepEqual(await run("split", { payload: "one,two,three", separator: "," }), { lines: ["one", "two", "three"], payload: "one,two,three" });
  t.deepEqual(await run("split", { payload: "x\ny" }), { lines: ["x", "y"], payload: "x\ny" });
  const before = Date.now();
  const { date } = await run("date", {});
  t.regex(date, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  t.true(Math.abs(Date.parse(date) - before) < 60_000, date);
  // Bad input is the caller's error, named.
  const bad = await platform.request("POST", `${SYS}/actions/utils/split?blocking=true`, {});
  t.is(bad.status, 502);
  t.regex(bad.body.response.result.error, /payload is required/);
  const badHead = await platform.request("POST", `${SYS}/actions/utils/head?blocking=true`, { lines: [1], num: "two" });
  t.regex(badHead.body.response.result.error, /num must be/);
});

test("installing the catalog again changes nothing, even from several gateways at once; changed code is a new version", async (t) => {
  const logger = createLogger("silent");
  const actions = await new Kvm(platform.nc).open(ACTIONS_BUCKET);
  const read = async (name: string) => Action.parse((await actions.get(actionKey("whisk.system", name)))!.json());
  const before = await read("utils/cat");
  await Promise.all([installCatalog(platform.nc, logger), installCatalog(platform.nc, logger), installCatalog(platform.nc, logger)]);
  t.is((await read("utils/cat")).version, before.version);
  t.is((await read("utils/cat")).updated, before.updated, "not rewritten");
  // A store holding older code (an older Vespid) is brought up to date, as a new version.
  await actions.put(actionKey("whisk.system", "utils/cat"), JSON.stringify({ ...before, exec: { ...before.exec, code: "function main() { return {old: true}; }" } }));
  await Promise.all([installCatalog(platform.nc, logger), installCatalog(platform.nc, logger)]);
  const after = await read("utils/cat");
  const manifestCode = CATALOG.find((p) => p.name === "utils")!.actions.find((a) => a.name === "cat")!.exec.code;
  t.is(after.exec.kind !== "sequence" && after.exec.code, manifestCode);
  t.is(after.version, "0.0.2", "exactly one of the racing installs stored it");
  const res = await platform.request("GET", `${SYS}/actions/utils/cat`);
  t.is(res.body.version, "0.0.2");
});

test("nobody can create a builtin action: the kind is refused at PUT", async (t) => {
  const res = await platform.request("PUT", api("actions/fake-feed"), { exec: { kind: "builtin:alarm", code: "x" } });
  t.is(res.status, 400);
  t.regex(JSON.stringify(res.body), /exec/);
});

test("feed lifecycle through the openwhisk client: create, get, update, delete", async (t) => {
  await makeTrigger("ow-alarm");
  const created: any = await ow.feeds.create({ name: "/whisk.system/alarms/alarm", trigger: "ow-alarm", params: { cron: "0 9 * * 1", timezone: "Europe/Paris", trigger_payload: { hello: "monday" } } });
  t.true(created.response.success, JSON.stringify(created.response));
  t.is(created.name, "alarms/alarm");
  t.is(annotation(created, "isolation"), "platform", "the platform ran it, not a guest");
  t.truthy(created.logs.some((l: string) => /registered, first tick/.test(l)), created.logs.join("\n"));
  const reg = await registration("ow-alarm");
  t.like(reg, { namespace: "guest", trigger: "ow-alarm", feed: "/whisk.system/alarms/alarm", kind: "alarm", status: "active" });
  t.deepEqual(reg!.params, { cron: "0 9 * * 1", timezone: "Europe/Paris", trigger_payload: { hello: "monday" } }, "lifecycleEvent, triggerName and authKey are not stored");
  // The record is an ordinary activation, listed and readable.
  const record = await platform.request("GET", api(`activations/${created.activationId}`));
  t.is(record.status, 200);

  const read: any = await feedsOf(ow).get({ name: "/whisk.system/alarms/alarm", trigger: "ow-alarm" });
  t.is(read.response.result.config.cron, "0 9 * * 1");
  t.is(read.response.result.config.triggerName, "/guest/ow-alarm");
  t.like(read.response.result.status, { active: true, state: "active", fired: 0 });
  // Monday 09:00 in Paris is 07:00 or 08:00 UTC.
  t.regex(read.response.result.status.nextTick, /T0[78]:00:00\.000Z$/);
  t.is(new Date(read.response.result.status.nextTick).getUTCDay(), 1);

  const updated: any = await feedsOf(ow).update({ name: "/whisk.system/alarms/alarm", trigger: "ow-alarm", params: { cron: "30 9 * * 2" } });
  t.true(updated.response.success, JSON.stringify(updated.response));
  t.like((await registration("ow-alarm"))!.params, { cron: "30 9 * * 2", timezone: "Europe/Paris", trigger_payload: { hello: "monday" } });

  const deleted: any = await ow.feeds.delete({ name: "/whisk.system/alarms/alarm", trigger: "ow-alarm" });
  t.true(deleted.response.success);
  t.is(await registration("ow-alarm"), undefined);
  await t.throwsAsync(feedsOf(ow).get({ name: "/whisk.system/alarms/alarm", trigger: "ow-alarm" }), { any: true, message: /has no feed registered/ });
});

test("feed lifecycle with plain requests: non-blocking create, pause, unpause, read, delete", async (t) => {
  await makeTrigger("curl-once");
  const date = new Date(Date.now() + 3_600_000).toISOString();
  const queued = await platform.request("POST", `${SYS}/actions/alarms/once`, { lifecycleEvent: "CREATE", triggerName: "/_/curl-once", authKey: platform.apiKey, date });
  t.is(queued.status, 202, JSON.stringify(queued.body));
  const record = await waitForActivation(platform, queued.body.activationId);
  t.true(record.response.success, JSON.stringify(record.response));
  t.is(annotation(record, "isolation"), "platform");
  t.is((await registration("curl-once"))!.kind, "once");

  const paused = await invokeSystem("alarms/once", { lifecycleEvent: "PAUSE", triggerName: "/guest/curl-once" });
  t.is(paused.status, 200, JSON.stringify(paused.body));
  t.is((await registration("curl-once"))!.status, "paused");
  const readPaused = await invokeSystem("alarms/once", { lifecycleEvent: "READ", triggerName: "/guest/curl-once" });
  t.like(readPaused.body.response.result.status, { active: false, state: "paused" });
  await invokeSystem("alarms/once", { lifecycleEvent: "UNPAUSE", triggerName: "/guest/curl-once" });
  t.is((await registration("curl-once"))!.status, "active");
  const read = await invokeSystem("alarms/once", { lifecycleEvent: "READ", triggerName: "/guest/curl-once" });
  t.is(read.body.response.result.status.nextTick, date);
  // A feed manages only what it registered.
  const wrongFeed = await invokeSystem("alarms/interval", { lifecycleEvent: "DELETE", triggerName: "/guest/curl-once" });
  t.is(wrongFeed.status, 502);
  t.regex(wrongFeed.body.response.result.error, /is fed by \/whisk.system\/alarms\/once/);
  const gone = await invokeSystem("alarms/once", { lifecycleEvent: "DELETE", triggerName: "/guest/curl-once" });
  t.is(gone.status, 200);
  t.is(await registration("curl-once"), undefined);
});

test("bad feed parameters are failed activations naming the parameter, and store nothing", async (t) => {
  await makeTrigger("bad-params");
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["alarms/alarm", { cron: "61 * * * *" }, /cron: "61 \* \* \* \*" is not a valid cron expression: .*minute/],
    ["alarms/alarm", { cron: "every monday" }, /cron: "every monday" has 2 fields; it needs 5/],
    ["alarms/alarm", { cron: "0 0 0 1 1 * 2030" }, /cron: .* has 7 fields/],
    ["alarms/alarm", {}, /cron: is required/],
    ["alarms/alarm", { cron: "* * * * *", timezone: "Mars/Olympus" }, /timezone: unknown time zone "Mars\/Olympus"/],
    ["alarms/alarm", { cron: "* * * * *", startDate: "next tuesday" }, /startDate: must be an ISO 8601 date/],
    ["alarms/alarm", { cron: "* * * * *", startDate: "2031-01-02T00:00:00Z", stopDate: "2031-01-01T00:00:00Z" }, /stopDate: .* must be after startDate/],
    ["alarms/alarm", { cron: "* * * * *", stopDate: "2001-01-01T00:00:00Z" }, /stopDate: .* is in the past/],
    ["alarms/alarm", { cron: "* * * * *", maxTriggers: 0 }, /maxTriggers: must be a positive whole number/],
    ["alarms/alarm", { cron: "* * * * *", trigger_payload: "{not json" }, /trigger_payload: must be a JSON object/],
    ["alarms/alarm", { cron: "* * * * *", missed: "sometimes" }, /missed: must be "skip" or "fire-once"/],
    ["alarms/alarm", { cron: "0 0 30 2 *" }, /cron: .*(never fires|not a valid)/],
    ["alarms/once", {}, /date: is required/],
    ["alarms/once", { date: "2001-01-01T00:00:00Z" }, /date: .* is in the past/],
    ["alarms/once", { date: "soon" }, /date: must be an ISO 8601 date/],
    ["alarms/once", { date: Date.now() + 60_000, deleteAfterFire: "maybe" }, /deleteAfterFire: must be false, true or "rules"/],
    ["alarms/interval", { minutes: 0 }, /minutes: must be a whole number of minutes/],
    ["alarms/interval", { minutes: 1.5 }, /minutes: must be a whole number/],
    ["nats/subscribe", {}, /subject/],
    ["nats/subscribe", { subject: "vespid.fire.guest" }, /subject: subjects under vespid\. are reserved/],
    ["nats/subscribe", { subject: "$JS.API.STREAM.LIST" }, /subject: subjects under \$JS\. are reserved/],
    ["nats/subscribe", { subject: "$KV.vespid_auth.>" }, /subject: .*reserved/],
    ["nats/subscribe", { subject: "$SYS.REQ.SERVER.PING" }, /subject: .*reserved/],
    ["nats/subscribe", { subject: "_INBOX.abc" }, /subject: subjects under _INBOX\. are reserved/],
    ["nats/subscribe", { subject: ">" }, /subject: must start with a literal token/],
    ["nats/subscribe", { subject: "orders.>", durable: "d1" }, /durable: durable needs a stream/],
  ];
  for (const [feed, params, message] of cases) {
    const res = await invokeSystem(feed, { lifecycleEvent: "CREATE", triggerName: "/_/bad-params", authKey: platform.apiKey, ...params });
    t.is(res.status, 502, `${feed} ${JSON.stringify(params)}: ${JSON.stringify(res.body)}`);
    t.is(res.body.response.status, "application error");
    t.regex(res.body.response.result.error, message, `${feed} ${JSON.stringify(params)}`);
    t.is(await registration("bad-params"), undefined, "nothing stored");
  }
  // The openwhisk client surfaces the message.
  await t.throwsAsync(ow.feeds.create({ name: "/whisk.system/alarms/alarm", trigger: "bad-params", params: { cron: "* * * * *", timezone: "Nowhere" } }), { any: true, message: /timezone/ });
});

test("the lifecycle protocol itself is checked: event, trigger, namespace, duplicates", async (t) => {
  await makeTrigger("proto");
  const create = (params: Record<string, unknown>) => invokeSystem("alarms/interval", { minutes: 5, ...params });
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ triggerName: "/_/proto" }, /lifecycleEvent: must be one of CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE, got nothing/],
    [{ lifecycleEvent: "EXPLODE", triggerName: "/_/proto" }, /lifecycleEvent: must be one of/],
    [{ lifecycleEvent: "CREATE" }, /triggerName: is required/],
    [{ lifecycleEvent: "CREATE", triggerName: "/a/b/c" }, /triggerName: must be \/namespace\/trigger/],
    [{ lifecycleEvent: "CREATE", triggerName: "/catalog-victim/proto" }, /triggerName: \/catalog-victim\/proto is in namespace catalog-victim; a feed manages only triggers of the namespace that invokes it \(guest\)/],
    [{ lifecycleEvent: "CREATE", triggerName: "/_/no-such-trigger" }, /triggerName: trigger \/guest\/no-such-trigger does not exist/],
    [{ lifecycleEvent: "UPDATE", triggerName: "/_/proto" }, /has no feed registered/],
    [{ lifecycleEvent: "DELETE", triggerName: "/_/proto" }, /has no feed registered/],
  ];
  for (const [params, message] of cases) {
    const res = await create(params);
    t.is(res.status, 502, JSON.stringify(params));
    t.regex(res.body.response.result.error, message, JSON.stringify(params));
  }
  t.is(await registration("proto"), undefined);
  t.is(await registration("no-such-trigger"), undefined);
  // A second CREATE does not replace the first.
  t.is((await create({ lifecycleEvent: "CREATE", triggerName: "/_/proto" })).status, 200);
  const again = await create({ lifecycleEvent: "CREATE", triggerName: "/_/proto", minutes: 7 });
  t.is(again.status, 502);
  t.regex(again.body.response.result.error, /already has a feed \(\/whisk.system\/alarms\/interval\); DELETE it first/);
  t.is((await registration("proto"))!.params.minutes, 5);
  // An UPDATE with a bad value keeps the registration as it was.
  const badUpdate = await create({ lifecycleEvent: "UPDATE", triggerName: "/_/proto", minutes: -1 });
  t.is(badUpdate.status, 502);
  t.is((await registration("proto"))!.params.minutes, 5);
  t.is((await create({ lifecycleEvent: "DELETE", triggerName: "/_/proto" })).status, 200);
});

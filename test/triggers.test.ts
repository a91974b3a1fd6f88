// Triggers (issue 9, items 1 and 7): create, read, update, list, delete; fire → rule → action
// with the trigger's parameters merged under the payload; the trigger's activation record listing
// its rules' activations; rules disabled and enabled; two rules on one trigger; rules to packaged
// actions and sequences; a trigger without rules; redelivered fires starting nothing twice; fires
// beyond MAX_FIRE_DEPTH; deleting a trigger with a feed registration.
import { createHash } from "node:crypto";
import test from "ava";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { entityKey, FEEDS_BUCKET, fireSubject, MAX_FIRE_DEPTH } from "../contracts/index.ts";
import { Admin } from "../admin/namespaces.ts";
import { startGateway } from "../gateway/index.ts";
import { newActivationId } from "../gateway/invoke.ts";
import { createLogger } from "../infra/logger.ts";
import { publishFire } from "../triggers/publish.ts";
import { api, startPlatform, waitForActivation, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  const echo = await platform.request("PUT", api("actions/echo"), { exec: { kind: "nodejs", code: ECHO_JS } });
  if (echo.status !== 200) throw new Error(`creating echo: ${JSON.stringify(echo.body)}`);
});
test.after.always(async () => {
  await platform?.stop();
});

const ECHO_JS = `function main(params) { return params; }`;

/** Creates trigger `name` with `parameters` and rules `rule → action` for each pair. */
async function triggerWithRules(t: { is: (a: unknown, b: unknown, m?: string) => void }, name: string, rules: Record<string, string>, parameters: Array<{ key: string; value: unknown }> = []) {
  const created = await platform.request("PUT", api(`triggers/${name}`), { parameters });
  t.is(created.status, 200, JSON.stringify(created.body));
  for (const [rule, action] of Object.entries(rules)) {
    const res = await platform.request("PUT", api(`rules/${rule}`), { trigger: `/_/${name}`, action });
    t.is(res.status, 200, JSON.stringify(res.body));
  }
}

/** Fires `name` and returns its activation id (202 expected). */
async function fire(t: { is: (a: unknown, b: unknown, m?: string) => void }, name: string, payload: unknown): Promise<string> {
  const res = await platform.request("POST", api(`triggers/${name}`), payload);
  t.is(res.status, 202, JSON.stringify(res.body));
  t.is(res.headers["x-openwhisk-activation-id"], res.body.activationId);
  return res.body.activationId;
}

const logsOf = (activation: { logs: string[] }) => activation.logs.map((line) => JSON.parse(line));

test("a trigger: create, get, update with version bump, list, count, 409 without overwrite, delete", async (t) => {
  const created = await platform.request("PUT", api("triggers/crud"), {
    parameters: [{ key: "a", value: 1 }],
    annotations: [{ key: "description", value: "d" }],
    limits: {},
  });
  t.is(created.status, 200, JSON.stringify(created.body));
  t.deepEqual(created.body, {
    namespace: "guest", name: "crud", version: "0.0.1", publish: false,
    parameters: [{ key: "a", value: 1 }], annotations: [{ key: "description", value: "d" }], limits: {}, updated: created.body.updated,
  });
  const again = await platform.request("PUT", api("triggers/crud"), {});
  t.is(again.status, 409);
  t.is(again.body.error, "resource already exists");

  const updated = await platform.request("PUT", api("triggers/crud?overwrite=true"), { publish: true });
  t.is(updated.status, 200);
  t.like(updated.body, { version: "0.0.2", publish: true });
  t.deepEqual(updated.body.parameters, [{ key: "a", value: 1 }], "what the body leaves out is kept");

  t.like((await platform.request("GET", api("triggers/crud"))).body, { name: "crud", version: "0.0.2" });
  const list = await platform.request("GET", api("triggers"));
  t.is(list.status, 200);
  const mine = list.body.find((x: { name: string }) => x.name === "crud");
  t.like(mine, { namespace: "guest", name: "crud", version: "0.0.2", publish: true });
  t.false("parameters" in mine, "listings leave the parameters out, as OpenWhisk's");
  t.is((await platform.request("DELETE", api("triggers/crud"))).status, 200);
  t.is((await platform.request("GET", api("triggers/crud"))).status, 404);
  t.is((await platform.request("DELETE", api("triggers/crud"))).status, 404);
  t.is((await platform.request("POST", api("triggers/crud"), {})).status, 404);
});

test("fire → rule → action: params merged under the payload; the trigger's activation lists the rule's", async (t) => {
  await triggerWithRules(t, "t1", { r1: "/_/echo" }, [{ key: "fromTrigger", value: "t" }, { key: "both", value: "trigger" }]);
  const got = await platform.request("GET", api("triggers/t1"));
  t.deepEqual(got.body.rules, { "guest/r1": { action: { name: "echo", path: "guest" }, status: "active" } });

  const id = await fire(t, "t1", { both: "payload", n: 7 });
  const record = await waitForActivation(platform, id);
  t.like(record, { activationId: id, namespace: "guest", name: "t1", version: "0.0.1", subject: "guest" });
  t.deepEqual(record.response, { status: "success", statusCode: 0, success: true, result: { both: "payload", n: 7 } });
  t.deepEqual(record.annotations, []);
  const [log, ...more] = logsOf(record);
  t.is(more.length, 0);
  t.like(log, { statusCode: 0, success: true, rule: "guest/r1", action: "guest/echo" });
  t.regex(log.activationId, /^[0-9a-f]{32}$/);

  const action = await waitForActivation(platform, log.activationId);
  t.like(action, { name: "echo", namespace: "guest" });
  t.deepEqual(action.response.result, { fromTrigger: "t", both: "payload", n: 7 });
});

test("a disabled rule starts nothing; enabled again it does; two rules on one trigger both run", async (t) => {
  await triggerWithRules(t, "t2", { "r2a": "echo", "r2b": "/guest/echo" });
  t.is((await platform.request("POST", api("rules/r2b"), { status: "inactive" })).status, 200);
  t.like((await platform.request("GET", api("rules/r2b"))).body, { status: "inactive" });
  t.is((await platform.request("GET", api("triggers/t2"))).body.rules["guest/r2b"].status, "inactive");

  const one = logsOf(await waitForActivation(platform, await fire(t, "t2", { k: 1 })));
  t.deepEqual(one.map((l) => l.rule), ["guest/r2a"]);

  t.is((await platform.request("POST", api("rules/r2b"), { status: "active" })).status, 200);
  t.is((await platform.request("POST", api("rules/r2b"), { status: "active" })).status, 200, "the same status again is fine");
  const two = logsOf(await waitForActivation(platform, await fire(t, "t2", { k: 2 })));
  t.deepEqual(two.map((l) => l.rule).sort(), ["guest/r2a", "guest/r2b"]);
  const ids = two.map((l) => l.activationId);
  t.not(ids[0], ids[1]);
  for (const id of ids) t.deepEqual((await waitForActivation(platform, id)).response.result, { k: 2 });

  // Both disabled: OpenWhisk answers 204 and records nothing.
  for (const r of ["r2a", "r2b"]) t.is((await platform.request("POST", api(`rules/${r}`), { status: "inactive" })).status, 200);
  const none = await platform.request("POST", api("triggers/t2"), { k: 3 });
  t.is(none.status, 204);
});

test("a trigger with no rules answers 204 and records nothing", async (t) => {
  t.is((await platform.request("PUT", api("triggers/lonely"))).status, 200);
  const res = await platform.request("POST", api("triggers/lonely"), { x: 1 });
  t.is(res.status, 204);
  t.is(res.body, "");
  t.false("rules" in (await platform.request("GET", api("triggers/lonely"))).body);
});

test("rules to a packaged action (with package parameters) and to a sequence", async (t) => {
  t.is((await platform.request("PUT", api("packages/tpkg"), { parameters: [{ key: "fromPackage", value: "p" }] })).status, 200);
  t.is((await platform.request("PUT", api("actions/tpkg/echo"), { exec: { kind: "nodejs", code: ECHO_JS } })).status, 200);
  const addOne = `function main(p) { return { n: (p.n || 0) + 1 }; }`;
  t.is((await platform.request("PUT", api("actions/inc"), { exec: { kind: "nodejs", code: addOne } })).status, 200);
  t.is((await platform.request("PUT", api("actions/inc2"), { exec: { kind: "sequence", components: ["/_/inc", "/_/inc"] } })).status, 200);
  await triggerWithRules(t, "t3", { pkgRule: "/_/tpkg/echo", seqRule: "inc2" });
  t.like((await platform.request("GET", api("rules/pkgRule"))).body, { action: { name: "echo", path: "guest/tpkg" }, trigger: { name: "t3", path: "guest" } });

  const logs = logsOf(await waitForActivation(platform, await fire(t, "t3", { n: 1 })));
  const byRule = Object.fromEntries(logs.map((l) => [l.rule, l]));
  t.like(byRule["guest/pkgRule"], { success: true, action: "guest/tpkg/echo" });
  t.like(byRule["guest/seqRule"], { success: true, action: "guest/inc2" });
  t.deepEqual((await waitForActivation(platform, byRule["guest/pkgRule"].activationId)).response.result, { fromPackage: "p", n: 1 });
  const seq = await waitForActivation(platform, byRule["guest/seqRule"].activationId);
  t.deepEqual(seq.response.result, { n: 3 });
});

test("a rule whose action was deleted is logged as failed in the trigger's activation", async (t) => {
  t.is((await platform.request("PUT", api("actions/doomed"), { exec: { kind: "nodejs", code: ECHO_JS } })).status, 200);
  await triggerWithRules(t, "t4", { r4: "doomed", r4ok: "echo" });
  t.is((await platform.request("DELETE", api("actions/doomed"))).status, 200);
  const record = await waitForActivation(platform, await fire(t, "t4", {}));
  t.true(record.response.success, "the trigger's own activation succeeds, as OpenWhisk's");
  const byRule = Object.fromEntries(logsOf(record).map((l) => [l.rule, l]));
  t.deepEqual(byRule["guest/r4"], { statusCode: 1, success: false, error: "The requested resource does not exist.", rule: "guest/r4", action: "guest/doomed" });
  t.true(byRule["guest/r4ok"].success);
});

test("listing in a namespace of its own: newest first, limit, skip, count", async (t) => {
  const { apiKey } = await (await Admin.open(platform.nc)).createNamespace("trigger-lists");
  const as = { auth: apiKey };
  for (const name of ["l1", "l2", "l3"]) t.is((await platform.request("PUT", api(`triggers/${name}`), {}, {}, as)).status, 200);
  const names = async (query: string) => (await platform.request("GET", api(`triggers${query}`), undefined, {}, as)).body.map((x: { name: string }) => x.name);
  t.deepEqual(await names(""), ["l3", "l2", "l1"]);
  t.deepEqual(await names("?limit=1&skip=1"), ["l2"]);
  t.deepEqual((await platform.request("GET", api("triggers?count=true"), undefined, {}, as)).body, { triggers: 3 });
  t.deepEqual((await platform.request("GET", api("triggers?count=true&skip=2"), undefined, {}, as)).body, { triggers: 1 });
  t.is((await platform.request("GET", api("triggers?limit=201"), undefined, {}, as)).status, 400);
  t.deepEqual((await platform.request("GET", api("rules?count=true"), undefined, {}, as)).body, { rules: 0 });
  t.deepEqual((await platform.request("GET", api("rules"), undefined, {}, as)).body, []);
  t.is((await platform.request("PUT", api("actions/echo"), { exec: { kind: "nodejs", code: ECHO_JS } }, {}, as)).status, 200);
  for (const name of ["ra", "rb"]) t.is((await platform.request("PUT", api(`rules/${name}`), { trigger: "l1", action: "echo" }, {}, as)).status, 200);
  const rules = (await platform.request("GET", api("rules"), undefined, {}, as)).body;
  t.deepEqual(rules.map((r: { name: string; trigger: { name: string } }) => [r.name, r.trigger.name]), [["rb", "l1"], ["ra", "l1"]]);
  t.deepEqual((await platform.request("GET", api("rules?count=true"), undefined, {}, as)).body, { rules: 2 });
  t.deepEqual((await platform.request("GET", api("rules?limit=1&skip=1"), undefined, {}, as)).body.map((r: { name: string }) => r.name), ["ra"]);
});

test("a fire delivered twice starts each rule once and is recorded once", async (t) => {
  await triggerWithRules(t, "t5", { r5: "echo" });
  const js = jetstream(platform.nc);
  const fireEvent = { activationId: newActivationId(), namespace: "guest", trigger: "t5", payload: { once: true }, subject: "guest", source: "api" as const, time: Date.now(), depth: 0 };
  await publishFire(js, fireEvent);
  await publishFire(js, fireEvent);
  // What a redelivery looks like to the consumer (the same fire again, possibly while the first
  // is still being handled): the same event stored twice under other message ids.
  const raw = JSON.stringify(fireEvent);
  await Promise.all([js.publish(fireSubject("guest"), raw, { msgID: `${fireEvent.activationId}-a` }), js.publish(fireSubject("guest"), raw, { msgID: `${fireEvent.activationId}-b` })]);
  const record = await waitForActivation(platform, fireEvent.activationId);
  const [log] = logsOf(record);
  const expectedId = createHash("sha256").update(`${fireEvent.activationId}/guest/r5`).digest("hex").slice(0, 32);
  t.is(log.activationId, expectedId, "the rule's activation id is derived from the fire");
  await waitForActivation(platform, expectedId);
  // Give a duplicate time to show up, then count the echo activations of this fire.
  await new Promise((r) => setTimeout(r, 1500));
  const list = await platform.request("GET", api("activations?name=echo&limit=200&docs=true"));
  t.is(list.status, 200);
  const ofThisFire = list.body.filter((a: any) => a.response?.result?.once === true);
  t.is(ofThisFire.length, 1, JSON.stringify(ofThisFire.map((a: any) => a.activationId)));
});

test(`a fire deeper than MAX_FIRE_DEPTH (${MAX_FIRE_DEPTH}) records an error and starts nothing`, async (t) => {
  await triggerWithRules(t, "t6", { r6: "echo" });
  const id = newActivationId();
  await publishFire(jetstream(platform.nc), { activationId: id, namespace: "guest", trigger: "t6", payload: { deep: true }, subject: "guest", source: "api", time: Date.now(), depth: MAX_FIRE_DEPTH + 1 });
  const record = await waitForActivation(platform, id);
  t.like(record.response, { success: false, status: "application error" });
  t.regex(record.response.result.error, /limit of 8/);
  t.deepEqual(record.logs, []);
  const rule = { namespace: "guest", name: "r6" };
  const wouldBe = createHash("sha256").update(`${id}/${rule.namespace}/${rule.name}`).digest("hex").slice(0, 32);
  t.is((await platform.request("GET", api(`activations/${wouldBe}`))).status, 404);
});

test("deleting a trigger removes its feed registration and leaves its rules, shown inactive", async (t) => {
  await triggerWithRules(t, "t7", { r7: "echo" });
  const feeds = await new Kvm(platform.nc).open(FEEDS_BUCKET);
  const now = Date.now();
  await feeds.put(entityKey("guest", "t7"), JSON.stringify({ namespace: "guest", trigger: "t7", feed: "/whisk.system/alarms/interval", kind: "interval", params: { minutes: 1 }, status: "active", created: now, updated: now }));
  const deleted = await platform.request("DELETE", api("triggers/t7"));
  t.is(deleted.status, 200);
  t.like(deleted.body, { name: "t7", rules: { "guest/r7": { status: "active" } } });
  t.is((await feeds.get(entityKey("guest", "t7")))?.operation, "DEL");
  t.like((await platform.request("GET", api("rules/r7"))).body, { status: "inactive" });
  const enable = await platform.request("POST", api("rules/r7"), { status: "active" });
  t.is(enable.status, 404);
  t.is(enable.body.error, "Only rules with existing triggers can be activated");
});

test("a rule disabled through another gateway stops at once: the fire route and the consumer both see it", async (t) => {
  await triggerWithRules(t, "t8", { r8: "echo" });
  const other = await startGateway({ nc: platform.nc, port: 0, host: "127.0.0.1", dataDir: platform.dataDir, logger: createLogger("warn") });
  t.teardown(() => other.close());
  const viaOther = (method: string, path: string, body?: unknown) =>
    fetch(new URL(path, other.url), {
      method,
      headers: { authorization: `Basic ${Buffer.from(platform.apiKey).toString("base64")}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  t.is((await viaOther("POST", api("rules/r8"), { status: "inactive" })).status, 200);
  t.is((await platform.request("POST", api("triggers/t8"), {})).status, 204, "the first gateway saw the change before answering");
  // A fire accepted before the change (here: published directly) finds the rule disabled too.
  const id = newActivationId();
  await publishFire(jetstream(platform.nc), { activationId: id, namespace: "guest", trigger: "t8", payload: {}, subject: "guest", source: "api", time: Date.now(), depth: 0 });
  t.deepEqual((await waitForActivation(platform, id)).logs, []);

  t.is((await viaOther("POST", api("rules/r8"), { status: "active" })).status, 200);
  const logs = logsOf(await waitForActivation(platform, await fire(t, "t8", {})));
  t.deepEqual(logs.map((l) => l.rule), ["guest/r8"]);
});

test("a malformed fire is dropped and one for a missing trigger is recorded as failed; the consumer carries on", async (t) => {
  const js = jetstream(platform.nc);
  await js.publish(fireSubject("guest"), "{not json", { msgID: "garbage-1" });
  await js.publish(fireSubject("guest"), JSON.stringify({ activationId: "nope" }), { msgID: "garbage-2" });
  const id = newActivationId();
  await publishFire(js, { activationId: id, namespace: "guest", trigger: "never-made", payload: {}, subject: "guest", source: "alarm", time: Date.now(), depth: 0 });
  const record = await waitForActivation(platform, id);
  t.like(record, { name: "never-made", response: { success: false, statusCode: 1, result: { error: "trigger /guest/never-made does not exist" } } });

  await triggerWithRules(t, "t9", { r9: "echo" });
  const logs = logsOf(await waitForActivation(platform, await fire(t, "t9", { after: "garbage" })));
  t.true(logs[0].success);
});

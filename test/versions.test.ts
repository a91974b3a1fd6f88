// Versions (issue 4, item 3, beyond OpenWhisk): every update keeps the previous versions in
// ACTION_VERSIONS_BUCKET, bounded; list, fetch, invoke a pinned version, roll back — and every
// activation records the version that ran. Against a whole platform with real virtines.
import test from "ava";
import { Kvm } from "@nats-io/kv";
import { ACTION_VERSIONS_BUCKET } from "../contracts/index.ts";
import { MAX_VERSIONS } from "../gateway/version-store.ts";
import { api, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
});
test.after.always(async () => {
  await platform?.stop();
});

const returning = (v: number) => `function main(p) { return { v: ${v}, p }; }`;
const putVersion = (name: string, v: number, overwrite = true) =>
  platform.request("PUT", api(`actions/${name}${overwrite ? "?overwrite=true" : ""}`), { exec: { kind: "nodejs", code: returning(v) } });

test("updates keep earlier versions: list, fetch one, invoke one, each activation records its version", async (t) => {
  t.is((await putVersion("hist", 1, false)).status, 200);
  t.is((await putVersion("hist", 2)).status, 200);
  const third = await putVersion("hist", 3);
  t.is(third.body.version, "0.0.3");

  const list = await platform.request("GET", api("actions/hist?versions=true"));
  t.is(list.status, 200);
  t.deepEqual(list.body.map((v: { version: string }) => v.version), ["0.0.3", "0.0.2", "0.0.1"]);
  t.deepEqual(list.body.map((v: { current: boolean }) => v.current), [true, false, false]);

  const one = await platform.request("GET", api("actions/hist?version=0.0.1"));
  t.is(one.status, 200);
  t.is(one.body.version, "0.0.1");
  t.is(one.body.exec.code, returning(1));

  const pinned = await platform.request("POST", api("actions/hist?blocking=true&version=0.0.2"), { x: 1 });
  t.is(pinned.status, 200, JSON.stringify(pinned.body));
  t.is(pinned.body.version, "0.0.2");
  t.deepEqual(pinned.body.response.result, { v: 2, p: { x: 1 } });
  t.is(pinned.body.name, "hist");

  const current = await platform.request("POST", api("actions/hist?blocking=true"), {});
  t.is(current.body.version, "0.0.3");
  t.deepEqual(current.body.response.result, { v: 3, p: {} });

  // A non-blocking pinned invocation is recorded with its version too.
  const queued = await platform.request("POST", api("actions/hist?version=0.0.1"), {});
  t.is(queued.status, 202);
  let record;
  for (let i = 0; i < 200 && !record; i++) {
    const res = await platform.request("GET", api(`activations/${queued.body.activationId}`));
    if (res.status === 200) record = res.body;
    else await new Promise((r) => setTimeout(r, 50));
  }
  t.is(record?.version, "0.0.1");
  t.deepEqual(record?.response.result, { v: 1, p: {} });
});

test("rollback makes a new version with the old content; versions only go up", async (t) => {
  await putVersion("roll", 1, false);
  await putVersion("roll", 2);
  const rolled = await platform.request("PUT", api("actions/roll?rollback=0.0.1"));
  t.is(rolled.status, 200, JSON.stringify(rolled.body));
  t.is(rolled.body.version, "0.0.3");
  t.is(rolled.body.exec.code, returning(1));
  const ran = await platform.request("POST", api("actions/roll?blocking=true"), {});
  t.is(ran.body.version, "0.0.3");
  t.deepEqual(ran.body.response.result, { v: 1, p: {} });
  const list = await platform.request("GET", api("actions/roll?versions=true"));
  t.deepEqual(list.body.map((v: { version: string }) => v.version), ["0.0.3", "0.0.2", "0.0.1"]);
});

test("unknown versions are 404s, malformed ones 400s naming the query field", async (t) => {
  await putVersion("vers-errors", 1, false);
  t.is((await platform.request("GET", api("actions/vers-errors?version=9.9.9"))).status, 404);
  t.is((await platform.request("POST", api("actions/vers-errors?version=9.9.9&blocking=true"), {})).status, 404);
  t.is((await platform.request("PUT", api("actions/vers-errors?rollback=9.9.9"))).status, 404);
  t.is((await platform.request("PUT", api("actions/never-made?rollback=0.0.1"))).status, 404);
  for (const query of ["version=latest", "version=1.2", "version=../0.0.1"]) {
    const res = await platform.request("GET", api(`actions/vers-errors?${query}`));
    t.is(res.status, 400, query);
    t.regex(res.body.error, /^version: /);
  }
  const badRollback = await platform.request("PUT", api("actions/vers-errors?rollback=x"));
  t.is(badRollback.status, 400);
  t.regex(badRollback.body.error, /^rollback: /);
  t.is((await platform.request("GET", api("actions/vers-errors"))).body.version, "0.0.1", "nothing changed");
});

test(`history is bounded to the newest ${MAX_VERSIONS} versions; deleting the action forgets them`, async (t) => {
  await putVersion("bounded", 0, false);
  for (let v = 1; v <= MAX_VERSIONS + 2; v++) t.is((await putVersion("bounded", v)).status, 200);
  const list = await platform.request("GET", api("actions/bounded?versions=true"));
  t.is(list.body.length, MAX_VERSIONS);
  t.is(list.body[0].version, `0.0.${MAX_VERSIONS + 3}`);
  t.is(list.body.at(-1).version, `0.0.4`);
  t.is((await platform.request("GET", api("actions/bounded?version=0.0.3"))).status, 404);

  t.is((await platform.request("DELETE", api("actions/bounded"))).status, 200);
  const kv = await new Kvm(platform.nc).open(ACTION_VERSIONS_BUCKET);
  const left: string[] = [];
  for await (const key of await kv.keys("guest.bounded.*")) left.push(key);
  t.deepEqual(left, []);
  const recreated = await putVersion("bounded", 1, false);
  t.is(recreated.body.version, "0.0.1");
  t.is((await platform.request("GET", api("actions/bounded?versions=true"))).body.length, 1);
});

// Activations over HTTP against a whole platform: the record's OpenWhisk fields, listing with its
// filters and paging, the logs and result endpoints, namespace isolation, and how blocking
// invocations answer (result only, 502 on the action's errors, 202 when the wait runs out).
import test from "ava";
import { Kvm } from "@nats-io/kv";
import { ACTIVATIONS_BUCKET, AUTH_BUCKET, activationKey, type Activation } from "../contracts/index.ts";
import { createApiKey, formatApiKey } from "../gateway/keys.ts";
import { api, annotation, startPlatform, type Platform } from "./harness.ts";

/** Short, so the 202 test need not wait OpenWhisk's full minute; generous next to a warm call. */
const BLOCKING_WAIT_MS = 4_000;

let platform: Platform;
/** `uuid:key` of a second namespace, "other". */
let otherKey: string;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 4, blockingWaitMs: BLOCKING_WAIT_MS });
  // Stored exactly as the gateway stores keys (scrypt hash under the uuid).
  const authKv = await new Kvm(platform.nc).open(AUTH_BUCKET);
  otherKey = formatApiKey(await createApiKey(authKv, "other"));
});
test.after.always(async () => {
  await platform?.stop();
});

const get = (path: string, auth?: string) => platform.request("GET", api(path), undefined, {}, auth ? { auth } : {});

async function created(t: { is(a: unknown, b: unknown, m?: string): void }, name: string, code: string, auth?: string) {
  const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind: "nodejs", code } }, {}, auth ? { auth } : {});
  t.is(res.status, 200, `PUT ${name}: ${JSON.stringify(res.body)}`);
}
const invoke = (name: string, params: unknown = {}, query = "blocking=true", auth?: string) =>
  platform.request("POST", api(`actions/${name}?${query}`), params, {}, auth ? { auth } : {});

/** Polls until `check` passes on a GET of `path`, returning the last response. */
async function eventually(path: string, check: (body: any, status: number) => boolean, auth?: string) {
  let res;
  for (let i = 0; i < 300; i++) {
    res = await get(path, auth);
    if (check(res.body, res.status)) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`GET ${path} never satisfied the check; last: ${res?.status} ${JSON.stringify(res?.body)}`);
}

const ECHO = `function main(params) { console.log("echo", JSON.stringify(params)); return { echo: params }; }`;

test("a record has OpenWhisk's fields, initTime on the cold start only, and reads back by id, logs and result", async (t) => {
  // Code of its own: snapshots are shared by code hash, and ECHO may already be warm from another test.
  await created(t, "fields", `${ECHO} // fields`);
  const cold = await invoke("fields", { n: 1 });
  t.is(cold.status, 200, JSON.stringify(cold.body));
  const record = cold.body;
  t.regex(record.activationId, /^[0-9a-f]{32}$/);
  t.like(record, {
    namespace: "guest",
    name: "fields",
    version: "0.0.1",
    subject: "guest",
    response: { status: "success", statusCode: 0, success: true, result: { echo: { n: 1 } } },
  });
  t.true(record.start > 0 && record.end >= record.start);
  t.is(record.duration, record.end - record.start);
  t.true(record.logs.some((l: string) => l.endsWith('stdout: echo {"n":1}')), record.logs.join("\n"));
  t.is(annotation(record, "kind"), "nodejs");
  t.like(annotation(record, "limits"), { timeout: 60_000, memory: 256 });
  t.is(annotation(record, "path"), "guest/fields");
  t.true(Number.isInteger(annotation(record, "waitTime")) && annotation(record, "waitTime") >= 0);
  t.true(Number.isInteger(annotation(record, "initTime")) && annotation(record, "initTime") > 0, "cold start has initTime");

  const warm = await invoke("fields", { n: 2 });
  t.is(warm.status, 200);
  t.is(annotation(warm.body, "initTime"), undefined, "a warm call has no initTime");

  const byId = await get(`activations/${record.activationId}`);
  t.is(byId.status, 200);
  t.deepEqual(byId.body, record);

  const logs = await get(`activations/${record.activationId}/logs`);
  t.is(logs.status, 200);
  t.deepEqual(logs.body, { logs: record.logs });

  const result = await get(`activations/${record.activationId}/result`);
  t.is(result.status, 200);
  t.deepEqual(result.body, {
    result: { echo: { n: 1 } },
    success: true,
    status: "success",
    size: Buffer.byteLength(JSON.stringify({ echo: { n: 1 } })),
  });
});

test("unknown and malformed activation ids: 404 and 400 on every endpoint", async (t) => {
  for (const suffix of ["", "/logs", "/result"]) {
    const missing = await get(`activations/${"0".repeat(32)}${suffix}`);
    t.is(missing.status, 404, suffix);
    t.is(missing.body.error, "The requested resource does not exist.");
    const bad = await get(`activations/not-an-id${suffix}`);
    t.is(bad.status, 400, suffix);
    t.regex(bad.body.error, /activationId/);
  }
});

test("listing: newest first, name filter, paging, docs, since and upto", async (t) => {
  await created(t, "list-a", ECHO);
  await created(t, "list-b", ECHO);
  const ids: string[] = [];
  // One after another, so their start times are ordered.
  for (let i = 0; i < 4; i++) {
    const res = await invoke("list-a", { i });
    t.is(res.status, 200);
    ids.push(res.body.activationId);
    await new Promise((r) => setTimeout(r, 5));
  }
  t.is((await invoke("list-b", {})).status, 200);
  const newestFirst = [...ids].reverse();

  const all = await eventually("activations?name=list-a", (body) => Array.isArray(body) && body.length === 4);
  t.deepEqual(all.body.map((a: any) => a.activationId), newestFirst);
  // Summaries: no response nor logs, but the status code, as OpenWhisk's listing.
  for (const summary of all.body) {
    t.is(summary.name, "list-a");
    t.is(summary.statusCode, 0);
    t.is(summary.response, undefined);
    t.is(summary.logs, undefined);
    t.is(annotation(summary, "path"), "guest/list-a");
  }

  const docs = await get("activations?name=list-a&docs=true");
  t.is(docs.status, 200);
  t.deepEqual(docs.body.map((a: any) => a.response.result.echo.i), [3, 2, 1, 0]);

  const page1 = await get("activations?name=list-a&limit=2");
  const page2 = await get("activations?name=list-a&limit=2&skip=2");
  const page3 = await get("activations?name=list-a&limit=2&skip=4");
  t.deepEqual(page1.body.map((a: any) => a.activationId), newestFirst.slice(0, 2));
  t.deepEqual(page2.body.map((a: any) => a.activationId), newestFirst.slice(2, 4));
  t.deepEqual(page3.body, []);

  const starts = docs.body.map((a: any) => a.start).reverse(); // oldest first: i = 0..3
  const since = await get(`activations?name=list-a&since=${starts[2]}`);
  t.deepEqual(since.body.map((a: any) => a.activationId), [ids[3], ids[2]]);
  const upto = await get(`activations?name=list-a&upto=${starts[1]}`);
  t.deepEqual(upto.body.map((a: any) => a.activationId), [ids[1], ids[0]]);
  const window = await get(`activations?name=list-a&since=${starts[1]}&upto=${starts[2]}`);
  t.deepEqual(window.body.map((a: any) => a.activationId), [ids[2], ids[1]]);

  // Unfiltered, both actions show up, list-b's newest.
  const mixed = await get("activations?limit=200");
  const names = mixed.body.map((a: any) => a.name);
  t.true(names.includes("list-a") && names.includes("list-b"));
  for (let i = 1; i < mixed.body.length; i++) t.true(mixed.body[i - 1].start >= mixed.body[i].start, "sorted by start");
});

test("listing: records that started long ago are found, in order, past the first read window", async (t) => {
  // Hours-old records cannot be made by waiting, so they are written the way the runner writes
  // records (same key scheme, same schema) with old start times. Their write time is now, later
  // than their start, as for every real record; the store must widen its window to place them.
  const kv = await new Kvm(platform.nc).open(ACTIVATIONS_BUCKET);
  const now = Date.now();
  const hour = 60 * 60 * 1000;
  const starts = [now - 3 * hour, now - 2 * hour, now - 10 * 60 * 1000];
  const ids = starts.map((_, i) => `${"ab".repeat(15)}0${i}`);
  for (const [i, start] of starts.entries()) {
    const record: Activation = {
      activationId: ids[i]!, namespace: "guest", name: "old-timer", version: "0.0.1", subject: "guest",
      start, end: start + 5, duration: 5,
      response: { status: "success", statusCode: 0, success: true, result: { i } },
      logs: [], annotations: [{ key: "path", value: "guest/old-timer" }],
    };
    await kv.put(activationKey("guest", record.activationId), JSON.stringify(record));
  }
  const all = await get("activations?name=old-timer");
  t.deepEqual(all.body.map((a: any) => a.activationId), [ids[2], ids[1], ids[0]]);
  t.deepEqual((await get("activations?name=old-timer&limit=1")).body.map((a: any) => a.activationId), [ids[2]]);
  t.deepEqual((await get("activations?name=old-timer&limit=1&skip=1")).body.map((a: any) => a.activationId), [ids[1]]);
  t.deepEqual((await get(`activations?name=old-timer&since=${now - 150 * 60 * 1000}`)).body.map((a: any) => a.activationId), [ids[2], ids[1]]);
  t.deepEqual((await get(`activations?name=old-timer&upto=${now - 150 * 60 * 1000}`)).body.map((a: any) => a.activationId), [ids[0]]);
  // Another namespace's listing never sees them.
  t.false((await get("activations?limit=200", otherKey)).body.some((a: any) => a.name === "old-timer"));
});

test("listing: the default page is 30 and limit=0 means the default", async (t) => {
  await created(t, "many", `function main() { return {}; }`);
  const queued = await Promise.all(Array.from({ length: 32 }, () => invoke("many", {}, "")));
  t.true(queued.every((r) => r.status === 202));
  await eventually("activations?name=many&limit=200", (body) => Array.isArray(body) && body.length === 32);
  t.is((await get("activations?name=many")).body.length, 30);
  t.is((await get("activations?name=many&limit=0")).body.length, 30);
  t.is((await get("activations?name=many&limit=200&skip=31")).body.length, 1);
});

test("listing: bad query values are a 400 naming the parameter", async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["limit=201", /limit/],
    ["limit=-1", /limit/],
    ["limit=ten", /limit/],
    ["skip=-3", /skip/],
    ["skip=1.5", /skip/],
    ["since=yesterday", /since/],
    ["upto=-5", /upto/],
    ["since=20&upto=10", /since/],
    ["docs=yes", /docs/],
    ["name=..%2Fx", /name/],
    ["name=a%2Fb%2Fc", /name/],
    [`name=${"x".repeat(300)}`, /name/],
  ];
  for (const [query, field] of cases) {
    const res = await get(`activations?${query}`);
    t.is(res.status, 400, query);
    t.regex(res.body.error, field, query);
    t.truthy(res.body.code, query);
  }
});

test("a namespace neither reads nor lists another's activations", async (t) => {
  await created(t, "mine", ECHO);
  const mine = await invoke("mine", { secret: true });
  t.is(mine.status, 200);
  const id = mine.body.activationId;

  for (const suffix of ["", "/logs", "/result"]) {
    const res = await get(`activations/${id}${suffix}`, otherKey);
    t.is(res.status, 404, `other reads ${suffix}`);
  }
  const theirList = await get("activations?limit=200", otherKey);
  t.is(theirList.status, 200);
  t.false(theirList.body.some((a: any) => a.activationId === id));
  // Naming the other namespace in the path is forbidden outright.
  const explicit = await platform.request("GET", `/api/v1/namespaces/guest/activations/${id}`, undefined, {}, { auth: otherKey });
  t.is(explicit.status, 403);
  const explicitList = await platform.request("GET", "/api/v1/namespaces/guest/activations", undefined, {}, { auth: otherKey });
  t.is(explicitList.status, 403);

  // The other namespace's own records are its alone.
  await created(t, "theirs", ECHO, otherKey);
  const theirs = await invoke("theirs", {}, "blocking=true", otherKey);
  t.is(theirs.status, 200);
  t.like(theirs.body, { namespace: "other", subject: "other" });
  t.is((await get(`activations/${theirs.body.activationId}`, otherKey)).status, 200);
  t.is((await get(`activations/${theirs.body.activationId}`)).status, 404);
  const listed = await get("activations?name=theirs", otherKey);
  t.deepEqual(listed.body.map((a: any) => a.activationId), [theirs.body.activationId]);
  t.deepEqual((await get("activations?name=theirs")).body, []);

  const anonymous = await platform.request("GET", api("activations"), undefined, {}, { auth: false });
  t.is(anonymous.status, 401);
});

test("blocking with result=true answers the result only", async (t) => {
  await created(t, "result-only", ECHO);
  const res = await invoke("result-only", { x: 1 }, "blocking=true&result=true");
  t.is(res.status, 200);
  t.deepEqual(res.body, { echo: { x: 1 } });
});

test("an application error is a 502 with the error in the body, and recorded as such", async (t) => {
  await created(t, "app-error", `function main(p) { return { error: "bad input: " + p.why }; }`);
  const full = await invoke("app-error", { why: "nope" });
  t.is(full.status, 502);
  t.like(full.body, { response: { status: "application error", statusCode: 1, success: false, result: { error: "bad input: nope" } } });

  const resultOnly = await invoke("app-error", { why: "again" }, "blocking=true&result=true");
  t.is(resultOnly.status, 502);
  t.deepEqual(resultOnly.body, { error: "bad input: again" });

  const stored = await get(`activations/${full.body.activationId}/result`);
  t.deepEqual(stored.body, {
    result: { error: "bad input: nope" },
    success: false,
    status: "application error",
    size: Buffer.byteLength(JSON.stringify({ error: "bad input: nope" })),
  });
});

test("a developer error is a 502 with status 'action developer error'", async (t) => {
  await created(t, "dev-error", `function main() { throw new Error("boom"); }`);
  const res = await invoke("dev-error");
  t.is(res.status, 502);
  t.like(res.body, { response: { status: "action developer error", statusCode: 2, success: false } });
  t.is(typeof res.body.response.result.error, "string");
});

test("a blocking call still running when the wait ends gets 202 with the id, and the record comes later", async (t) => {
  const runMs = BLOCKING_WAIT_MS + 2_000;
  await platform.request("PUT", api("actions/slow"), {
    exec: { kind: "nodejs", code: `function main() { const end = Date.now() + ${runMs}; while (Date.now() < end) {} return { done: true }; }` },
    limits: { timeout: 30_000 },
  }).then((res) => t.is(res.status, 200, JSON.stringify(res.body)));
  const started = Date.now();
  const res = await invoke("slow", {}, "blocking=true");
  const waited = Date.now() - started;
  t.is(res.status, 202, JSON.stringify(res.body));
  t.regex(res.body.activationId, /^[0-9a-f]{32}$/);
  t.deepEqual(Object.keys(res.body), ["activationId"]);
  t.true(waited >= BLOCKING_WAIT_MS - 50 && waited < runMs, `answered after ${waited} ms`);
  t.is((await get(`activations/${res.body.activationId}`)).status, 404, "not recorded before it ends");

  const done = await eventually(`activations/${res.body.activationId}`, (_body, status) => status === 200);
  t.like(done.body, { name: "slow", response: { status: "success", result: { done: true } } });
  t.true(done.body.duration >= runMs - 100, `duration ${done.body.duration}`);
});

test("fuzzed activation requests: every answer is a JSON success or 4xx, never a 5xx", async (t) => {
  // Deterministic, so a failure can be replayed.
  let seed = 0x5eed;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const keys = ["limit", "skip", "since", "upto", "name", "docs", "", "x", "limit[]", "%zz"];
  const values = [
    "", "0", "1", "-1", "200", "201", "1e3", "1.5", "NaN", "Infinity", "99999999999999999999", "true", "false",
    "..", "../..", "a/b", "a/b/c", "%2F", "%00", "%E0%A4%A", "%zz", "é", "日本", "🐝", " ", "a%20", "x".repeat(300),
    encodeURIComponent("<script>"), "0x10", "+5", "5 ",
  ];
  const ids = ["", "0".repeat(32), "f".repeat(32), "F".repeat(32), "g".repeat(32), "..", "%2e%2e", "%00", "x".repeat(500), "🐝", "0".repeat(31)];
  const suffixes = ["", "/logs", "/result", "/", "/nope", "/logs/x"];
  for (let i = 0; i < 150; i++) {
    const params = Array.from({ length: Math.floor(random() * 4) }, () => `${pick(keys)}=${pick(values)}`).join("&");
    const path = random() < 0.5 ? `activations?${params}` : `activations/${pick(ids)}${pick(suffixes)}?${params}`;
    const res = await platform.request("GET", `/api/v1/namespaces/_/${path}`, undefined, random() < 0.2 ? { accept: "text/html", "x-junk": "\u00ff" } : {});
    t.true(res.status < 500, `${path}: ${res.status} ${JSON.stringify(res.body)}`);
    t.true(res.headers["content-type"]?.includes("application/json"), path);
    if (res.status >= 400) t.is(typeof res.body.error, "string", path);
  }
});

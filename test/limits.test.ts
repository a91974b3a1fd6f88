// Namespace limits over two gateways on one NATS: both count against the same limit (a gateway
// sees what the other admitted), the refusal is OpenWhisk's 429 with Retry-After, the concurrency
// count goes down when activations finish, and one namespace's limit does not touch another's.
import test from "ava";
import { Kvm } from "@nats-io/kv";
import { LIMIT_COUNTS_BUCKET, limitCountKey, type LimitCount } from "../contracts/index.ts";
import { LIMIT_COUNT_TTL_MS } from "../infra/provision.ts";
import { Admin } from "../admin/namespaces.ts";
import { startGateway, type Gateway } from "../gateway/index.ts";
import { createLogger } from "../infra/logger.ts";
import { startPlatform, type Platform, type TestResponse } from "./harness.ts";

let platform: Platform;
let second: Gateway;
let admin: Admin;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 4 });
  second = await startGateway({ nc: platform.nc, port: 0, host: "127.0.0.1", dataDir: platform.dataDir, logger: createLogger("warn") });
  admin = await Admin.open(platform.nc);
});
test.after.always(async () => {
  await second?.close();
  await platform?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Counts travel between gateways through a KV put and a watch: a few ms; this leaves ample room. */
const PROPAGATION_MS = 150;

/** A request to the first gateway (the platform's) or the second, with `apiKey`. */
async function on(gateway: 0 | 1, apiKey: string, method: string, path: string, body?: unknown): Promise<TestResponse> {
  if (gateway === 0) return platform.request(method, path, body, {}, { auth: apiKey });
  const res = await fetch(new URL(path, second.url), {
    method,
    headers: { authorization: `Basic ${Buffer.from(apiKey).toString("base64")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.json() };
}

async function namespaceWithAction(name: string, code: string, limits: { concurrent?: number; perMinute?: number }) {
  const { apiKey } = await admin.createNamespace(name);
  await admin.setLimits(name, limits);
  const put = await on(0, apiKey, "PUT", "/api/v1/namespaces/_/actions/work", { exec: { kind: "nodejs", code } });
  if (put.status !== 200) throw new Error(`PUT: ${JSON.stringify(put.body)}`);
  await sleep(PROPAGATION_MS); // both gateways have the limits
  return apiKey;
}

/** The per-minute window restarts on the minute: start a test that fills it well before that. */
async function awayFromMinuteEnd() {
  const intoMinute = Date.now() % 60_000;
  if (intoMinute > 45_000) await sleep(60_000 - intoMinute + 100);
}

async function finished(apiKey: string, activationId: string) {
  for (let i = 0; i < 400; i++) {
    const res = await on(0, apiKey, "GET", `/api/v1/namespaces/_/activations/${activationId}`);
    if (res.status === 200) return res.body;
    await sleep(50);
  }
  throw new Error(`activation ${activationId} never finished`);
}

test("invocations per minute are counted across both gateways; beyond the limit 429 with Retry-After", async (t) => {
  await awayFromMinuteEnd();
  const apiKey = await namespaceWithAction("rate-team", "function main(p) { return p; }", { perMinute: 4 });
  for (const gateway of [0, 1, 0, 1] as const) {
    const res = await on(gateway, apiKey, "POST", "/api/v1/namespaces/_/actions/work", { n: 1 });
    t.is(res.status, 202, `gateway ${gateway}: ${JSON.stringify(res.body)}`);
    await sleep(PROPAGATION_MS);
  }
  // Each gateway admitted two: alone neither is at 4, together they are.
  for (const gateway of [0, 1] as const) {
    const res = await on(gateway, apiKey, "POST", "/api/v1/namespaces/_/actions/work?blocking=true", {});
    t.is(res.status, 429, `gateway ${gateway}`);
    t.regex(res.body.error, /Too many requests in the last minute \(count: 5, allowed: 4\)/);
    t.is(typeof res.body.code, "string");
    const retryAfter = Number(res.headers["retry-after"]);
    t.true(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${res.headers["retry-after"]}`);
  }
  // The refused invocations made no activation: the namespace has exactly the four admitted ones.
  let list: TestResponse | undefined;
  for (let i = 0; i < 200 && !(list?.body.length >= 4); i++) {
    await sleep(100);
    list = await on(0, apiKey, "GET", "/api/v1/namespaces/_/activations?limit=50");
  }
  await sleep(500); // room for a (wrong) fifth to show up
  list = await on(0, apiKey, "GET", "/api/v1/namespaces/_/activations?limit=50");
  t.is(list.status, 200);
  t.is(list.body.length, 4);
  // Another namespace is not affected.
  const other = await platform.request("GET", "/api/v1/namespaces/_/actions");
  t.is(other.status, 200);
});

test("concurrent invocations are counted across both gateways and released when they finish", async (t) => {
  // Busy for a while, so the first two are still running when the third arrives.
  const slow = "function main(p) { const end = Date.now() + (p.ms || 0); while (Date.now() < end) {} return { done: true }; }";
  const apiKey = await namespaceWithAction("busy-team", slow, { concurrent: 2 });

  const first = await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", { ms: 2500 });
  t.is(first.status, 202, JSON.stringify(first.body));
  await sleep(PROPAGATION_MS);
  const secondRun = await on(1, apiKey, "POST", "/api/v1/namespaces/_/actions/work", { ms: 2500 });
  t.is(secondRun.status, 202, JSON.stringify(secondRun.body));
  await sleep(PROPAGATION_MS);

  for (const gateway of [0, 1] as const) {
    const refused = await on(gateway, apiKey, "POST", "/api/v1/namespaces/_/actions/work", { ms: 0 });
    t.is(refused.status, 429, `gateway ${gateway}: ${JSON.stringify(refused.body)}`);
    t.regex(refused.body.error, /Too many concurrent requests in flight \(count: 3, allowed: 2\)/);
    t.is(refused.headers["retry-after"], "1");
  }
  // The default namespace has its own (default) limits and is not held up.
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions")).status, 200);

  // Both finish (non-blocking: the gateway learns of it from the runner) and free their slots.
  t.is((await finished(apiKey, first.body.activationId)).response.status, "success");
  t.is((await finished(apiKey, secondRun.body.activationId)).response.status, "success");
  await sleep(PROPAGATION_MS);
  const a = await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work?blocking=true", { ms: 0 });
  t.is(a.status, 200, JSON.stringify(a.body));
  const b = await on(1, apiKey, "POST", "/api/v1/namespaces/_/actions/work?blocking=true&result=true", { ms: 0 });
  t.is(b.status, 200, JSON.stringify(b.body));
  t.deepEqual(b.body, { done: true });
});

test("a failed action releases its slot too, and the count survives many quick invocations", async (t) => {
  const code = "function main(p) { if (p.fail) throw new Error('no'); return {}; }";
  const apiKey = await namespaceWithAction("flaky-team", code, { concurrent: 1 });
  for (let i = 0; i < 6; i++) {
    const gateway = (i % 2) as 0 | 1;
    const res = await on(gateway, apiKey, "POST", "/api/v1/namespaces/_/actions/work?blocking=true", { fail: i % 3 === 0 });
    t.is(res.status, i % 3 === 0 ? 502 : 200, `run ${i}: ${JSON.stringify(res.body)}`);
    await sleep(PROPAGATION_MS); // the other gateway must see the slot free again
  }
});

test("limits changed by the admin take effect on running gateways", async (t) => {
  await awayFromMinuteEnd();
  const apiKey = await namespaceWithAction("changing-team", "function main(p) { return p; }", { perMinute: 1 });
  t.is((await on(1, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 202);
  await sleep(PROPAGATION_MS);
  t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 429);
  await admin.setLimits("changing-team", { perMinute: 100 });
  await sleep(PROPAGATION_MS);
  t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 202);
  t.is((await on(1, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 202);
});

test("a crashed gateway's running invocations stop counting once its counts expire", async (t) => {
  const apiKey = await namespaceWithAction("orphan-team", "function main(p) { return p; }", { concurrent: 1 });
  // What a gateway that admitted one invocation and then died leaves behind: a count nobody
  // refreshes. Written straight to the bucket, as that gateway would have.
  const counts = await new Kvm(platform.nc).open(LIMIT_COUNTS_BUCKET);
  const count: LimitCount = { inflight: 1, minute: Math.floor(Date.now() / 60_000), started: 1 };
  await counts.put(limitCountKey("orphan-team", "gw-crashed"), JSON.stringify(count));
  await sleep(PROPAGATION_MS);
  t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 429);
  t.is((await on(1, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 429);
  await sleep(LIMIT_COUNT_TTL_MS + 500);
  t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work?blocking=true", {})).status, 200);
});

test("a gateway that shuts down withdraws its counts at once", async (t) => {
  const slow = "function main(p) { const end = Date.now() + 3000; while (Date.now() < end) {} return {}; }";
  const apiKey = await namespaceWithAction("leaving-team", slow, { concurrent: 1 });
  const third = await startGateway({ nc: platform.nc, port: 0, host: "127.0.0.1", dataDir: platform.dataDir, logger: createLogger("warn") });
  const res = await fetch(new URL("/api/v1/namespaces/_/actions/work", third.url), {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(apiKey).toString("base64")}`, "content-type": "application/json" },
    body: "{}",
  });
  t.is(res.status, 202);
  await sleep(PROPAGATION_MS);
  t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 429);
  await third.close();
  await sleep(PROPAGATION_MS);
  // Its invocation may still be running: a shut-down gateway can no longer learn when it ends,
  // and Vespid prefers admitting one too many over a slot held for minutes.
  t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 202);
});

test.serial("the default limits do not get in the way of a load test: 2000 quick invocations through two gateways", async (t) => {
  const put = await platform.request("PUT", "/api/v1/namespaces/_/actions/load?overwrite=true", { exec: { kind: "nodejs", code: "function main(p) { return p; }" } });
  t.is(put.status, 200, JSON.stringify(put.body));
  const TOTAL = 2000;
  const IN_FLIGHT = 64;
  const statuses = new Map<number, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, worker) => {
      while (next < TOTAL) {
        next++;
        const res = await on((worker % 2) as 0 | 1, platform.apiKey, "POST", "/api/v1/namespaces/_/actions/load", { i: next });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  t.log(`${TOTAL} invocations queued in ${seconds.toFixed(2)} s: ${Math.round(TOTAL / seconds)}/s`);
  t.deepEqual(Object.fromEntries(statuses), { 202: TOTAL });
});

test("a blocking call that outlasts the gateway's wait (202) keeps its slot until it really ends", async (t) => {
  const slow = "function main(p) { const end = Date.now() + 2000; while (Date.now() < end) {} return { slow: true }; }";
  const apiKey = await namespaceWithAction("patient-team", slow, { concurrent: 1 });
  const impatient = await startGateway({ nc: platform.nc, port: 0, host: "127.0.0.1", dataDir: platform.dataDir, logger: createLogger("warn"), blockingWaitMs: 300 });
  try {
    const res = await fetch(new URL("/api/v1/namespaces/_/actions/work?blocking=true", impatient.url), {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(apiKey).toString("base64")}`, "content-type": "application/json" },
      body: "{}",
    });
    t.is(res.status, 202);
    const { activationId } = (await res.json()) as { activationId: string };
    await sleep(PROPAGATION_MS);
    t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 429, "still running: the slot is taken");
    t.deepEqual((await finished(apiKey, activationId)).response.result, { slow: true });
    await sleep(PROPAGATION_MS);
    t.is((await on(0, apiKey, "POST", "/api/v1/namespaces/_/actions/work", {})).status, 202, "ended: the slot is free");
  } finally {
    await impatient.close();
  }
});

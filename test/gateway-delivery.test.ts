// The gateway's side of delivery under faults (issue 10): Idempotency-Key across two gateways, the
// activation id in headers (early, on request), failing fast with 503 + Retry-After while NATS is
// away and /health following JetStream, and backpressure (a full queue, too many blocking waits).
// Everything real: nats-server, runners, scheduler; one test stops and restarts its own server.
import test from "ava";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import { IDEMPOTENCY_BUCKET, idempotencyKey, INVOCATIONS_STREAM } from "../contracts/index.ts";
import { fingerprintOf } from "../gateway/idempotency.ts";
import { newActivationId } from "../gateway/invoke.ts";
import { startGateway, type Gateway } from "../gateway/index.ts";
import { createLogger } from "../infra/logger.ts";
import { startLocalNats } from "../infra/nats-server.ts";
import { provision } from "../infra/provision.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { startRunner } from "../runner/index.ts";
import { startScheduler } from "../scheduler/index.ts";
import { startProvisionedNats, startPlatform, type Platform } from "./harness.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const logger = createLogger("warn");

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

/** A request to `baseUrl` with `apiKey`; JSON in and out. */
async function call(baseUrl: string, apiKey: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(new URL(path, baseUrl), {
    method,
    headers: { authorization: `Basic ${Buffer.from(apiKey).toString("base64")}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the test sees the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

const actionPath = (name: string) => `/api/v1/namespaces/_/actions/${name}`;
const ECHO = "function main(p) { return { echo: p }; }";
/** Runs for `p.ms` ms of wall time (default 1.5 s), then answers; `p.fail` makes it an application error. */
const SLOW = "function main(p) { const end = Date.now() + (p.ms || 1500); while (Date.now() < end) {} return p.fail ? { error: 'asked to fail' } : { done: true }; }";

/** Activations of `name` recorded so far (each run makes one record). */
async function recordsOf(baseUrl: string, apiKey: string, name: string): Promise<string[]> {
  const res = await call(baseUrl, apiKey, "GET", `/api/v1/namespaces/_/activations?name=${name}&limit=200`);
  if (res.status !== 200) throw new Error(`listing: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as Array<{ activationId: string }>).map((a) => a.activationId);
}

async function waitForRecord(baseUrl: string, apiKey: string, id: string): Promise<any> {
  for (let i = 0; i < 600; i++) {
    const res = await call(baseUrl, apiKey, "GET", `/api/v1/namespaces/_/activations/${id}`);
    if (res.status === 200) return res.body;
    await sleep(50);
  }
  throw new Error(`activation ${id} never appeared`);
}

// ---- One platform with two gateways: idempotency and headers --------------------------------

let platform: Platform;
let second: Gateway;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  second = await startGateway({ nc: platform.nc, port: 0, host: "127.0.0.1", dataDir: platform.dataDir, logger });
  for (const [name, code] of [["echo", ECHO], ["slow", SLOW], ["other", ECHO]] as const) {
    const put = await call(platform.url, platform.apiKey, "PUT", actionPath(name), { exec: { kind: "nodejs", code } });
    if (put.status !== 200) throw new Error(`PUT ${name}: ${JSON.stringify(put.body)}`);
  }
});
test.after.always(async () => {
  await second?.close();
  await platform?.stop();
});

test.serial("a repeated Idempotency-Key answers the first activation, non-blocking and blocking, on either gateway", async (t) => {
  const key = { "Idempotency-Key": `order-${Date.now()}` };
  const first = await call(platform.url, platform.apiKey, "POST", actionPath("echo"), { n: 1 }, key);
  t.is(first.status, 202, JSON.stringify(first.body));
  const id = first.body.activationId;
  t.is(first.headers.get("x-openwhisk-activation-id"), id);
  t.is(first.headers.get("idempotent-replayed"), null);

  const again = await call(second.url, platform.apiKey, "POST", actionPath("echo"), { n: 1 }, key);
  t.is(again.status, 202);
  t.is(again.body.activationId, id, "the other gateway answers the same activation");
  t.is(again.headers.get("idempotent-replayed"), "true");

  // Blocking now: the first call's record, not a new run.
  const blocking = await call(second.url, platform.apiKey, "POST", `${actionPath("echo")}?blocking=true`, { n: 1 }, key);
  t.is(blocking.status, 200, JSON.stringify(blocking.body));
  t.is(blocking.body.activationId, id);
  t.deepEqual(blocking.body.response.result, { echo: { n: 1 } });
  t.is(blocking.headers.get("x-vespid-activation-id"), id);

  // The same parameters with keys in another order are the same request.
  const reordered = await call(platform.url, platform.apiKey, "POST", `${actionPath("echo")}?blocking=true&result=true`, { n: 1 }, key);
  t.is(reordered.status, 200);
  t.deepEqual(reordered.body, { echo: { n: 1 } });

  await sleep(500);
  t.deepEqual((await recordsOf(platform.url, platform.apiKey, "echo")).filter((a) => a === id), [id]);
});

test.serial("concurrent repeats of one key through two gateways run the action once and all get its record", async (t) => {
  const key = { "Idempotency-Key": `"race-${Date.now()}"` }; // the IETF draft's quoted form
  const before = new Set(await recordsOf(platform.url, platform.apiKey, "slow"));
  const answers = await Promise.all(
    Array.from({ length: 8 }, (_, i) => call(i % 2 ? second.url : platform.url, platform.apiKey, "POST", `${actionPath("slow")}?blocking=true`, { ms: 800 }, key)),
  );
  const ids = new Set(answers.map((a) => a.body.activationId));
  t.is(ids.size, 1, JSON.stringify(answers.map((a) => [a.status, a.body.activationId])));
  for (const a of answers) {
    t.is(a.status, 200, JSON.stringify(a.body));
    t.true(a.body.response.success);
  }
  await sleep(1000);
  const runs = (await recordsOf(platform.url, platform.apiKey, "slow")).filter((id) => !before.has(id));
  t.deepEqual(runs, [...ids], "one record: the action ran once");
  t.is(answers.filter((a) => a.headers.get("idempotent-replayed") === "true").length, 7);
});

test.serial("a key reused for another request is a 422; a malformed key is a 400; a refused request frees its key", async (t) => {
  const key = { "Idempotency-Key": `reuse-${Date.now()}` };
  t.is((await call(platform.url, platform.apiKey, "POST", actionPath("echo"), { n: 1 }, key)).status, 202);
  const otherParams = await call(second.url, platform.apiKey, "POST", actionPath("echo"), { n: 2 }, key);
  t.is(otherParams.status, 422);
  t.regex(otherParams.body.error, /Idempotency-Key was used before with a different request/);
  t.is((await call(platform.url, platform.apiKey, "POST", actionPath("other"), { n: 1 }, key)).status, 422, "another action");

  for (const bad of ["x".repeat(256), '""', "caf\u00e9"]) {
    const res = await call(platform.url, platform.apiKey, "POST", actionPath("echo"), {}, { "Idempotency-Key": bad });
    t.is(res.status, 400, bad);
    t.regex(res.body.error, /Idempotency-Key header must be 1 to 255 printable ASCII/);
  }

  // A 404 (no such action) queues nothing, and does not even claim the key; a 400 on the body neither.
  const fresh = { "Idempotency-Key": `fresh-${Date.now()}` };
  t.is((await call(platform.url, platform.apiKey, "POST", actionPath("missing"), {}, fresh)).status, 404);
  t.is((await call(platform.url, platform.apiKey, "POST", actionPath("echo"), [1], fresh)).status, 400);
  const ok = await call(platform.url, platform.apiKey, "POST", `${actionPath("echo")}?blocking=true&result=true`, { z: 1 }, fresh);
  t.is(ok.status, 200);
  t.deepEqual(ok.body, { echo: { z: 1 } });
});

test.serial("blocking answers carry the activation id; with Prefer: early-activation-id the headers come before the body", async (t) => {
  const plain = await call(platform.url, platform.apiKey, "POST", `${actionPath("echo")}?blocking=true`, { a: 1 });
  t.is(plain.status, 200);
  t.is(plain.headers.get("x-openwhisk-activation-id"), plain.body.activationId);
  t.is(plain.headers.get("x-vespid-activation-id"), plain.body.activationId);
  // Without the preference, OpenWhisk's statuses stay: an application error is a 502.
  const failed = await call(platform.url, platform.apiKey, "POST", `${actionPath("slow")}?blocking=true`, { ms: 1, fail: true });
  t.is(failed.status, 502);
  t.is(failed.headers.get("x-openwhisk-activation-id"), failed.body.activationId);

  const started = Date.now();
  const res = await fetch(new URL(`${actionPath("slow")}?blocking=true`, platform.url), {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(platform.apiKey).toString("base64")}`, "content-type": "application/json", prefer: "early-activation-id" },
    body: JSON.stringify({ ms: 2000 }),
  });
  const headersAt = Date.now() - started;
  const id = res.headers.get("x-openwhisk-activation-id");
  t.truthy(id);
  t.is(res.status, 200);
  t.is(res.headers.get("preference-applied"), "early-activation-id");
  const body = (await res.json()) as any;
  const bodyAt = Date.now() - started;
  t.is(body.activationId, id);
  t.true(body.response.success);
  // The action runs 2 s after being queued; the headers left when it was queued.
  t.true(bodyAt - headersAt > 1000, `headers after ${headersAt} ms, body after ${bodyAt} ms`);

  // Early: the status is 200 whatever happens; the record tells of the failure.
  const early = await call(platform.url, platform.apiKey, "POST", `${actionPath("slow")}?blocking=true`, { ms: 1, fail: true }, { prefer: "early-activation-id" });
  t.is(early.status, 200);
  t.false(early.body.response.success);
  t.is(early.headers.get("x-openwhisk-activation-id"), early.body.activationId);
  // Refusals before queueing keep their status.
  t.is((await call(platform.url, platform.apiKey, "POST", `${actionPath("missing")}?blocking=true`, {}, { prefer: "early-activation-id" })).status, 404);
});

test.serial("a gateway that died between claiming a key and queueing loses nothing: a repeat queues the same id", async (t) => {
  const keys = await new Kvm(platform.nc).open(IDEMPOTENCY_BUCKET);
  // What a gateway killed right after its claim leaves behind: the claim, and nothing queued.
  const leaveClaim = async (key: string, params: Record<string, unknown>, ageMs: number) => {
    const activationId = newActivationId();
    const fingerprint = fingerprintOf({ action: { namespace: "guest", name: "echo" }, params });
    await keys.create(idempotencyKey("guest", createHash("sha256").update(key).digest("hex")), JSON.stringify({ activationId, fingerprint, created: Date.now() - ageMs }));
    return activationId;
  };

  const key = `crashed-${Date.now()}`;
  const id = await leaveClaim(key, { crash: 2 }, 10_000);
  const repeat = await call(second.url, platform.apiKey, "POST", `${actionPath("echo")}?blocking=true&result=true`, { crash: 2 }, { "Idempotency-Key": key });
  t.is(repeat.status, 200, JSON.stringify(repeat.body));
  t.deepEqual(repeat.body, { echo: { crash: 2 } });
  t.is(repeat.headers.get("x-openwhisk-activation-id"), id, "the claimed id ran");

  // A claim younger than 5 s: the repeat answers at once and queues the id when the claim is 5 s old.
  const youngKey = `crashed-young-${Date.now()}`;
  const young = await leaveClaim(youngKey, { crash: 3 }, 0);
  const accepted = await call(platform.url, platform.apiKey, "POST", actionPath("echo"), { crash: 3 }, { "Idempotency-Key": youngKey });
  t.is(accepted.status, 202);
  t.is(accepted.body.activationId, young);
  const record = await waitForRecord(platform.url, platform.apiKey, young);
  t.deepEqual(record.response.result, { echo: { crash: 3 } });
});

test.serial("a trigger fire repeated with its Idempotency-Key fires once", async (t) => {
  t.is((await call(platform.url, platform.apiKey, "PUT", "/api/v1/namespaces/_/triggers/paid", {})).status, 200);
  t.is((await call(platform.url, platform.apiKey, "PUT", "/api/v1/namespaces/_/rules/on-paid", { trigger: "paid", action: "other" })).status, 200);
  const key = { "Idempotency-Key": `fire-${Date.now()}` };
  const first = await call(platform.url, platform.apiKey, "POST", "/api/v1/namespaces/_/triggers/paid", { order: 7 }, key);
  t.is(first.status, 202, JSON.stringify(first.body));
  const repeat = await call(second.url, platform.apiKey, "POST", "/api/v1/namespaces/_/triggers/paid", { order: 7 }, key);
  t.is(repeat.status, 202);
  t.is(repeat.body.activationId, first.body.activationId);
  t.is(repeat.headers.get("idempotent-replayed"), "true");
  t.is((await call(second.url, platform.apiKey, "POST", "/api/v1/namespaces/_/triggers/paid", { order: 8 }, key)).status, 422);
  const record = await waitForRecord(platform.url, platform.apiKey, first.body.activationId);
  t.is(record.name, "paid");
  await sleep(1500);
  t.is((await recordsOf(platform.url, platform.apiKey, "other")).length, 1, "the rule's action ran once");
});

test.serial("health reports JetStream: the queue depth and no stream problems", async (t) => {
  const res = await call(platform.url, platform.apiKey, "GET", "/health");
  t.is(res.status, 200, JSON.stringify(res.body));
  t.true(res.body.jetstream.ok);
  t.is(typeof res.body.jetstream.queued, "number");
  t.deepEqual(res.body.jetstream.streams, {});
});

// ---- Own NATS: stopped and restarted; a queue without a scheduler ---------------------------

test("NATS stopped: invocations and /health answer 503 with Retry-After at once; after a restart they work again", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-delivery-"));
  let { nats, nc } = await startProvisionedNats(dataDir, "delivery-restart");
  const port = Number(new URL(nats.url.replace("nats://", "http://")).port);
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const runnerDir = join(dataDir, "runner");
    await mkdir(runnerDir);
    const runner = await startRunner({ nc, dataDir: runnerDir, capacity: 1, logger });
    closers.push(runner.close);
    const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger });
    closers.push(gateway.close);
    const apiKey = gateway.apiKey!;
    t.is((await call(gateway.url, apiKey, "PUT", actionPath("echo"), { exec: { kind: "nodejs", code: ECHO } })).status, 200);
    t.is((await call(gateway.url, apiKey, "POST", actionPath("echo"), {})).status, 202);

    await nats.stop();
    await sleep(200); // the client notices the closed socket
    const timings: number[] = [];
    for (const path of [actionPath("echo"), `${actionPath("echo")}?blocking=true`]) {
      const started = Date.now();
      const res = await call(gateway.url, apiKey, "POST", path, {}, { "Idempotency-Key": "while-down" });
      timings.push(Date.now() - started);
      t.is(res.status, 503, JSON.stringify(res.body));
      t.is(res.headers.get("retry-after"), "1");
    }
    // The client's request timeout is 5 s; refusing without trying takes milliseconds (generous bound).
    t.true(Math.max(...timings) < 1000, `503 after ${timings.join(", ")} ms`);
    t.log(`NATS stopped: 503 after ${timings.join(" and ")} ms (non-blocking, blocking)`);
    for (const path of ["/api/v1/web/guest/default/echo.json", "/api/v1/webhooks/guest/hook"]) {
      const started = Date.now();
      const res = await call(gateway.url, apiKey, "POST", path, {});
      t.is(res.status, 503, path);
      t.true(Date.now() - started < 1000, path);
    }
    const health = await call(gateway.url, apiKey, "GET", "/health");
    t.is(health.status, 503);
    t.is(health.headers.get("retry-after"), "1");

    nats = await startLocalNats({ dataDir: join(dataDir, "nats"), port });
    // Reconnected, JetStream checked again: health and invocations come back.
    let status = 0;
    for (let i = 0; i < 200 && status !== 200; i++) {
      await sleep(100);
      status = (await call(gateway.url, apiKey, "GET", "/health")).status;
    }
    t.is(status, 200, "health is back within 20 s of the restart");
    const after = await call(gateway.url, apiKey, "POST", actionPath("echo"), {}, { "Idempotency-Key": "while-down" });
    t.is(after.status, 202, JSON.stringify(after.body));

    // Connected, but JetStream cannot take invocations (here: the queue's stream is gone): the
    // periodic check sees it, not the TCP link.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(INVOCATIONS_STREAM);
    // The check runs every 250 ms; on a loaded machine give it up to 10 s to notice.
    for (let i = 0; i < 100 && (await call(gateway.url, apiKey, "GET", "/health")).status !== 503; i++) await sleep(100);
    const started = Date.now();
    const refused = await call(gateway.url, apiKey, "POST", actionPath("echo"), {});
    t.true(Date.now() - started < 1000);
    t.log(`stream gone: 503 after ${Date.now() - started} ms`);
    t.is(refused.status, 503);
    t.regex(refused.body.error, /JetStream cannot take invocations now: VESPID_INVOCATIONS: stream not found/);
    t.is(refused.headers.get("retry-after"), "1");
    const down = await call(gateway.url, apiKey, "GET", "/health");
    t.is(down.status, 503);
    t.regex(down.body.reason, /VESPID_INVOCATIONS/);
    await provision(nc);
    await sleep(1000);
    t.is((await call(gateway.url, apiKey, "GET", "/health")).status, 200);
    t.is((await call(gateway.url, apiKey, "POST", actionPath("echo"), {})).status, 202);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("backpressure: beyond VESPID_MAX_QUEUE pending invocations, and beyond the blocking waits, 503 with Retry-After", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-backpressure-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "delivery-backpressure");
  const closers: Array<() => Promise<unknown>> = [];
  try {
    // A runner to build the action, and no scheduler: invocations stay queued.
    const runnerDir = join(dataDir, "runner");
    await mkdir(runnerDir);
    const runner = await startRunner({ nc, dataDir: runnerDir, capacity: 1, logger });
    closers.push(runner.close);
    const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger, maxQueue: 3 });
    closers.push(gateway.close);
    // Its blocking calls go through the queue (no direct path), where no scheduler takes them.
    const waits = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger, maxBlockingWaits: 1, blockingWaitMs: 3000, directCalls: false });
    closers.push(waits.close);
    const apiKey = gateway.apiKey!;
    t.is((await call(gateway.url, apiKey, "PUT", actionPath("echo"), { exec: { kind: "nodejs", code: ECHO } })).status, 200);

    for (let i = 0; i < 3; i++) t.is((await call(gateway.url, apiKey, "POST", actionPath("echo"), { i })).status, 202);
    const full = await call(gateway.url, apiKey, "POST", actionPath("echo"), { i: 3 }, { "Idempotency-Key": "after-full" });
    t.is(full.status, 503);
    t.is(full.headers.get("retry-after"), "1");
    t.regex(full.body.error, /invocation queue is full \(3 waiting, the limit is 3\)/);
    // The queue as JetStream counts it, after the next check.
    await sleep(600);
    const again = await call(gateway.url, apiKey, "POST", actionPath("echo"), {});
    t.is(again.status, 503);
    const health = await call(gateway.url, apiKey, "GET", "/health");
    t.is(health.status, 200, "the gateway is up, the platform is saturated");
    t.is(health.body.status, "degraded");
    t.is(health.body.jetstream.queued, 3);

    // One blocking caller waits on the second gateway (its limit is 1); the next is refused at once.
    const waiting = call(waits.url, apiKey, "POST", `${actionPath("echo")}?blocking=true`, {});
    await sleep(500);
    const refused = await call(waits.url, apiKey, "POST", `${actionPath("echo")}?blocking=true`, {});
    t.is(refused.status, 503);
    t.regex(refused.body.error, /already waits for 1 blocking invocations/);
    t.is(refused.headers.get("retry-after"), "1");
    t.is((await waiting).status, 202, "the waiting one ends with OpenWhisk's 202 (no scheduler runs it)");

    // A scheduler drains the queue; the refused key was released, so it can run now.
    const scheduler = await startScheduler({ nc, logger });
    closers.push(scheduler.close);
    let status = 0;
    for (let i = 0; i < 100 && status !== 202; i++) {
      await sleep(200);
      status = (await call(gateway.url, apiKey, "POST", actionPath("echo"), { i: 3 }, { "Idempotency-Key": "after-full" })).status;
    }
    t.is(status, 202, "accepted once the queue has room");
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

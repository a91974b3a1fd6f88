// The direct path of blocking calls (gateway/direct-dispatch.ts, runner/assignments.ts): a
// blocking call goes straight to a runner with room, and is still never lost when that runner
// dies or shuts down: the gateway queues it on JetStream then, and its caller gets the record.
// Real platform, real runners (each with its own NATS connection where one must die).
import test from "ava";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import { ACTIVATIONS_BUCKET, activationKey } from "../contracts/index.ts";
import { ResultInbox } from "../gateway/result-inbox.ts";
import { connectNats } from "../infra/connect.ts";
import { startRunner } from "../runner/index.ts";
import { api, startPlatform, type Platform } from "./harness.ts";

const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });
const ECHO = "function main(params) { return params; }";
/** Busy for `ms` inside the guest, so calls overlap and queue. */
const sleeper = (ms: number) => `function main(p) { const end = Date.now() + ${ms}; while (Date.now() < end) {} return { i: p.i }; }`;

/** Every message on the runners' hand-over subjects and on the invocation stream's. */
function tap(nc: NatsConnection) {
  const seen: Array<{ kind: "run" | "assign" | "queued"; activationId: string; runner?: string }> = [];
  const record = (kind: "run" | "assign" | "queued") => (_err: Error | null, msg: Msg) => {
    try {
      seen.push({ kind, activationId: msg.json<{ activationId: string }>().activationId, runner: msg.subject.split(".")[2] });
    } catch {
      // not an event
    }
  };
  const subs = [
    nc.subscribe("vespid.runner.*.run", { callback: record("run") }),
    nc.subscribe("vespid.runner.*.assign", { callback: record("assign") }),
    nc.subscribe("vespid.invoke.>", { callback: record("queued") }),
  ];
  return { seen, stop: () => subs.forEach((s) => s.unsubscribe()) };
}

const put = async (platform: Platform, name: string, code: string) => {
  const res = await platform.request("PUT", api(`actions/${name}?overwrite=true`), { exec: { kind: "nodejs:20", code } });
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
};

/** Blocking calls until one goes straight to a runner (the gateway hears runners within a second). */
async function untilDirect(platform: Platform, name: string): Promise<void> {
  const t = tap(platform.nc);
  try {
    for (let i = 0; i < 50; i++) {
      await platform.request("POST", api(`actions/${name}?blocking=true`), { warmup: i });
      if (t.seen.some((s) => s.kind === "run")) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error("no call went straight to a runner");
  } finally {
    t.stop();
  }
}

test.serial("a blocking call goes straight to a runner: nothing is queued, the record is stored, the id is in the headers", async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  await put(platform, "echo", ECHO);
  await untilDirect(platform, "echo");
  const seen = tap(platform.nc);
  t.teardown(seen.stop);
  const res = await platform.request("POST", api("actions/echo?blocking=true"), { name: "Ada" });
  t.is(res.status, 200);
  t.deepEqual(res.body.response.result, { name: "Ada" });
  const id = res.body.activationId as string;
  t.is(res.headers["x-openwhisk-activation-id"], id);
  await platform.nc.flush();
  t.deepEqual(seen.seen.filter((s) => s.activationId === id).map((s) => s.kind), ["run"], "handed to a runner, never queued");
  const stored = await platform.request("GET", api(`activations/${id}`));
  t.is(stored.status, 200);
  t.deepEqual(stored.body.response.result, { name: "Ada" });

  // With an Idempotency-Key the call goes through JetStream: a repeat's republish relies on its duplicate window.
  const keyed = await platform.request("POST", api("actions/echo?blocking=true"), { n: 1 }, { "Idempotency-Key": "direct-test-1" });
  t.is(keyed.status, 200);
  await platform.nc.flush();
  t.deepEqual(seen.seen.filter((s) => s.activationId === keyed.body.activationId).map((s) => s.kind), ["queued", "assign"]);
  // Non-blocking calls are queued as always.
  const queued = await platform.request("POST", api("actions/echo"), { n: 2 });
  t.is(queued.status, 202);
  await platform.nc.flush();
  t.true(seen.seen.some((s) => s.activationId === queued.body.activationId && s.kind === "queued"));
});

test.serial("an update is what the next call runs, on every runner: the event names the revision the gateway read", async (t) => {
  const platform = await startPlatform({ runners: 2 });
  t.teardown(() => platform.stop());
  await put(platform, "version", "function main() { return { v: 0 }; }");
  await untilDirect(platform, "version");
  for (let v = 1; v <= 6; v++) {
    // Both runners have the previous version cached (calls go to the freest, so they alternate).
    await Promise.all([0, 1].map(() => platform.request("POST", api("actions/version?blocking=true"), {})));
    await put(platform, "version", `function main() { return { v: ${v} }; }`);
    const results = await Promise.all([0, 1].map(() => platform.request("POST", api("actions/version?blocking=true&result=true"), {})));
    t.deepEqual(results.map((r) => r.body), [{ v }, { v }], `right after update ${v}`);
  }
});

test.serial("a runner that dies with direct calls running and queued: each is queued on JetStream, runs elsewhere, and its caller gets the one record", async (t) => {
  const platform = await startPlatform({ runners: 0 });
  t.teardown(() => platform.stop());
  // The doomed runner has a connection of its own, so it can vanish without a word.
  const doomedNc = await connectNats(platform.nc.getServer().includes("://") ? platform.nc.getServer() : `nats://${platform.nc.getServer()}`, "doomed-runner");
  const doomedDir = join(platform.dataDir, "doomed");
  await mkdir(doomedDir, { recursive: true });
  const doomed = await startRunner({ nc: doomedNc, dataDir: doomedDir, capacity: 1, queueLimit: 8, logger, runnerId: "doomed" });
  t.teardown(async () => {
    await doomed.close().catch(() => undefined);
    await doomedNc.close().catch(() => undefined);
  });
  await put(platform, "slow", sleeper(400));
  await untilDirect(platform, "slow");

  const seen = tap(platform.nc);
  t.teardown(seen.stop);
  const calls = [0, 1, 2].map((i) => platform.request("POST", api("actions/slow?blocking=true"), { i }));
  // All three on the doomed runner (one running, two waiting for its slot); then it goes silent.
  const deadline = Date.now() + 5_000;
  while (seen.seen.filter((s) => s.kind === "run" && s.runner === "doomed").length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.is(seen.seen.filter((s) => s.kind === "run" && s.runner === "doomed").length, 3, "all three went straight to the doomed runner");
  const survivorDir = join(platform.dataDir, "survivor");
  await mkdir(survivorDir, { recursive: true });
  const survivor = await startRunner({ nc: platform.nc, dataDir: survivorDir, capacity: 2, logger, runnerId: "survivor" });
  t.teardown(() => survivor.close());
  await doomedNc.close();

  const answers = await Promise.all(calls);
  t.deepEqual(answers.map((a) => a.status), [200, 200, 200], JSON.stringify(answers.map((a) => a.body)));
  t.deepEqual(answers.map((a) => a.body.response.result), [{ i: 0 }, { i: 1 }, { i: 2 }]);
  for (const answer of answers) {
    const id = answer.body.activationId as string;
    // Queued on JetStream once its runner stopped sending heartbeats, and placed on the survivor.
    t.true(seen.seen.some((s) => s.activationId === id && s.kind === "queued"), `${id} was queued on JetStream`);
    const stored = await platform.request("GET", api(`activations/${id}`));
    t.deepEqual(stored.body, answer.body, "the caller got the record that stands");
  }
});

test.serial("a runner shutting down hands back the direct calls it holds: they run elsewhere at once", async (t) => {
  const platform = await startPlatform({ runners: 0 });
  t.teardown(() => platform.stop());
  const leavingDir = join(platform.dataDir, "leaving");
  await mkdir(leavingDir, { recursive: true });
  const leaving = await startRunner({ nc: platform.nc, dataDir: leavingDir, capacity: 1, queueLimit: 8, logger, runnerId: "leaving", shutdownGraceMs: 100 });
  await put(platform, "slow", sleeper(1_000));
  await untilDirect(platform, "slow");
  const seen = tap(platform.nc);
  t.teardown(seen.stop);
  const calls = [0, 1, 2].map((i) => platform.request("POST", api("actions/slow?blocking=true"), { i }));
  const deadline = Date.now() + 5_000;
  while (seen.seen.filter((s) => s.kind === "run").length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const stayingDir = join(platform.dataDir, "staying");
  await mkdir(stayingDir, { recursive: true });
  const staying = await startRunner({ nc: platform.nc, dataDir: stayingDir, capacity: 2, logger, runnerId: "staying" });
  t.teardown(() => staying.close());
  const closedAt = Date.now();
  await leaving.close();

  const answers = await Promise.all(calls);
  t.deepEqual(answers.map((a) => a.status), [200, 200, 200], JSON.stringify(answers.map((a) => a.body)));
  t.deepEqual(answers.map((a) => a.body.response.result), [{ i: 0 }, { i: 1 }, { i: 2 }]);
  // Handed back with a notice, not found out by the heartbeat expiry (3.5 s).
  t.true(Date.now() - closedAt < 3_500 + 1_000 * 2, `answered ${Date.now() - closedAt} ms after the shutdown`);
  for (const answer of answers) t.true(seen.seen.some((s) => s.activationId === answer.body.activationId && s.kind === "queued"));
});

test.serial("a runner with no queue (VESPID_RUNNER_QUEUE=0) takes no direct calls: blocking calls reach it through JetStream", async (t) => {
  const platform = await startPlatform({ runners: 0 });
  t.teardown(() => platform.stop());
  const dir = join(platform.dataDir, "no-queue");
  await mkdir(dir, { recursive: true });
  const runner = await startRunner({ nc: platform.nc, dataDir: dir, capacity: 1, queueLimit: 0, logger, runnerId: "no-queue" });
  t.teardown(() => runner.close());
  await put(platform, "echo", ECHO);
  await new Promise((resolve) => setTimeout(resolve, 1_500)); // its heartbeat is heard
  const seen = tap(platform.nc);
  t.teardown(seen.stop);
  const res = await platform.request("POST", api("actions/echo?blocking=true"), { x: 1 });
  t.is(res.status, 200);
  await platform.nc.flush();
  t.deepEqual(seen.seen.filter((s) => s.activationId === res.body.activationId).map((s) => s.kind), ["queued", "assign"]);
});

test.serial("a record whose message to the gateway was lost still reaches its blocking caller: waiting calls are looked up in KV", async (t) => {
  const platform = await startPlatform({ runners: 0 });
  t.teardown(() => platform.stop());
  const activations = await new Kvm(platform.nc).open(ACTIVATIONS_BUCKET);
  const inbox = new ResultInbox(platform.nc, "gw-lost-results", logger, async (namespace, activationId) => {
    const entry = await activations.get(activationKey(namespace, activationId));
    return entry?.operation === "PUT" ? entry.value : undefined;
  });
  t.teardown(() => inbox.close());
  const activationId = randomBytes(16).toString("hex");
  const pending = inbox.expect(activationId, 30_000, "guest");
  const started = Date.now();
  // Stored as a runner stores it, but never sent to the gateway's subject (as if lost in a reconnect).
  const record = { activationId, namespace: "guest", name: "lost", version: "0.0.1", subject: "guest", start: started, end: started, duration: 0,
    response: { status: "success", statusCode: 0, success: true, result: { found: true } }, logs: [], annotations: [], publish: false };
  await activations.create(activationKey("guest", activationId), JSON.stringify(record));
  const activation = await pending.result;
  t.deepEqual(activation?.response.result, { found: true });
  t.true(Date.now() - started < 12_000, `found after ${Date.now() - started} ms (swept every 5 s)`);
});

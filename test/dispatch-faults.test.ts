// Dispatch under faults (issue 10): a nats-server restarted under load, a runner that dies mid-call,
// a scheduler that dies, a runner shutting down, a runner whose engine cannot start, and the dead
// letters. Real nats-server, scheduler, gateway and runners on the real engine; each runner has a
// NATS connection of its own, so closing that connection is the runner dying (no goodbye, no
// heartbeats, nothing it finishes gets recorded). The engine is the native one wrapped only to count
// the calls that reach it per invocation, so "lost" and "ran twice" are counts.
import test, { type ExecutionContext } from "ava";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import {
  ACTIONS_BUCKET,
  actionKey,
  ACTIVATIONS_BUCKET,
  activationKey,
  INVOCATIONS_STREAM,
  RUNNER_EXPIRY_MS,
  RUNNER_HEARTBEAT_SUBJECT,
  RunnerHeartbeat,
  type Action,
  type Activation,
} from "../contracts/index.ts";
import { startGateway } from "../gateway/index.ts";
import { loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { findNatsServer, startLocalNats, type LocalNats } from "../infra/nats-server.ts";
import type { Engine } from "../runner/engine.ts";
import { UNAVAILABLE_TIERS_ENV } from "../runner/engine-start.ts";
import { PROBE_INTERVAL_MS } from "../runner/health.ts";
import { startRunner, type Runner } from "../runner/index.ts";
import { ACK_WAIT_MS } from "../scheduler/consumer.ts";
import { startScheduler } from "../scheduler/index.ts";
import { startProvisionedNats } from "./harness.ts";

const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sleeps params.ms (the engine emulates nanosleep), then returns its params. */
const C_SLEEPER = `#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    const char *at = strstr(params, "\\"ms\\":");
    long ms = at ? strtol(at + 5, 0, 10) : 0;
    struct timespec pause = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&pause, 0);
    return params;
}
`;

/** One platform of the test's own: a nats-server it may restart, a gateway, schedulers and runners. */
async function platform(t: ExecutionContext, opts: { maxRetries?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "vespid-dispatch-faults-"));
  let { nats, nc } = await startProvisionedNats(dir, "dispatch-faults");
  const closers: Array<() => Promise<unknown>> = [];
  t.teardown(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const natsServer = await findNatsServer(loadConfig().dataDir);
  const native = await import("../runner/engine-native.ts");
  const tier = native.chooseIsolation("auto").isolation;
  const real = native.openNativeEngine({ isolation: tier, threads: 4 });
  /** Engine calls per invocation, by the `i` of its params. */
  const runs = new Map<number, number>();
  const counting: Engine = {
    isolation: real.isolation,
    run: (req) => {
      const i = (JSON.parse(req.params) as { i?: number }).i;
      if (i !== undefined) runs.set(i, (runs.get(i) ?? 0) + 1);
      return real.run(req);
    },
    stats: () => real.stats(),
    close: () => undefined,
  };
  const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir: dir, logger });
  closers.push(gateway.close);
  const activations = await new Kvm(nc).open(ACTIVATIONS_BUCKET);
  let runnerCount = 0;

  const self = {
    nc,
    /** The runners' data directory too: their images are under `<dir>/images`. */
    dir,
    tier,
    runs,
    activations,
    get nats(): LocalNats {
      return nats;
    },
    /** A runner on a connection of its own; `kill()` closes that connection without a word. */
    async runner(capacity = 2, extra: Partial<Parameters<typeof startRunner>[0]> = {}) {
      const own = await connectNats(nats.url, `runner-${runnerCount}`);
      const runner: Runner = await startRunner({ nc: own, dataDir: dir, capacity, runnerId: `runner-${runnerCount++}`, logger, engine: counting, ...extra });
      closers.push(async () => {
        await runner.close();
        await own.close();
      });
      return { runner, nc: own, kill: () => own.close() };
    },
    /** A scheduler on a connection of its own; `reconnectWaitMs` makes it come back that long after a server restart (runners: ~2 s). */
    async scheduler(reconnectWaitMs?: number) {
      const own = reconnectWaitMs === undefined
        ? await connectNats(nats.url, "scheduler")
        : await connect({ servers: nats.url, name: "late-scheduler", maxReconnectAttempts: -1, reconnectTimeWait: reconnectWaitMs, reconnectJitter: 0 });
      const scheduler = await startScheduler({ nc: own, logger, ...(opts.maxRetries !== undefined && { maxRetries: opts.maxRetries }) });
      closers.push(async () => {
        await scheduler.close();
        await own.close();
      });
      return { scheduler, kill: () => own.close() };
    },
    request: async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${gateway.url}/api/v1/namespaces/_${path}`, {
        method,
        headers: { authorization: `Basic ${Buffer.from(gateway.apiKey!).toString("base64")}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(120_000),
      });
      return { status: res.status, body: (await res.json()) as any };
    },
    /** Stops nats-server, waits `downMs`, and starts it again on the same port and store. */
    async restartNats(downMs: number) {
      const port = Number(new URL(nats.url).port);
      await nats.stop();
      await sleep(downMs);
      nats = await startLocalNats({ dataDir: join(dir, "nats"), port, natsServer });
      if (Number(new URL(nats.url).port) !== port) throw new Error(`nats-server came back on another port: ${nats.url}`);
    },
  };
  return self;
}

async function stored(activations: KV, activationId: string): Promise<Activation | undefined> {
  const entry = await activations.get(activationKey("guest", activationId)).catch(() => null);
  return entry?.operation === "PUT" ? entry.json<Activation>() : undefined;
}

/** Polls until every id has a record, or `withinMs` passed; the ids still without one. */
async function unrecorded(activations: KV, ids: string[], withinMs: number): Promise<string[]> {
  const deadline = Date.now() + withinMs;
  let missing = ids;
  for (;;) {
    const found = await Promise.all(missing.map((id) => stored(activations, id)));
    missing = missing.filter((_, k) => !found[k]);
    if (missing.length === 0 || Date.now() > deadline) return missing;
    await sleep(250);
  }
}

/** Resolves once the call with params `i` has reached the engine (its runner is running it). */
async function started(runs: Map<number, number>, i: number): Promise<void> {
  for (let waited = 0; !runs.get(i); waited += 20) {
    if (waited > 60_000) throw new Error(`call ${i} never started`);
    await sleep(20);
  }
}

/** Queues `calls` sleeper calls, restarts nats-server `afterMs` later for `downMs`, and checks every call is recorded once. */
async function natsRestartUnderLoad(t: ExecutionContext, calls: number, sleepMs: number, afterMs: number, downMs: number, schedulerReconnectWaitMs?: number) {
  const p = await platform(t);
  await p.runner(2);
  await p.runner(2);
  await p.scheduler(schedulerReconnectWaitMs);
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);

  const accepted: string[] = [];
  for (let i = 0; i < calls; i++) {
    const res = await p.request("POST", "/actions/sleeper", { i, ms: sleepMs });
    t.is(res.status, 202);
    accepted.push(res.body.activationId);
  }
  await sleep(afterMs); // some are running, most wait in the stream
  await p.restartNats(downMs);
  const backAt = Date.now();
  // The work itself takes calls × sleepMs / 4 slots; the bound leaves room for reconnects and a slow machine.
  const missing = await unrecorded(p.activations, accepted, 45_000 + (calls * sleepMs) / 4);
  t.deepEqual(missing, [], `${missing.length} accepted calls have no record ${Math.round((Date.now() - backAt) / 1000)} s after NATS came back`);
  const records = await Promise.all(accepted.map((id) => stored(p.activations, id)));
  t.true(records.every((r) => r?.response.status === "success"), JSON.stringify(records.find((r) => r?.response.status !== "success")));
  const twice = [...p.runs.entries()].filter(([, n]) => n > 1);
  t.log(`recorded all ${calls} within ${Date.now() - backAt} ms of NATS coming back (${downMs} ms down); ran more than once: ${twice.length}`);
  // Only calls cut off mid-run may run again: at most the 4 slots' worth that were running.
  t.true(twice.length <= 4, `ran twice: ${JSON.stringify(twice)}`);
  t.is(p.runs.size, calls, "every call ran");
}

test.serial("a nats-server restart under load: every accepted call is recorded soon after it is back, none lost", (t) =>
  natsRestartUnderLoad(t, 60, 150, 500, 3_000));

test.serial("a 5 s nats-server outage while calls run through it: nothing stalls once it is back", (t) =>
  natsRestartUnderLoad(t, 40, 1_000, 1_500, 5_000));

// The runners reconnect first and finish calls while the scheduler is still away: whatever they
// tell it then is lost (no subscriber). Its leases must settle from their heartbeats, not wait.
test.serial("a scheduler that reconnects seconds after its runners: what it missed is settled by their heartbeats", (t) =>
  natsRestartUnderLoad(t, 20, 1_000, 1_500, 2_000, 6_000));

test.serial("a runner that dies mid-call: the call moves to another runner within its heartbeat expiry", async (t) => {
  const p = await platform(t);
  const doomed = await p.runner(1);
  await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  const res = await p.request("POST", "/actions/sleeper", { i: 1, ms: 4_000 });
  t.is(res.status, 202);
  const id: string = res.body.activationId;
  await started(p.runs, 1);
  await p.runner(1);
  const killedAt = Date.now();
  await doomed.kill();
  t.deepEqual(await unrecorded(p.activations, [id], 30_000), []);
  const record = (await stored(p.activations, id))!;
  t.is(record.response.status, "success");
  const movedAfter = record.start - killedAt;
  t.log(`the call started again ${movedAfter} ms after its runner died (expiry ${RUNNER_EXPIRY_MS} ms)`);
  t.true(movedAfter < RUNNER_EXPIRY_MS + 2_500, `moved after ${movedAfter} ms`);
  t.is(p.runs.get(1), 2, "cut off mid-run, it ran again, once");
});

test.serial("a scheduler that dies: its events are taken over within seconds, and a call its runner finished does not run again", async (t) => {
  const p = await platform(t);
  await p.runner(2);
  const doomed = await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  const res = await p.request("POST", "/actions/sleeper", { i: 7, ms: 1_500 });
  const id: string = res.body.activationId;
  await started(p.runs, 7);
  await doomed.kill();
  const killedAt = Date.now();
  await p.scheduler();
  const jsm = await jetstreamManager(p.nc);
  for (;;) {
    if ((await jsm.streams.info(INVOCATIONS_STREAM)).state.messages === 0) break;
    // "Within a few seconds": the ack wait (5 s) and a margin for a loaded machine.
    if (Date.now() - killedAt > 12_000) return void t.fail(`not acked ${Date.now() - killedAt} ms after its scheduler died`);
    await sleep(200);
  }
  t.log(`acked by the second scheduler ${Date.now() - killedAt} ms after the first died (ack wait ${ACK_WAIT_MS} ms)`);
  t.is((await stored(p.activations, id))?.response.status, "success");
  t.is(p.runs.get(7), 1, "its runner finished it: it did not run again");
});

test.serial("a runner shutting down finishes what it can within its grace and hands back the rest", async (t) => {
  const p = await platform(t);
  const leaving = await p.runner(2, { shutdownGraceMs: 1_000 });
  await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  const short = (await p.request("POST", "/actions/sleeper", { i: 1, ms: 300 })).body.activationId as string;
  const long = (await p.request("POST", "/actions/sleeper", { i: 2, ms: 6_000 })).body.activationId as string;
  await started(p.runs, 2);
  await p.runner(2);
  const closing = Date.now();
  await leaving.runner.close();
  t.true(Date.now() - closing < 5_000, "close() waited no longer than its grace (and a little)");
  t.deepEqual(await unrecorded(p.activations, [short, long], 30_000), []);
  t.is(p.runs.get(1), 1, "the short call finished on the leaving runner");
  const handedBack = (await stored(p.activations, long))!;
  t.is(handedBack.response.status, "success");
  t.true(handedBack.start - closing < 3_000, `handed back: started again ${handedBack.start - closing} ms after close`);
});

test.serial("system failures beyond VESPID_MAX_RETRIES go to the dead letters with a failed record; replay runs them again", async (t) => {
  const p = await platform(t, { maxRetries: 0 });
  const doomed = await p.runner(1);
  await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  const id = (await p.request("POST", "/actions/sleeper", { i: 3, ms: 3_000, keep: "me" })).body.activationId as string;
  await started(p.runs, 3);
  await doomed.kill();
  t.deepEqual(await unrecorded(p.activations, [id], 30_000), []);
  const failed = (await stored(p.activations, id))!;
  t.is(failed.response.status, "whisk internal error");
  t.regex(failed.response.result.error as string, /failed on the platform's side in all of its 1 attempts \(VESPID_MAX_RETRIES 0\); the last failure: runner runner-0 stopped sending heartbeats/);

  const list = await p.request("GET", "/deadletters");
  t.is(list.status, 200);
  t.is(list.body.length, 1);
  t.like(list.body[0], { activationId: id, name: "sleeper", namespace: "guest", attempts: 1, event: { params: { i: 3, ms: 3_000, keep: "me" } } });
  t.is((await p.request("GET", `/deadletters/${id}`)).body.activationId, id);
  t.is((await p.request("GET", "/deadletters/not-an-id")).status, 400);
  t.is((await p.request("GET", `/deadletters/${"0".repeat(32)}`)).status, 404);

  await p.runner(1);
  const replay = await p.request("POST", `/deadletters/${id}/replay`);
  t.is(replay.status, 202);
  t.is(replay.body.replayOf, id);
  t.not(replay.body.activationId, id);
  t.deepEqual(await unrecorded(p.activations, [replay.body.activationId], 30_000), []);
  t.deepEqual((await stored(p.activations, replay.body.activationId))!.response.result, { i: 3, ms: 3_000, keep: "me" });
  t.is((await p.request("GET", `/deadletters/${id}`)).status, 404, "replayed: no longer a dead letter");
  t.deepEqual((await p.request("GET", "/deadletters")).body, []);
  t.is((await p.request("POST", `/deadletters/${id}/replay`)).status, 404, "a second replay finds nothing");
});

test.serial("a runner whose engine cannot start says so, takes no work, and takes work again once its probe succeeds", async (t) => {
  const p = await platform(t);
  const healthy = await p.runner(2);
  await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  process.env[UNAVAILABLE_TIERS_ENV] = p.tier;
  t.teardown(() => void delete process.env[UNAVAILABLE_TIERS_ENV]);
  // Not the counting engine: this runner opens the native one itself, which the hook refuses.
  const sick = await p.runner(2, { engine: undefined, isolation: p.tier });
  t.regex(sick.runner.unhealthy() ?? "", new RegExp(`isolation ${p.tier} is forced unavailable`));
  const beat = await new Promise<RunnerHeartbeat>((resolve) => {
    const sub = p.nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, {
      callback: (_err, msg) => {
        const b = RunnerHeartbeat.parse(msg.json());
        if (b.runnerId === sick.runner.runnerId) resolve(b), sub.unsubscribe();
      },
    });
  });
  t.is(beat.capacity, 0);
  t.regex(beat.unhealthy ?? "", /forced unavailable/);
  // Nor does it take builds: every PUT is checked by the healthy runner.
  for (let i = 0; i < 6; i++) {
    const put = await p.request("PUT", `/actions/checked-${i}`, { exec: { kind: "nodejs", code: `function main() { return { n: ${i} }; }` } });
    t.is(put.status, 200, JSON.stringify(put.body));
  }

  const assignedTo = new Map<string, string>();
  // Assignments from the scheduler and direct calls from the gateway alike.
  const tap = p.nc.subscribe("vespid.runner.*.*", {
    callback: (_e, msg) => {
      if (/\.(assign|run)$/.test(msg.subject)) assignedTo.set(msg.json<{ activationId: string }>().activationId, msg.subject.split(".")[2]!);
    },
  });
  t.teardown(() => tap.unsubscribe());
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => p.request("POST", "/actions/sleeper?blocking=true", { i: 100 + i, ms: 100 })));
  t.deepEqual(results.map((r) => r.status), Array(6).fill(200));
  t.deepEqual([...new Set(assignedTo.values())], [healthy.runner.runnerId], "nothing was assigned to the unhealthy runner");

  delete process.env[UNAVAILABLE_TIERS_ENV];
  const deadline = Date.now() + PROBE_INTERVAL_MS * 3 + 10_000;
  while (sick.runner.unhealthy() !== undefined && Date.now() < deadline) await sleep(100);
  t.is(sick.runner.unhealthy(), undefined, "its probe call succeeded once the tier was back");
});

test.serial("a scheduler that dies mid-call: the next one takes over the running call's lease and does not run it again", async (t) => {
  const p = await platform(t);
  await p.runner(2);
  const doomed = await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  const id = (await p.request("POST", "/actions/sleeper", { i: 8, ms: 8_000 })).body.activationId as string;
  await started(p.runs, 8);
  await doomed.kill();
  const killedAt = Date.now();
  await p.scheduler();
  // Redelivered after the ack wait while runner-0 still runs it: the new scheduler must not place it.
  const jsm = await jetstreamManager(p.nc);
  for (;;) {
    if ((await jsm.streams.info(INVOCATIONS_STREAM)).state.messages === 0) break;
    if (Date.now() - killedAt > 8_000 + ACK_WAIT_MS + 10_000) return void t.fail("the event was never acked");
    await sleep(200);
  }
  t.is((await stored(p.activations, id))?.response.status, "success");
  t.is(p.runs.get(8), 1, "ran once, though redelivered while running");
});

test.serial("two schedulers at once: every call runs exactly once", async (t) => {
  const p = await platform(t);
  await p.runner(2);
  await p.runner(2);
  await p.scheduler();
  await p.scheduler();
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  const CALLS = 40;
  const ids: string[] = [];
  for (let i = 0; i < CALLS; i++) ids.push((await p.request("POST", "/actions/sleeper", { i, ms: 50 })).body.activationId);
  t.deepEqual(await unrecorded(p.activations, ids, 60_000), []);
  t.is(p.runs.size, CALLS);
  t.deepEqual([...p.runs.values()].filter((n) => n !== 1), [], "none ran twice");
});

test.serial("a runner whose calls keep failing on the host takes no work until its probe call succeeds", async (t) => {
  const p = await platform(t);
  const { runner } = await p.runner(1);
  await p.scheduler();
  t.is((await p.request("PUT", "/actions/broken", { exec: { kind: "c", code: C_SLEEPER.replace("return params;", "return \"{}\";") } })).status, 200);
  t.is((await p.request("PUT", "/actions/sleeper", { exec: { kind: "c", code: C_SLEEPER } })).status, 200);
  // A guest image damaged on the runner's disk: the engine cannot start the guest, a host fault.
  const { codeHash } = (await (await new Kvm(p.nc).open(ACTIONS_BUCKET)).get(actionKey("guest", "broken")))!.json<Action>();
  await writeFile(join(p.dir, "images", `${codeHash}.elf`), "this is not an ELF image\n");
  for (let i = 0; i < 3; i++) {
    const res = await p.request("POST", "/actions/broken?blocking=true", { i: 200 + i });
    t.is(res.body.response?.status, "whisk internal error", JSON.stringify(res.body));
  }
  t.regex(runner.unhealthy() ?? "", /3 calls in a row failed on the host/);
  // The probe (a JS call, whose image is fine) brings it back within a probe interval or so.
  const deadline = Date.now() + PROBE_INTERVAL_MS + 10_000;
  while (runner.unhealthy() !== undefined && Date.now() < deadline) await sleep(100);
  t.is(runner.unhealthy(), undefined);
  const ok = await p.request("POST", "/actions/sleeper?blocking=true", { i: 300, ms: 1 });
  t.is(ok.status, 200);
});

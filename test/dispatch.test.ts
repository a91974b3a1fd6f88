// Gateway → JetStream → scheduler → runner → activation record, on a real nats-server, with a
// scripted engine and image store standing in for the virtines: what is tested is the placement,
// the bookkeeping and the records, not the guest. The params of each invocation tell the scripted
// engine how to end (see ScriptedEngine).
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { ACTIVATIONS_BUCKET, invokeSubject, type ActionKind, type Activation, type InvocationEvent } from "../contracts/index.ts";
import { startGateway } from "../gateway/index.ts";
import { loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { findNatsServer, startLocalNats, type LocalNats } from "../infra/nats-server.ts";
import { provision } from "../infra/provision.ts";
import type { Engine, EngineOutcome, EngineRequest, EngineStatus } from "../runner/engine.ts";
import type { BuildResult, ImageStore } from "../runner/images.ts";
import { startRunner } from "../runner/index.ts";
import { TRUNCATED_LOGS_MARKER } from "../runner/logs-format.ts";
import { startScheduler } from "../scheduler/index.ts";

const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });

/** What the scripted engine reads from an invocation's params. */
interface Script {
  status?: EngineStatus;
  /** JSON text returned as the result (status ok / app_error); the params themselves by default. */
  result?: string;
  error?: string;
  sleepMs?: number;
  logs?: string[];
  logsTruncated?: boolean;
}

/** Runs nothing: ends each invocation as its params say, counting how many run at once. */
class ScriptedEngine implements Engine {
  running = 0;
  mostAtOnce = 0;
  readonly requests: EngineRequest[] = [];

  async run(req: EngineRequest): Promise<EngineOutcome> {
    this.requests.push(req);
    this.mostAtOnce = Math.max(this.mostAtOnce, ++this.running);
    try {
      const script = JSON.parse(req.params) as Script;
      if (script.sleepMs) await new Promise((resolve) => setTimeout(resolve, script.sleepMs));
      const status = script.status ?? "ok";
      return {
        status,
        result: status === "ok" || status === "app_error" ? (script.result ?? req.params) : undefined,
        error: script.error,
        logs: (script.logs ?? []).map((text, i) => ({ time: Date.now() + i + 0.25, stream: i % 2 ? "stderr" : "stdout", text })),
        logsTruncated: script.logsTruncated ?? false,
        micros: 1,
      };
    } finally {
      this.running--;
    }
  }

  close(): void {}
}

const CODE_THAT_FAILS_TO_BUILD = "does not compile";

class ScriptedImages implements ImageStore {
  async build(kind: ActionKind, code: string): Promise<BuildResult> {
    if (code === CODE_THAT_FAILS_TO_BUILD) return { ok: false, error: "action.c:1:1: error: unknown type name 'does'" };
    return { ok: true, codeHash: `${kind}-${code.length}`, image: `/images/${kind}` };
  }
}

interface Context {
  nats: LocalNats;
  nc: NatsConnection;
  dataDir: string;
  gatewayUrl: string;
  apiKey: string;
  activations: KV;
  engines: ScriptedEngine[];
  runnerIds: string[];
  closers: Array<() => Promise<void>>;
}

let ctx: Context;

test.before(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-dispatch-test-"));
  const nats = await startLocalNats({ dataDir: join(dataDir, "nats"), natsServer: await findNatsServer(loadConfig().dataDir) });
  const nc = await connectNats(nats.url, "dispatch-test");
  await provision(nc);
  const closers: Context["closers"] = [];
  const engines = [new ScriptedEngine(), new ScriptedEngine()];
  const runnerIds: string[] = [];
  for (const [i, engine] of engines.entries()) {
    const runner = await startRunner({ nc, dataDir, capacity: 2, runnerId: `runner-${i}`, logger, engine, images: new ScriptedImages() });
    closers.push(runner.close);
    runnerIds.push(runner.runnerId);
  }
  const scheduler = await startScheduler({ nc, logger });
  closers.push(scheduler.close);
  const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger });
  closers.push(gateway.close);
  ctx = {
    nats,
    nc,
    dataDir,
    gatewayUrl: gateway.url,
    apiKey: gateway.apiKey!,
    activations: await new Kvm(nc).open(ACTIVATIONS_BUCKET),
    engines,
    runnerIds,
    closers,
  };
  // Actions every test invokes; each test gets its own by name where it counts invocations.
  await put("scripted", { exec: { kind: "nodejs", code: "function main(p) { return p; }" }, limits: { timeout: 2500, memory: 128 } });
});

test.after.always(async () => {
  if (!ctx) return;
  for (const close of ctx.closers.reverse()) await close();
  await ctx.nc.drain();
  await ctx.nats.stop();
  await rm(ctx.dataDir, { recursive: true, force: true });
});

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${ctx.gatewayUrl}/api/v1/namespaces/_${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(ctx.apiKey).toString("base64")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const put = (name: string, body: unknown) => api("PUT", `/actions/${name}?overwrite=true`, body);
const invoke = (name: string, script: Script | Record<string, unknown>) => api("POST", `/actions/${name}?blocking=true`, script);

async function storedActivation(activationId: string): Promise<Activation | undefined> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const entry = await ctx.activations.get(activationId);
    if (entry?.operation === "PUT") return entry.json<Activation>();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

const annotation = (activation: Activation, key: string) => activation.annotations.find((a) => a.key === key)?.value;

// --- builds ---------------------------------------------------------------------------------------

test("PUT builds through a runner: its code hash is kept, its compiler error refused", async (t) => {
  const ok = await put("built", { exec: { kind: "c", code: "int main;" } });
  t.is(ok.status, 200);
  const bad = await put("unbuildable", { exec: { kind: "c", code: CODE_THAT_FAILS_TO_BUILD } });
  t.is(bad.status, 400);
  t.is(bad.body.error, "action.c:1:1: error: unknown type name 'does'");
});

// --- the records ----------------------------------------------------------------------------------

test("a successful invocation: record, logs and annotations as OpenWhisk's", async (t) => {
  const res = await invoke("scripted", { greeting: "hi", logs: ["first line", "second\nthird"] });
  t.is(res.status, 200);
  const activation = res.body as Activation;
  t.like(activation, {
    name: "scripted",
    namespace: "guest",
    version: "0.0.1",
    response: { status: "success", statusCode: 0, success: true },
  });
  t.is(activation.response.result.greeting, "hi");
  t.is(activation.duration, activation.end - activation.start);
  t.is(annotation(activation, "kind"), "nodejs");
  t.deepEqual(annotation(activation, "limits"), { timeout: 2500, memory: 128 });
  t.is(annotation(activation, "path"), "guest/scripted");
  t.true((annotation(activation, "waitTime") as number) >= 0);
  t.is(activation.logs.length, 3, "a multi-line write becomes one entry per line");
  t.regex(activation.logs[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z stdout: first line$/);
  t.regex(activation.logs[1]!, /Z stderr: second$/);
  t.regex(activation.logs[2]!, /Z stderr: third$/);
  t.deepEqual(await storedActivation(activation.activationId), activation);
});

test("the engine gets the JS source as init, the params as JSON and the action's limits", async (t) => {
  const res = await invoke("scripted", { marker: "init-check" });
  const request = ctx.engines.flatMap((e) => e.requests).find((r) => r.params.includes("init-check"))!;
  t.is(res.status, 200);
  t.is(new TextDecoder().decode(request.init), "function main(p) { return p; }");
  t.is(request.image, "/images/nodejs");
  t.is(request.memoryMb, 128);
  t.is(request.timeoutMs, 2500);
});

const failures: Array<[string, Script, number, Activation["response"]["status"], number, RegExp]> = [
  ["app_error", { status: "app_error", result: '{"error":"bad input"}' }, 502, "application error", 1, /^bad input$/],
  ["dev_error", { status: "dev_error", error: "ReferenceError: x is not defined" }, 502, "action developer error", 2, /^ReferenceError/],
  ["timeout", { status: "timeout" }, 502, "action developer error", 2, /^The action exceeded its time limits of 2500 milliseconds\.$/],
  ["crash", { status: "crash", error: "guest page fault at 0x0" }, 502, "action developer error", 2, /page fault/],
  ["oom", { status: "oom" }, 502, "action developer error", 2, /memory limit of 128 MB/],
  ["internal", { status: "internal", error: "KVM_CREATE_VM failed" }, 500, "whisk internal error", 3, /KVM_CREATE_VM/],
  ["a non-object", { status: "ok", result: "[1,2]" }, 502, "action developer error", 2, /^The action did not return a dictionary\.$/],
  ["invalid JSON", { status: "ok", result: "{oops" }, 502, "action developer error", 2, /did not produce a valid JSON response: \{oops/],
];
for (const [what, script, httpStatus, status, statusCode, error] of failures) {
  test(`an invocation ending in ${what} is recorded as ${status}`, async (t) => {
    const res = await invoke("scripted", script);
    t.is(res.status, httpStatus);
    t.is(res.body.response.status, status);
    t.is(res.body.response.statusCode, statusCode);
    t.false(res.body.response.success);
    t.regex(res.body.response.result.error, error);
  });
}

test("truncated logs end with OpenWhisk's marker line", async (t) => {
  const res = await invoke("scripted", { logs: ["only this"], logsTruncated: true });
  t.is(res.body.logs.length, 2);
  t.true(res.body.logs[1].endsWith(`stderr: ${TRUNCATED_LOGS_MARKER}`));
});

test("an event for an action deleted while queued is recorded as a whisk internal error", async (t) => {
  const event: InvocationEvent = {
    activationId: "e".repeat(32),
    namespace: "guest",
    name: "vanished",
    params: {},
    published: Date.now(),
  };
  await jetstream(ctx.nc).publish(invokeSubject("guest"), JSON.stringify(event), { msgID: event.activationId });
  const activation = await storedActivation(event.activationId);
  t.like(activation, { response: { status: "whisk internal error", statusCode: 3, result: { error: "action no longer exists" } } });
});

test("a malformed event is dropped without holding up the ones behind it", async (t) => {
  await jetstream(ctx.nc).publish(invokeSubject("guest"), "{ not json");
  await jetstream(ctx.nc).publish(invokeSubject("guest"), JSON.stringify({ activationId: "short" }));
  const res = await invoke("scripted", { after: "malformed" });
  t.is(res.status, 200);
});

// --- placement ------------------------------------------------------------------------------------

test("a burst beyond all runners' capacity waits its turn: none runs over capacity, all succeed", async (t) => {
  await put("burst", { exec: { kind: "nodejs", code: "function main(p) { return p; }" } });
  for (const engine of ctx.engines) engine.mostAtOnce = engine.running;
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => invoke("burst", { i, sleepMs: 150 })));
  t.deepEqual(results.map((r) => r.status), Array(12).fill(200));
  for (const engine of ctx.engines) t.true(engine.mostAtOnce <= 2, `ran ${engine.mostAtOnce} at once on a runner of capacity 2`);
  // Both runners took part: the scheduler spreads over free slots.
  t.true(ctx.engines.every((engine) => engine.requests.some((r) => r.params.includes('"sleepMs":150'))));
});

test("an invocation queued while no runner is up runs once one starts", async (t) => {
  const lateDir = await mkdtemp(join(tmpdir(), "vespid-late-"));
  t.teardown(() => rm(lateDir, { recursive: true, force: true }));
  // A platform of its own, so that the shared one's runners cannot take the invocation.
  const nats = await startLocalNats({ dataDir: join(lateDir, "nats"), natsServer: await findNatsServer(loadConfig().dataDir) });
  t.teardown(nats.stop);
  const nc = await connectNats(nats.url, "late-runner-test");
  t.teardown(() => nc.close());
  await provision(nc);
  const scheduler = await startScheduler({ nc, logger });
  t.teardown(scheduler.close);
  const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir: lateDir, logger });
  t.teardown(gateway.close);
  const auth = { authorization: `Basic ${Buffer.from(gateway.apiKey!).toString("base64")}`, "content-type": "application/json" };

  // The action is created while a runner is up (PUT needs a build), then the runner goes away.
  const engine = new ScriptedEngine();
  const first = await startRunner({ nc, dataDir: lateDir, capacity: 1, logger, engine, images: new ScriptedImages() });
  const created = await fetch(`${gateway.url}/api/v1/namespaces/_/actions/late`, {
    method: "PUT",
    headers: auth,
    body: JSON.stringify({ exec: { kind: "c", code: "int main;" } }),
  });
  t.is(created.status, 200);
  await first.close();

  const queued = await fetch(`${gateway.url}/api/v1/namespaces/_/actions/late`, { method: "POST", headers: auth, body: "{}" });
  const { activationId } = (await queued.json()) as { activationId: string };
  // Long enough for the scheduler to try the stopped runner (still in its table), learn it is gone
  // and park the event instead of spending its deliveries.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const second = await startRunner({ nc, dataDir: lateDir, capacity: 1, logger, engine, images: new ScriptedImages() });
  t.teardown(second.close);

  const kv = await new Kvm(nc).open(ACTIVATIONS_BUCKET);
  let activation: Activation | undefined;
  for (let attempt = 0; attempt < 100 && !activation; attempt++) {
    const entry = await kv.get(activationId);
    if (entry?.operation === "PUT") activation = entry.json<Activation>();
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.is(activation?.response.status, "success");
  t.true((annotation(activation!, "waitTime") as number) >= 1_500);
});

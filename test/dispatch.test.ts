// Gateway → JetStream → scheduler → runner → activation record, on a real nats-server, with real
// runners: every invocation runs a real C or JavaScript action in a KVM virtine through the native
// engine, and every image is built by the runners' real image store. What is tested is the
// placement, the bookkeeping and the records; each way an invocation can end is produced by code
// that really ends that way.
import test from "ava";
import { startProvisionedNats } from "./harness.ts";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import {
  ACTIONS_BUCKET,
  ACTIVATIONS_BUCKET,
  INVOCATIONS_STREAM,
  actionKey,
  activationKey,
  invokeSubject,
  type Action,
  type Activation,
  type InvocationEvent,
} from "../contracts/index.ts";
import { startGateway } from "../gateway/index.ts";
import type { LocalNats } from "../infra/nats-server.ts";
import { startRunner } from "../runner/index.ts";
import { LOG_LIMIT_UNIT, truncatedLogsMarker } from "../runner/logs-format.ts";
import { startScheduler } from "../scheduler/index.ts";

/** limits.logs of 1 (MB): the engine keeps this many log bytes. */
const LOG_LIMIT_BYTES = LOG_LIMIT_UNIT;
const TRUNCATED_LOGS_MARKER = truncatedLogsMarker(LOG_LIMIT_BYTES);

const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });
const RUNNER_CAPACITY = 2;

interface Context {
  nats: LocalNats;
  nc: NatsConnection;
  /** Shared by the gateway and both runners, whose image cache is `<dataDir>/images`. */
  dataDir: string;
  gatewayUrl: string;
  apiKey: string;
  actions: KV;
  activations: KV;
  runnerIds: string[];
  closers: Array<() => Promise<void>>;
}

let ctx: Context;

test.before(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-dispatch-test-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "dispatch-test");
  const closers: Context["closers"] = [];
  const runnerIds: string[] = [];
  for (let i = 0; i < 2; i++) {
    // The real engine and image store: no `engine` or `images` given.
    const runner = await startRunner({ nc, dataDir, capacity: RUNNER_CAPACITY, runnerId: `runner-${i}`, logger });
    closers.push(runner.close);
    runnerIds.push(runner.runnerId);
  }
  const scheduler = await startScheduler({ nc, logger });
  closers.push(scheduler.close);
  const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger });
  closers.push(gateway.close);
  const kvm = new Kvm(nc);
  ctx = {
    nats,
    nc,
    dataDir,
    gatewayUrl: gateway.url,
    apiKey: gateway.apiKey!,
    actions: await kvm.open(ACTIONS_BUCKET),
    activations: await kvm.open(ACTIVATIONS_BUCKET),
    runnerIds,
    closers,
  };
});

test.after.always(async () => {
  if (!ctx) return;
  for (const close of ctx.closers.reverse()) await close();
  await ctx.nc.drain();
  await ctx.nats.stop();
  await rm(ctx.dataDir, { recursive: true, force: true });
});

// --- helpers --------------------------------------------------------------------------------------

async function request(baseUrl: string, apiKey: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}/api/v1/namespaces/_${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(apiKey).toString("base64")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const api = (method: string, path: string, body?: unknown) => request(ctx.gatewayUrl, ctx.apiKey, method, path, body);
const put = (name: string, body: unknown) => api("PUT", `/actions/${name}?overwrite=true`, body);
const invoke = (name: string, params: Record<string, unknown> = {}) => api("POST", `/actions/${name}?blocking=true`, params);

/** PUTs an action and fails the test unless it was built and stored. */
async function created(t: { is(a: unknown, b: unknown, m?: string): void }, name: string, kind: "c" | "nodejs", code: string, limits?: Record<string, number>) {
  const res = await put(name, { exec: { kind, code }, ...(limits && { limits }) });
  t.is(res.status, 200, `PUT ${name}: ${JSON.stringify(res.body)}`);
}

/** Reads the record straight from the bucket; every action in this file is in the default namespace. */
async function storedActivation(activations: KV, activationId: string, namespace = "guest"): Promise<Activation | undefined> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const entry = await activations.get(activationKey(namespace, activationId));
    if (entry?.operation === "PUT") return entry.json<Activation>();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

const annotation = (activation: Activation, key: string) => activation.annotations.find((a) => a.key === key)?.value;

/** The most of `spans` that overlap at any moment; one that ends as another starts does not overlap it. */
function mostAtOnce(spans: Array<{ start: number; end: number }>): number {
  const points = spans.flatMap((s) => [[s.start, 1], [s.end, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, delta] of points) most = Math.max(most, (now += delta));
  return most;
}

// --- actions --------------------------------------------------------------------------------------

/** Returns its params. */
const C_ECHO = `#include <vespid.h>
const char *vespid_main(const char *params) { return params; }
`;

/** Sleeps `ms` (the engine emulates nanosleep), then returns its params. */
const cSleeper = (ms: number) => `#include <time.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    struct timespec pause = { ${Math.floor(ms / 1000)}, ${(ms % 1000) * 1_000_000}L };
    nanosleep(&pause, 0);
    return params;
}
`;

const cReturning = (text: string) => `#include <vespid.h>
const char *vespid_main(const char *params) { return ${JSON.stringify(text)}; }
`;

// --- builds ---------------------------------------------------------------------------------------

test("PUT builds through a runner: its code hash names the image it built, its compiler error is refused", async (t) => {
  await created(t, "built", "c", C_ECHO);
  const stored = (await ctx.actions.get(actionKey("guest", "built")))!.json<Action>();
  t.regex(stored.codeHash, /^[0-9a-f]{64}$/);
  const image = await readFile(join(ctx.dataDir, "images", `${stored.codeHash}.elf`));
  t.deepEqual([...image.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], "the cached image is an ELF file");
  const run = await invoke("built", { built: true });
  t.is(run.status, 200);
  t.deepEqual(run.body.response.result, { built: true });

  const bad = await put("unbuildable", { exec: { kind: "c", code: "int main( {" } });
  t.is(bad.status, 400);
  const [first, ...rest] = (bad.body.error as string).split("\n");
  t.is(first, "action.c:1:11: error: expected declaration specifiers or '...' before '{' token");
  t.regex(rest.join("\n"), /^\s+1 \| int main\( \{$/m, "gcc quotes the offending line");
  t.is(await ctx.actions.get(actionKey("guest", "unbuildable")), null);
});

// --- the records ----------------------------------------------------------------------------------

test("a successful invocation: record, logs and annotations as OpenWhisk's", async (t) => {
  await created(t, "logger-js", "nodejs", `function main(params) {
  console.log("first line");
  console.error("second\\nthird");
  return params;
}`, { timeout: 2500, memory: 128 });
  const res = await invoke("logger-js", { greeting: "hi" });
  t.is(res.status, 200);
  const activation = res.body as Activation;
  t.like(activation, {
    name: "logger-js",
    namespace: "guest",
    version: "0.0.1",
    response: { status: "success", statusCode: 0, success: true },
  });
  t.deepEqual(activation.response.result, { greeting: "hi" });
  t.is(activation.duration, activation.end - activation.start);
  t.is(annotation(activation, "kind"), "nodejs");
  t.deepEqual(annotation(activation, "limits"), { timeout: 2500, memory: 128, logs: 10 });
  t.is(annotation(activation, "path"), "guest/logger-js");
  t.true((annotation(activation, "waitTime") as number) >= 0);
  t.is(activation.logs.length, 3, `a multi-line write becomes one entry per line: ${activation.logs.join("\n")}`);
  t.regex(activation.logs[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z stdout: first line$/);
  t.regex(activation.logs[1]!, /Z stderr: second$/);
  t.regex(activation.logs[2]!, /Z stderr: third$/);
  t.deepEqual(await storedActivation(ctx.activations, activation.activationId), activation);
});

test("the guest gets the action's JS source, the params as JSON and the action's limits", async (t) => {
  const code = `function main(params) {
  if (params.spin) for (;;) {}
  if (params.hog) { const kept = []; for (;;) kept.push(new Uint8Array(4 << 20).fill(1)); }
  return { params, source: main.toString() };
}`;
  await created(t, "limited-js", "nodejs", code, { timeout: 1500, memory: 48 });
  const params = { marker: "init-check", text: 'é ✓ "quoted"\n', list: [1, 2.5, null, true], nested: { deep: { empty: [] } } };
  const res = await invoke("limited-js", params);
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.response.result, { params, source: code });
  t.deepEqual(annotation(res.body, "limits"), { timeout: 1500, memory: 48, logs: 10 });

  // The limits are the engine's, not just the record's: it stops the guest at 1.5 s and 48 MiB (a
  // time limit with room for the memory hog to reach its limit first on a busy machine).
  const spun = await invoke("limited-js", { spin: true });
  t.is(spun.status, 502);
  t.is(spun.body.response.result.error, "The action exceeded its time limits of 1500 milliseconds.");
  t.true(spun.body.duration >= 1500 && spun.body.duration < 1500 + 2000, `duration ${spun.body.duration}`);
  const hogged = await invoke("limited-js", { hog: true });
  t.is(hogged.status, 502);
  t.regex(hogged.body.response.result.error, /^out of memory: the function needed more than its 48 MiB/);
});

interface Failure {
  what: string;
  kind: "c" | "nodejs";
  code: string;
  limits?: Record<string, number>;
  httpStatus: number;
  status: Activation["response"]["status"];
  statusCode: number;
  error: RegExp;
  /** Runs between the PUT and the invocation. */
  prepare?: (name: string) => Promise<void>;
}

/** Overwrites the image the runners cached for the action with bytes that are no guest image. */
async function damageImage(name: string): Promise<void> {
  const { codeHash } = (await ctx.actions.get(actionKey("guest", name)))!.json<Action>();
  await writeFile(join(ctx.dataDir, "images", `${codeHash}.elf`), "this is not an ELF image\n");
}

const failures: Failure[] = [
  { what: "an application error", kind: "nodejs", code: 'function main() { return { error: "bad input" }; }', httpStatus: 502, status: "application error", statusCode: 1, error: /^bad input$/ },
  { what: "a JS exception", kind: "nodejs", code: "function main() { return x; }", httpStatus: 502, status: "action developer error", statusCode: 2, error: /^ReferenceError: 'x' is not defined\n\s+at main/ },
  { what: "vespid_fail", kind: "c", code: '#include <vespid.h>\nconst char *vespid_main(const char *p) { vespid_fail("the input is wrong"); }\n', httpStatus: 502, status: "action developer error", statusCode: 2, error: /^the input is wrong$/ },
  { what: "a timeout", kind: "c", code: "#include <vespid.h>\nconst char *vespid_main(const char *p) { for (volatile int i = 0;; i++) ; }\n", limits: { timeout: 300 }, httpStatus: 502, status: "action developer error", statusCode: 2, error: /^The action exceeded its time limits of 300 milliseconds\.$/ },
  { what: "a crash", kind: "c", code: '#include <vespid.h>\nconst char *vespid_main(const char *p) { volatile int *q = 0; return *q ? "{}" : "{}"; }\n', httpStatus: 502, status: "action developer error", statusCode: 2, error: /^the function crashed: segmentation fault reading address 0x0 / },
  { what: "out of memory", kind: "nodejs", code: "function main() { const a = []; for (;;) a.push(new Array(1e5).fill(7)); }", limits: { memory: 32 }, httpStatus: 502, status: "action developer error", statusCode: 2, error: /^out of memory: the function needed more than its 32 MiB \(InternalError: out of memory/ },
  { what: "a damaged image", kind: "c", code: cReturning('{"never": "run"}'), prepare: damageImage, httpStatus: 500, status: "whisk internal error", statusCode: 3, error: /^could not start the (virtine|sandbox): the image is not a valid guest image$/ },
  { what: "an array", kind: "c", code: cReturning("[1,2]"), httpStatus: 502, status: "action developer error", statusCode: 2, error: /^The action did not return a dictionary\.$/ },
  { what: "a number", kind: "nodejs", code: "function main() { return 42; }", httpStatus: 502, status: "action developer error", statusCode: 2, error: /^The action did not return a dictionary\.$/ },
  { what: "invalid JSON", kind: "c", code: cReturning("{oops"), httpStatus: 502, status: "action developer error", statusCode: 2, error: /^The action did not produce a valid JSON response: \{oops$/ },
];
for (const [i, failure] of failures.entries()) {
  test(`an invocation ending in ${failure.what} is recorded as ${failure.status}`, async (t) => {
    const name = `failing-${i}`;
    await created(t, name, failure.kind, failure.code, failure.limits);
    await failure.prepare?.(name);
    const res = await invoke(name);
    t.is(res.status, failure.httpStatus, JSON.stringify(res.body));
    t.is(res.body.response.status, failure.status);
    t.is(res.body.response.statusCode, failure.statusCode);
    t.false(res.body.response.success);
    t.regex(res.body.response.result.error, failure.error);
    t.deepEqual(await storedActivation(ctx.activations, res.body.activationId), res.body);
  });
}

test("logs beyond the action's limit are cut and end with OpenWhisk's marker line", async (t) => {
  // 2 MiB of output, twice the limit of 1 MB, after one short line.
  await created(t, "chatty-c", "c", `#include <stdio.h>
#include <string.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    static char line[1025];
    memset(line, 'x', 1024);
    printf("first line\\n");
    for (int i = 0; i < 2048; i++) printf("%s\\n", line);
    return "{\\"done\\": true}";
}`, { logs: 1 });
  const res = await invoke("chatty-c");
  t.is(res.status, 200);
  t.deepEqual(res.body.response.result, { done: true });
  const logs = res.body.logs as string[];
  t.regex(logs[0]!, /Z stdout: first line$/);
  t.true(logs.at(-1)!.endsWith(`stderr: ${TRUNCATED_LOGS_MARKER}`));
  t.is(logs.filter((l) => l.includes(TRUNCATED_LOGS_MARKER)).length, 1);
  t.true(logs.length > 2 && logs.length < 2 + 2048, `${logs.length} entries`);
  t.true(logs.slice(1, -2).every((l) => /Z stdout: x{1024}$/.test(l)), "the lines kept are whole lines of x, but maybe the last");
  const kept = logs.slice(1, -1).reduce((sum, l) => sum + l.length - l.indexOf(": ") - 2, 0);
  t.true(kept <= LOG_LIMIT_BYTES && kept > LOG_LIMIT_BYTES / 2, `${kept} log bytes kept`);
});

test("a malformed event is dropped without holding up the ones behind it", async (t) => {
  await created(t, "echo-c", "c", C_ECHO);
  await jetstream(ctx.nc).publish(invokeSubject("guest"), "{ not json");
  await jetstream(ctx.nc).publish(invokeSubject("guest"), JSON.stringify({ activationId: "short" }));
  const res = await invoke("echo-c", { after: "malformed" });
  t.is(res.status, 200);
  t.deepEqual(res.body.response.result, { after: "malformed" });
});

// --- placement ------------------------------------------------------------------------------------

// Serial, so that no other test's invocations share the runners while their load is measured.
test.serial("a burst beyond all runners' capacity waits its turn: none runs over capacity, all succeed", async (t) => {
  await created(t, "burst-c", "c", cSleeper(300));
  // Which runner took which invocation, as the scheduler (or, for these blocking calls, the gateway
  // directly) sent it: a listener on the runners' assignment and direct-call subjects (it never
  // answers, the runner does). A refused call is sent again later (or elsewhere), so the last one
  // seen for an activation is the runner that ran it.
  const ranOn = new Map<string, string>();
  const tap = ctx.nc.subscribe("vespid.runner.*.*", {
    callback: (_err, msg) => {
      if (/\.(assign|run)$/.test(msg.subject)) ranOn.set(msg.json<InvocationEvent>().activationId, msg.subject.split(".")[2]!);
    },
  });
  t.teardown(() => tap.unsubscribe());
  await ctx.nc.flush();

  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => invoke("burst-c", { i })));
  t.deepEqual(results.map((r) => r.status), Array(12).fill(200));
  t.deepEqual(results.map((r) => r.body.response.result.i), Array.from({ length: 12 }, (_, i) => i));
  const activations = results.map((r) => r.body as Activation);
  t.true(activations.every((a) => a.duration >= 300), "each slept its 300 ms");
  for (const runnerId of ctx.runnerIds) {
    const mine = activations.filter((a) => ranOn.get(a.activationId) === runnerId);
    // Both runners took part: the scheduler spreads over free slots.
    t.true(mine.length > 0, `${runnerId} ran none of the burst`);
    const most = mostAtOnce(mine);
    t.true(most <= RUNNER_CAPACITY, `${runnerId} ran ${most} at once with a capacity of ${RUNNER_CAPACITY}`);
  }
  t.is(ranOn.size, 12, "every invocation was assigned to a known runner");
  t.true(mostAtOnce(activations) > RUNNER_CAPACITY, "the runners ran side by side");
});

/** A platform of its own, without runners, so that the shared one's runners cannot take its work. */
async function isolatedPlatform(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), "vespid-isolated-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { nats, nc } = await startProvisionedNats(dir, "isolated-test");
  t.teardown(nats.stop);
  t.teardown(() => nc.close());
  const scheduler = await startScheduler({ nc, logger });
  t.teardown(scheduler.close);
  const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir: dir, logger });
  t.teardown(gateway.close);
  return {
    nc,
    api: (method: string, path: string, body?: unknown) => request(gateway.url, gateway.apiKey!, method, path, body),
    activations: await new Kvm(nc).open(ACTIVATIONS_BUCKET),
    /** A real runner of capacity 1; stop it with close(). */
    startRunner: () => startRunner({ nc, dataDir: dir, capacity: 1, logger }),
  };
}

test("an invocation queued while no runner is up runs once one starts", async (t) => {
  const platform = await isolatedPlatform(t);
  // The action is created while a runner is up (PUT needs a build), then the runner goes away.
  const first = await platform.startRunner();
  t.is((await platform.api("PUT", "/actions/late", { exec: { kind: "c", code: C_ECHO } })).status, 200);
  await first.close();

  const queued = await platform.api("POST", "/actions/late", { late: true });
  t.is(queued.status, 202);
  // Long enough for the scheduler to try the stopped runner (still in its table), learn it is gone
  // and park the event instead of spending its deliveries.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const second = await platform.startRunner();
  t.teardown(second.close);

  const activation = await storedActivation(platform.activations, queued.body.activationId);
  t.is(activation?.response.status, "success");
  t.deepEqual(activation?.response.result, { late: true });
  t.true((annotation(activation!, "waitTime") as number) >= 1_500);
});

test("an action deleted while its invocation is queued is recorded as a whisk internal error", async (t) => {
  const platform = await isolatedPlatform(t);
  const first = await platform.startRunner();
  t.is((await platform.api("PUT", "/actions/vanishing", { exec: { kind: "nodejs", code: "function main(p) { return p; }" } })).status, 200);
  await first.close();

  // A blocking caller, waiting while no runner is up to take the invocation.
  const pending = platform.api("POST", "/actions/vanishing?blocking=true", {});
  const jsm = await jetstreamManager(platform.nc);
  for (let attempt = 0; (await jsm.streams.info(INVOCATIONS_STREAM)).state.messages === 0; attempt++) {
    if (attempt === 200) throw new Error("the invocation was never queued");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.is((await platform.api("DELETE", "/actions/vanishing")).status, 200);
  const second = await platform.startRunner();
  t.teardown(second.close);

  const res = await pending;
  t.is(res.status, 500);
  t.like(res.body, {
    name: "vanishing",
    response: { status: "whisk internal error", statusCode: 3, success: false, result: { error: "action no longer exists" } },
  });
  t.deepEqual(await storedActivation(platform.activations, res.body.activationId), res.body);
});

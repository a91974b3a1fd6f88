// Tests of the gateway's HTTP API through app.request(), against a real nats-server. Where a route
// needs a runner, a real one builds and runs the actions (the real image store and KVM engine),
// placed by a real scheduler. Both start on first need: the tests that need no runner, and those
// that look at invocation events waiting on the stream, run serially before that.
import test from "ava";
import { startProvisionedNats } from "./harness.ts";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import {
  ACTIONS_BUCKET,
  ACTIVATIONS_BUCKET,
  AUTH_BUCKET,
  INVOCATIONS_STREAM,
  actionKey,
  invokeSubject,
  type Action,
  type InvocationEvent,
} from "../contracts/index.ts";
import { createApp } from "../gateway/app.ts";
import { MAX_BODY_BYTES } from "../gateway/body.ts";
import { createApiKey, formatApiKey } from "../gateway/keys.ts";
import { openGatewayServices, type GatewayServices } from "../gateway/services.ts";
import { startGateway } from "../gateway/index.ts";
import type { LocalNats } from "../infra/nats-server.ts";
import { startRunner, type Runner } from "../runner/index.ts";
import { startScheduler } from "../scheduler/index.ts";

/** Short, so the test of a blocking call that outlives its wait does not take a minute. */
const BLOCKING_WAIT_MS = 1_500;
const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });

interface Context {
  nats: LocalNats;
  nc: NatsConnection;
  jsm: JetStreamManager;
  dataDir: string;
  services: GatewayServices;
  app: ReturnType<typeof createApp>;
  kv: { actions: KV; activations: KV; auth: KV };
  /** `uuid:key` of the default namespace, guest. */
  guestKey: string;
}

let ctx: Context;

test.before(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-gateway-test-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "gateway-test");
  const kvm = new Kvm(nc);
  const [actions, activations, auth] = await Promise.all([ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET].map((b) => kvm.open(b)));
  const services = await openGatewayServices({ nc, dataDir, logger, blockingWaitMs: BLOCKING_WAIT_MS });
  ctx = {
    nats,
    nc,
    jsm: await jetstreamManager(nc),
    dataDir,
    services,
    app: createApp(services.deps),
    kv: { actions: actions!, activations: activations!, auth: auth! },
    guestKey: services.apiKey!,
  };
});

test.after.always(async () => {
  // The scheduler first: it waits for the placements under way, which need the runner to finish.
  await (await scheduler)?.close();
  await (await runner)?.close();
  if (!ctx) return;
  ctx.services.close();
  await ctx.nc.drain();
  await ctx.nats.stop();
  await rm(ctx.dataDir, { recursive: true, force: true });
});

// --- helpers --------------------------------------------------------------------------------------

interface CallOptions {
  /** `uuid:key`; the guest key by default, false for none. */
  auth?: string | false;
  /** An object is sent as JSON; a string or stream as is. */
  body?: unknown;
  headers?: Record<string, string>;
}

async function call(method: string, path: string, opts: CallOptions = {}) {
  const headers = new Headers(opts.headers);
  const auth = opts.auth ?? ctx.guestKey;
  if (auth !== false) headers.set("authorization", `Basic ${Buffer.from(auth).toString("base64")}`);
  let body: BodyInit | undefined;
  if (typeof opts.body === "string" || opts.body instanceof ReadableStream) body = opts.body;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  const init: RequestInit & { duplex?: "half" } = { method, headers, body };
  if (body instanceof ReadableStream) init.duplex = "half";
  const res = await ctx.app.request(path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** A fresh namespace with its own key, so tests that list or count do not see each other's work. */
async function newNamespace(prefix: string): Promise<{ namespace: string; key: string }> {
  const namespace = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  return { namespace, key: formatApiKey(await createApiKey(ctx.kv.auth, namespace)) };
}

let runner: Promise<Runner> | undefined;
let scheduler: Promise<{ close(): Promise<void> }> | undefined;

/**
 * Starts, once, a real runner (real image store and KVM engine) that builds on PUT. Until
 * ensureScheduler() is called nothing runs invocations: their events wait on the stream.
 */
async function ensureRunner(): Promise<void> {
  runner ??= startRunner({ nc: ctx.nc, dataDir: join(ctx.dataDir, "runner"), capacity: 2, logger });
  await runner;
}

/** Starts, once, the runner and a real scheduler that places invocations on it. */
async function ensureScheduler(): Promise<void> {
  await ensureRunner();
  scheduler ??= startScheduler({ nc: ctx.nc, logger });
  await scheduler;
}

/** PUTs an action in the namespace of `key` and fails the test unless it was built and stored. */
async function created(t: { is(a: unknown, b: unknown, m?: string): void }, key: string, name: string, body: unknown) {
  const res = await call("PUT", `/api/v1/namespaces/_/actions/${name}`, { auth: key, body });
  t.is(res.status, 200, `PUT ${name}: ${JSON.stringify(res.body)}`);
  return res.body as Action;
}

const JS_ECHO = "function main(params) { return params; }";
/** Sleeps `ms` (the engine emulates nanosleep), then answers {slept: ms}. */
const cSleeper = (ms: number) => `#include <time.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    struct timespec pause = { ${Math.floor(ms / 1000)}, ${(ms % 1000) * 1_000_000}L };
    nanosleep(&pause, 0);
    return "{\\"slept\\": ${ms}}";
}
`;
const cReturning = (text: string) => `#include <vespid.h>
const char *vespid_main(const char *params) { return ${JSON.stringify(text)}; }
`;

const CODE_THAT_FAILS_TO_BUILD = "int main( {";
/** What gcc says about it, first line. */
const COMPILER_ERROR = "action.c:1:11: error: expected declaration specifiers or '...' before '{' token";

/** The newest invocation event queued in `namespace`, if any. */
async function lastQueued(namespace: string): Promise<{ seq: number; event: InvocationEvent } | undefined> {
  const message = await ctx.jsm.streams.getMessage(INVOCATIONS_STREAM, { last_by_subj: invokeSubject(namespace) }).catch(() => null);
  return message ? { seq: message.seq, event: message.json<InvocationEvent>() } : undefined;
}

/** Polls until the newest event in `namespace` satisfies `wanted`. */
async function waitForQueued(namespace: string, wanted: (queued: { seq: number; event: InvocationEvent }) => boolean): Promise<InvocationEvent> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const queued = await lastQueued(namespace);
    if (queued && wanted(queued)) return queued.event;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the expected invocation event in ${namespace} never arrived`);
}

const queuedEvent = (namespace: string, activationId: string) =>
  waitForQueued(namespace, ({ event }) => event.activationId === activationId);

/** Polls GET activations/{id} until the runner has stored it. */
async function activationEventually(key: string, activationId: string) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const res = await call("GET", `/api/v1/namespaces/_/activations/${activationId}`, { auth: key });
    if (res.status === 200) return res.body;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`activation ${activationId} never appeared`);
}

// --- tests that need no runner (serial: they run before anything starts the runner) --------------

test.serial("PUT answers 503 when no runner is there to build the code", async (t) => {
  t.is(runner, undefined, "no runner may have started yet");
  const res = await call("PUT", "/api/v1/namespaces/_/actions/nobuilder", { body: { exec: { kind: "c", code: "int x;" } } });
  t.is(res.status, 503);
  t.regex(res.body.error, /no runner/);
  t.is(await ctx.kv.actions.get(actionKey("guest", "nobuilder")), null);
});

// --- invocation events on the stream (serial: before anything starts the scheduler, which would
// --- take them off it) ----------------------------------------------------------------------------

test.serial("a non-blocking invoke answers 202 with a 32-hex id and queues the event on the stream", async (t) => {
  await ensureRunner();
  t.is(scheduler, undefined, "no scheduler may have started yet");
  const { key, namespace } = await newNamespace("invoke");
  await created(t, key, "fire", { exec: { kind: "nodejs", code: JS_ECHO } });
  const res = await call("POST", "/api/v1/namespaces/_/actions/fire", { auth: key, body: { answer: 42 } });
  t.is(res.status, 202);
  t.regex(res.body.activationId, /^[0-9a-f]{32}$/);
  const event = await queuedEvent(namespace, res.body.activationId);
  t.like(event, { namespace, name: "fire", params: { answer: 42 } });
  // Not blocking, yet a reply subject: the gateway learns when the call ends, to free its slot
  // in the namespace's concurrency limit (gateway/limits.ts).
  t.is(event.replyTo, `vespid.result.${event.replyTo?.split(".")[2]}.${res.body.activationId}`);
  t.regex(event.replyTo ?? "", /^vespid\.result\.gw-[0-9a-f]{12}\./);
  t.true(Math.abs(Date.now() - event.published) < 10_000);
});

test.serial("invoke params: an empty body means {}, a non-object is a 400", async (t) => {
  await ensureRunner();
  t.is(scheduler, undefined, "no scheduler may have started yet");
  const { key, namespace } = await newNamespace("params");
  await created(t, key, "p", { exec: { kind: "nodejs", code: JS_ECHO } });
  const empty = await call("POST", "/api/v1/namespaces/_/actions/p", { auth: key });
  t.is(empty.status, 202);
  t.deepEqual((await queuedEvent(namespace, empty.body.activationId)).params, {});
  for (const body of ["[1,2]", "42", '"text"', "null"]) {
    const res = await call("POST", "/api/v1/namespaces/_/actions/p", { auth: key, body, headers: { "content-type": "application/json" } });
    t.is(res.status, 400, body);
    t.is(res.body.error, "body: the parameters must be a JSON object");
  }
});

test.serial("closing the gateway answers waiting blocking callers with 202 instead of holding them", async (t) => {
  await ensureRunner();
  t.is(scheduler, undefined, "no scheduler may have started yet: the invocation must still be waiting");
  const { key, namespace } = await newNamespace("closing");
  await created(t, key, "waits", { exec: { kind: "nodejs", code: JS_ECHO } });
  const gateway = await startGateway({ nc: ctx.nc, port: 0, host: "127.0.0.1", dataDir: ctx.dataDir, logger });
  const waiting = fetch(`${gateway.url}/api/v1/namespaces/_/actions/waits?blocking=true`, {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(key).toString("base64")}` },
  });
  const event = await waitForQueued(namespace, () => true);
  t.truthy(event.replyTo, "a blocking invocation is queued with a reply subject");
  const started = Date.now();
  await gateway.close();
  const res = await waiting;
  t.is(res.status, 202);
  t.is(((await res.json()) as { activationId: string }).activationId, event.activationId);
  t.true(Date.now() - started < 2_000);
});

// --- health and auth ------------------------------------------------------------------------------

test("health and API info need no credentials", async (t) => {
  const health = await call("GET", "/health", { auth: false });
  t.is(health.status, 200);
  t.is(health.body.status, "ok");
  const info = await call("GET", "/api/v1", { auth: false });
  t.is(info.status, 200);
  t.deepEqual(Object.keys(info.body.runtimes).sort(), ["c", "nodejs"]);
  t.deepEqual(info.body.runtimes.nodejs.map((r: { kind: string }) => r.kind), ["nodejs", "nodejs:default", "nodejs:20"]);
  t.deepEqual(info.body.runtimes.c, [{ kind: "c", default: true }]);
});

test("the default key is written to auth.key (0600) and reused by the next start", async (t) => {
  const keyFile = join(ctx.dataDir, "auth.key");
  t.is((await readFile(keyFile, "utf8")).trim(), ctx.guestKey);
  t.is((await stat(keyFile)).mode & 0o777, 0o600);
  t.regex(ctx.guestKey, /^[0-9a-f-]{36}:[0-9a-f]{64}$/);
  const again = await openGatewayServices({ nc: ctx.nc, dataDir: ctx.dataDir, logger });
  again.close();
  t.is(again.apiKey, ctx.guestKey);
  // The bucket keeps the hash only.
  const record = (await ctx.kv.auth.get(ctx.guestKey.split(":")[0]!))!.json<Record<string, string>>();
  t.is(record.namespace, "guest");
  t.false(JSON.stringify(record).includes(ctx.guestKey.split(":")[1]!));
});

test("no, malformed or wrong credentials get 401 with a Basic challenge", async (t) => {
  const [uuid] = ctx.guestKey.split(":");
  for (const auth of [false, `${uuid}:${"0".repeat(64)}`, "not-a-uuid:key", "nocolon"] as const) {
    const res = await call("GET", "/api/v1/namespaces/_/actions", { auth });
    t.is(res.status, 401, `auth ${auth}`);
    t.regex(res.headers.get("www-authenticate") ?? "", /^Basic/);
    t.is(res.body.error, "The supplied authentication is invalid.");
    t.is(res.body.code, res.headers.get("x-request-id"));
  }
  const garbled = await call("GET", "/api/v1/namespaces/_/actions", { auth: false, headers: { authorization: "Basic %%%" } });
  t.is(garbled.status, 401);
});

test("another namespace than the caller's is forbidden; `_` and its own name are fine", async (t) => {
  const other = await newNamespace("other");
  t.is((await call("GET", `/api/v1/namespaces/${other.namespace}/actions`)).status, 403);
  t.is((await call("GET", "/api/v1/namespaces/guest/actions/x", { auth: other.key })).status, 403);
  t.is((await call("GET", `/api/v1/namespaces/${other.namespace}/actions`, { auth: other.key })).status, 200);
  t.is((await call("GET", "/api/v1/namespaces/_/actions", { auth: other.key })).status, 200);
});

// --- requests refused before any build ------------------------------------------------------------

test("malformed JSON is a 400 saying so", async (t) => {
  const res = await call("PUT", "/api/v1/namespaces/_/actions/broken", {
    body: '{"exec": {"kind": "c",',
    headers: { "content-type": "application/json" },
  });
  t.is(res.status, 400);
  t.is(res.body.error, "request body is not valid JSON");
  t.regex(res.body.code, /^[0-9a-f]{16}$/);
});

test("a body that is not declared JSON is a 415", async (t) => {
  const res = await call("PUT", "/api/v1/namespaces/_/actions/plain", {
    body: JSON.stringify({ exec: { kind: "c", code: "int x;" } }),
    headers: { "content-type": "text/plain" },
  });
  t.is(res.status, 415);
});

test("an unknown kind is a 400 naming exec.kind", async (t) => {
  const res = await call("PUT", "/api/v1/namespaces/_/actions/javaish", { body: { exec: { kind: "java", code: "class A {}" } } });
  t.is(res.status, 400);
  t.is(res.body.error, "exec.kind: Invalid discriminator value. Expected 'nodejs' | 'nodejs:default' | 'nodejs:20' | 'c' | 'sequence'");
});

test("limits out of range and unknown fields are 400s naming them", async (t) => {
  const res = await call("PUT", "/api/v1/namespaces/_/actions/limits", {
    body: { exec: { kind: "c", code: "int x;" }, limits: { memory: 4096 }, extra: true },
  });
  t.is(res.status, 400);
  t.regex(res.body.error, /limits\.memory: /);
  t.regex(res.body.error, /body: Unrecognized key: "extra"/);
});

test("a bad name is a 400 naming the field name", async (t) => {
  for (const name of ["-dash-first", "dollar$sign", encodeURIComponent("trailing ")]) {
    const res = await call("PUT", `/api/v1/namespaces/_/actions/${name}`, { body: { exec: { kind: "c", code: "int x;" } } });
    t.is(res.status, 400, name);
    t.regex(res.body.error, /^name: /, name);
  }
  t.is((await call("POST", "/api/v1/namespaces/_/actions/bad$name")).status, 400);
});

test("a body over 5 MiB is a 413, whether its length is declared or streamed", async (t) => {
  const big = JSON.stringify({ exec: { kind: "nodejs", code: "x".repeat(MAX_BODY_BYTES) } });
  const declared = await call("PUT", "/api/v1/namespaces/_/actions/big", {
    body: big,
    headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(big)) },
  });
  t.is(declared.status, 413);
  t.regex(declared.body.error, /larger than/);

  const chunk = new Uint8Array(1024 * 1024).fill(0x20);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 6) controller.enqueue(chunk);
      else controller.close();
    },
  });
  const streamed = await call("POST", "/api/v1/namespaces/_/actions/big", { body: stream, headers: { "content-type": "application/json" } });
  t.is(streamed.status, 413);
});

test("unknown actions are 404 on get, delete and invoke; unknown routes are 404 JSON", async (t) => {
  for (const method of ["GET", "DELETE", "POST"]) {
    const res = await call(method, "/api/v1/namespaces/_/actions/does-not-exist");
    t.is(res.status, 404, method);
    t.is(res.body.error, "The requested resource does not exist.");
  }
  const route = await call("GET", "/api/v1/nothing-here", { auth: false });
  t.is(route.status, 404);
  t.is(route.body.error, "The requested resource does not exist.");
});


test("PUT without overwrite on an existing action is a 409, even before building", async (t) => {
  await ensureRunner();
  const { key } = await newNamespace("exists");
  await created(t, key, "taken", { exec: { kind: "nodejs", code: JS_ECHO } });
  // Code that would fail to build: the conflict is found first.
  const res = await call("PUT", "/api/v1/namespaces/_/actions/taken", { auth: key, body: { exec: { kind: "c", code: CODE_THAT_FAILS_TO_BUILD } } });
  t.is(res.status, 409);
});

// --- create, read, list, delete (built by the real runner) ----------------------------------------

test("create, get, list and delete an action", async (t) => {
  await ensureRunner();
  const { key } = await newNamespace("crud");
  const code = JS_ECHO;
  const made = await call("PUT", "/api/v1/namespaces/_/actions/hello", { auth: key, body: { exec: { kind: "nodejs", code }, limits: { timeout: 5000 } } });
  t.is(made.status, 200);
  t.like(made.body, {
    name: "hello",
    version: "0.0.1",
    publish: false,
    exec: { kind: "nodejs", code, binary: false },
    limits: { timeout: 5000, memory: 256 },
    annotations: [{ key: "exec", value: "nodejs" }],
  });
  t.regex(made.body.namespace, /^crud-/);

  const got = await call("GET", "/api/v1/namespaces/_/actions/hello", { auth: key });
  t.is(got.status, 200);
  t.deepEqual(got.body, made.body);

  const listed = await call("GET", "/api/v1/namespaces/_/actions", { auth: key });
  t.is(listed.status, 200);
  t.is(listed.body.length, 1);
  t.is(listed.body[0].name, "hello");
  t.is(listed.body[0].exec.code, undefined, "listings leave the code out");

  const deleted = await call("DELETE", "/api/v1/namespaces/_/actions/hello", { auth: key });
  t.is(deleted.status, 200);
  t.deepEqual(deleted.body, made.body);
  t.is((await call("GET", "/api/v1/namespaces/_/actions/hello", { auth: key })).status, 404);
  // A deleted name can be created again.
  t.is((await call("PUT", "/api/v1/namespaces/_/actions/hello", { auth: key, body: { exec: { kind: "nodejs", code } } })).status, 200);
});

test("overwrite=true replaces the code, bumps the patch version and keeps limits not given", async (t) => {
  await ensureScheduler();
  const { key } = await newNamespace("overwrite");
  await created(t, key, "evolving", { exec: { kind: "c", code: cReturning('{"v": 1}') }, limits: { timeout: 1234, memory: 128 } });
  const code = cReturning('{"v": 2}');
  const res = await call("PUT", "/api/v1/namespaces/_/actions/evolving?overwrite=true", { auth: key, body: { exec: { kind: "c", code } } });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.like(res.body, { version: "0.0.2", exec: { kind: "c", code }, limits: { timeout: 1234, memory: 128 } });
  const again = await call("PUT", "/api/v1/namespaces/_/actions/evolving?overwrite=true", { auth: key, body: { exec: { kind: "c", code } } });
  t.is(again.body.version, "0.0.3");
  // The new code is what runs, under the kept limits.
  const run = await call("POST", "/api/v1/namespaces/_/actions/evolving?blocking=true", { auth: key });
  t.is(run.status, 200, JSON.stringify(run.body));
  t.like(run.body, { version: "0.0.3", response: { result: { v: 2 } } });
  t.deepEqual(run.body.annotations.find((a: { key: string }) => a.key === "limits").value, { timeout: 1234, memory: 128, logs: 10 });
  // Overwrite of a name that does not exist simply creates it.
  const fresh = await call("PUT", "/api/v1/namespaces/_/actions/fresh?overwrite=true", { auth: key, body: { exec: { kind: "c", code } } });
  t.is(fresh.status, 200);
  t.is(fresh.body.version, "0.0.1");
});

test("of two concurrent creates of one name, exactly one wins and the other gets 409", async (t) => {
  await ensureScheduler();
  const { key } = await newNamespace("race");
  const put = (n: number) => call("PUT", "/api/v1/namespaces/_/actions/contested", { auth: key, body: { exec: { kind: "c", code: cReturning(`{"n": ${n}}`) } } });
  const results = await Promise.all([put(1), put(2), put(3)]);
  t.deepEqual(results.map((r) => r.status).sort(), [200, 409, 409]);
  // The winner's code is the one stored and run.
  const winner = [1, 2, 3].find((n) => cReturning(`{"n": ${n}}`) === results.find((r) => r.status === 200)!.body.exec.code);
  const run = await call("POST", "/api/v1/namespaces/_/actions/contested?blocking=true&result=true", { auth: key });
  t.deepEqual(run.body, { n: winner });
});

test("code that does not build is a 400 carrying the compiler's message, and nothing is stored", async (t) => {
  await ensureRunner();
  const { key, namespace } = await newNamespace("nobuild");
  const res = await call("PUT", "/api/v1/namespaces/_/actions/broken", { auth: key, body: { exec: { kind: "c", code: CODE_THAT_FAILS_TO_BUILD } } });
  t.is(res.status, 400);
  t.is(res.body.error.split("\n")[0], COMPILER_ERROR);
  t.regex(res.body.error, /^\s+1 \| int main\( \{$/m, "gcc quotes the offending line");
  t.is(await ctx.kv.actions.get(actionKey(namespace, "broken")), null);
  const js = await call("PUT", "/api/v1/namespaces/_/actions/broken-js", { auth: key, body: { exec: { kind: "nodejs", code: "function main( {" } } });
  t.is(js.status, 400);
  t.regex(js.body.error, /^SyntaxError/);
  t.is(await ctx.kv.actions.get(actionKey(namespace, "broken-js")), null);
});

test("listing pages newest first with limit and skip; limits are validated", async (t) => {
  await ensureRunner();
  const { key } = await newNamespace("pages");
  for (let i = 0; i < 5; i++) await created(t, key, `a${i}`, { exec: { kind: "nodejs", code: JS_ECHO } });
  const page = await call("GET", "/api/v1/namespaces/_/actions?limit=2&skip=1", { auth: key });
  t.deepEqual(page.body.map((a: Action) => a.name), ["a3", "a2"]);
  const all = await call("GET", "/api/v1/namespaces/_/actions?limit=0", { auth: key });
  t.is(all.body.length, 5);
  const tooMany = await call("GET", "/api/v1/namespaces/_/actions?limit=500", { auth: key });
  t.is(tooMany.status, 400);
  t.regex(tooMany.body.error, /^limit: /);
});

// --- invoking (run by the real runner) ------------------------------------------------------------

test("a blocking invoke returns the activation the runner sends back; result=true only its result", async (t) => {
  await ensureScheduler();
  const { key, namespace } = await newNamespace("blocking");
  await created(t, key, "echo", { exec: { kind: "nodejs", code: JS_ECHO } });
  const whole = await call("POST", "/api/v1/namespaces/_/actions/echo?blocking=true", { auth: key, body: { echoed: 1 } });
  t.is(whole.status, 200);
  t.regex(whole.body.activationId, /^[0-9a-f]{32}$/);
  t.like(whole.body, { namespace, name: "echo" });
  t.deepEqual(whole.body.response, { status: "success", statusCode: 0, success: true, result: { echoed: 1 } });
  t.deepEqual(await activationEventually(key, whole.body.activationId), whole.body, "the same record is stored");

  const onlyResult = await call("POST", "/api/v1/namespaces/_/actions/echo?blocking=true&result=true", { auth: key, body: { echoed: 2 } });
  t.is(onlyResult.status, 200);
  t.deepEqual(onlyResult.body, { echoed: 2 });
});

test("a blocking invoke of a failing action is a 502 with the record, an internal error a 500", async (t) => {
  await ensureScheduler();
  const { key, namespace } = await newNamespace("failing");
  await created(t, key, "boom", { exec: { kind: "nodejs", code: 'function main() { return { error: "nope" }; }' } });
  const appError = await call("POST", "/api/v1/namespaces/_/actions/boom?blocking=true", { auth: key, body: { x: 1 } });
  t.is(appError.status, 502);
  t.like(appError.body.response, { status: "application error", statusCode: 1, success: false });
  t.is(appError.body.response.result.error, "nope");

  // The runner's cached image of the action is damaged on disk: the runner cannot start the guest.
  const broken = await created(t, key, "unbootable", { exec: { kind: "c", code: cReturning('{"never": "run"}') } });
  const { codeHash } = (await ctx.kv.actions.get(actionKey(namespace, broken.name)))!.json<Action>();
  await writeFile(join(ctx.dataDir, "runner", "images", `${codeHash}.elf`), "this is not an ELF image\n");
  const internal = await call("POST", "/api/v1/namespaces/_/actions/unbootable?blocking=true&result=true", { auth: key, body: { x: 1 } });
  t.is(internal.status, 500);
  // a virtine or, on the process tier, a sandbox
  t.regex(internal.body.error, /^could not start the (virtine|sandbox): the image is not a valid guest image$/);
  t.deepEqual(Object.keys(internal.body), ["error"]);
});

test("a blocking invoke that outlives its wait is a 202 with the id; the activation is recorded later", async (t) => {
  await ensureScheduler();
  const { key } = await newNamespace("slow");
  await created(t, key, "slow", { exec: { kind: "c", code: cSleeper(BLOCKING_WAIT_MS + 500) } });
  const started = Date.now();
  const res = await call("POST", "/api/v1/namespaces/_/actions/slow?blocking=true", { auth: key });
  t.is(res.status, 202);
  t.regex(res.body.activationId, /^[0-9a-f]{32}$/);
  t.true(Date.now() - started >= BLOCKING_WAIT_MS - 50);
  const activation = await activationEventually(key, res.body.activationId);
  t.like(activation, { name: "slow", response: { status: "success", result: { slept: BLOCKING_WAIT_MS + 500 } } });
  t.true(activation.duration >= BLOCKING_WAIT_MS + 500);
});

// --- activations ----------------------------------------------------------------------------------

test("activations are readable by their namespace only; malformed ids are a 400", async (t) => {
  await ensureScheduler();
  const owner = await newNamespace("owner");
  const stranger = await newNamespace("stranger");
  await created(t, owner.key, "x", { exec: { kind: "nodejs", code: JS_ECHO } });
  const run = await call("POST", "/api/v1/namespaces/_/actions/x?blocking=true", { auth: owner.key, body: { ok: true } });
  t.is(run.status, 200);
  const activation = run.body;

  const mine = await activationEventually(owner.key, activation.activationId);
  t.deepEqual(mine, activation);
  t.is((await call("GET", `/api/v1/namespaces/_/activations/${activation.activationId}`, { auth: stranger.key })).status, 404);
  t.is((await call("GET", `/api/v1/namespaces/_/activations/${"cd".repeat(16)}`, { auth: owner.key })).status, 404);
  const malformed = await call("GET", "/api/v1/namespaces/_/activations/XYZ", { auth: owner.key });
  t.is(malformed.status, 400);
  t.regex(malformed.body.error, /^activationId: /);
});

// --- the HTTP server ------------------------------------------------------------------------------

test("startGateway listens on a free port and closes cleanly", async (t) => {
  const gateway = await startGateway({ nc: ctx.nc, port: 0, host: "127.0.0.1", dataDir: ctx.dataDir, logger });
  t.true(gateway.port > 0);
  t.is(gateway.apiKey, ctx.guestKey);
  const res = await fetch(`${gateway.url}/api/v1/namespaces/_/actions`, {
    headers: { authorization: `Basic ${Buffer.from(ctx.guestKey).toString("base64")}`, connection: "keep-alive" },
  });
  t.is(res.status, 200);
  await gateway.close();
  await t.throwsAsync(fetch(`${gateway.url}/health`));
});

// One terminal record per invocation, never overwritten (issue 10, item 1). A real nats-server,
// scheduler, gateway and runner on the real engine; the runner's engine is the native one wrapped
// only to count the calls that reach it, so "did not run again" is a count, not a guess. Events are
// re-sent the two ways a re-execution happens: published to the stream again under another message
// id (past JetStream's duplicate window), and handed to the runner's invocation path as a redelivery.
import test from "ava";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { pino } from "pino";
import {
  ACTION_VERSIONS_BUCKET,
  ACTIONS_BUCKET,
  ACTIVATIONS_BUCKET,
  activationKey,
  invokeSubject,
  InvocationEvent,
  type Activation,
} from "../contracts/index.ts";
import { startGateway } from "../gateway/index.ts";
import type { LocalNats } from "../infra/nats-server.ts";
import type { Engine } from "../runner/engine.ts";
import { buildActivation, developerError } from "../runner/activation.ts";
import { createImageStore } from "../runner/image-store.ts";
import { runInvocation, type InvocationDeps } from "../runner/invocation.ts";
import { ActivationRecorder } from "../runner/recorder.ts";
import { startRunner } from "../runner/index.ts";
import { componentActivationId } from "../runner/sequence.ts";
import { assignmentPayload } from "../scheduler/assignment.ts";
import { startScheduler } from "../scheduler/index.ts";
import { startProvisionedNats } from "./harness.ts";

const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });
const RUNNER_ID = "records-once";

interface Context {
  nats: LocalNats;
  nc: NatsConnection;
  dataDir: string;
  url: string;
  apiKey: string;
  activations: KV;
  /** Calls that reached the engine so far. */
  runs(): number;
  /** The runner's invocation path, called directly as the runner's assignment service calls it. */
  deps: InvocationDeps;
  closers: Array<() => Promise<void>>;
}
let ctx: Context;

test.before(async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-records-once-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "records-once-test");
  const native = await import("../runner/engine-native.ts");
  const real = native.openNativeEngine({ isolation: native.chooseIsolation("auto").isolation, threads: 2 });
  let runs = 0;
  const counting: Engine = {
    isolation: real.isolation,
    run: (req) => {
      runs++;
      return real.run(req);
    },
    stats: () => real.stats(),
    close: () => real.close(),
  };
  const closers: Context["closers"] = [];
  const runner = await startRunner({ nc, dataDir, capacity: 2, runnerId: RUNNER_ID, logger, engine: counting });
  closers.push(async () => {
    await runner.close();
    counting.close();
  });
  const scheduler = await startScheduler({ nc, logger });
  closers.push(scheduler.close);
  // The queued path: these tests capture the event each call publishes (a blocking call would
  // otherwise go straight to the runner, test/direct-calls.test.ts).
  const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger, directCalls: false });
  closers.push(gateway.close);
  const kvm = new Kvm(nc);
  const activations = await kvm.open(ACTIVATIONS_BUCKET);
  const deps: InvocationDeps = {
    actions: await kvm.open(ACTIONS_BUCKET),
    versions: await kvm.open(ACTION_VERSIONS_BUCKET),
    // The runner's own image cache (same data directory): no second compile.
    images: createImageStore({ dataDir, logger, engine: counting }),
    engine: counting,
    recorder: new ActivationRecorder(nc, activations, logger),
    logger,
  };
  ctx = { nats, nc, dataDir, url: gateway.url, apiKey: gateway.apiKey!, activations, runs: () => runs, deps, closers };
  for (const [name, body] of Object.entries(ACTIONS)) {
    const res = await api("PUT", `/actions/${name}?overwrite=true`, body);
    if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  }
});

test.after.always(async () => {
  if (!ctx) return;
  for (const close of ctx.closers.reverse()) await close();
  await ctx.nc.drain();
  await ctx.nats.stop();
  await rm(ctx.dataDir, { recursive: true, force: true });
});

const ACTIONS: Record<string, unknown> = {
  "echo-c": { exec: { kind: "c", code: `#include <stdio.h>\n#include <vespid.h>\nconst char *vespid_main(const char *p) { printf("ran\\n"); return p; }\n` } },
  "inc-js": { exec: { kind: "nodejs", code: `function main({ n }) { console.log("inc", n); return { n: n + 1 }; }` } },
  "pipeline": { exec: { kind: "sequence", components: ["/_/inc-js", "/_/inc-js"] } },
};

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${ctx.url}/api/v1/namespaces/_${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(ctx.apiKey).toString("base64")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** A blocking invocation, and the event the gateway queued for it (heard on the invoke subject). */
async function invokeCapturing(name: string, params: Record<string, unknown>) {
  const sub = ctx.nc.subscribe(invokeSubject("guest"), { timeout: 30_000 });
  await ctx.nc.flush();
  try {
    const res = await api("POST", `/actions/${name}?blocking=true`, params);
    if (res.status !== 200) throw new Error(`POST ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    const activationId: string = res.body.activationId;
    for await (const msg of sub) {
      const event = msg.json<InvocationEvent>();
      if (event.activationId === activationId) return { record: res.body as Activation, event, data: msg.data };
    }
    throw new Error("the queued event was not heard");
  } finally {
    sub.unsubscribe();
  }
}

async function storedEntry(namespace: string, activationId: string) {
  const entry = await ctx.activations.get(activationKey(namespace, activationId));
  return entry?.operation === "PUT" ? { revision: entry.revision, record: entry.json<Activation>() } : undefined;
}

/** The next message on `subject`, within `ms`. */
function nextOn(subject: string, ms = 30_000): { sub: Subscription; message: Promise<Uint8Array> } {
  const sub = ctx.nc.subscribe(subject, { max: 1, timeout: ms });
  const message = (async () => {
    for await (const msg of sub) return msg.data;
    throw new Error(`nothing on ${subject}`);
  })();
  // A test that fails before awaiting it must not leave an unhandled rejection behind.
  message.catch(() => undefined);
  return { sub, message };
}

/** The event a runner is assigned on the second delivery of `data`, as the scheduler makes it. */
const redelivery = (data: Uint8Array): InvocationEvent => InvocationEvent.parse(JSON.parse(new TextDecoder().decode(assignmentPayload(data, 2))));

const ranOnce = (t: { is(a: unknown, b: unknown, m?: string): void }, before: number, expected: number, what: string) =>
  t.is(ctx.runs() - before, expected, what);

test.serial("an event published again under another message id runs, but its record stands and the caller gets the first one", async (t) => {
  const first = await invokeCapturing("echo-c", { x: 1 });
  const stored = await storedEntry("guest", first.event.activationId);
  t.truthy(stored);
  const before = ctx.runs();
  const reply = nextOn(first.event.replyTo!);
  await ctx.nc.flush();
  // Past the duplicate window: the stream takes it, the scheduler places it, a runner runs it.
  await jetstream(ctx.nc).publish(invokeSubject("guest"), first.data, { msgID: `${first.event.activationId}-again` });
  const answered = JSON.parse(Buffer.from(await reply.message).toString("utf8")) as Activation;
  ranOnce(t, before, 1, "a first delivery is not looked up: it runs, as today");
  t.deepEqual(answered, stored!.record, "the caller is sent the record that stands, not the second run's");
  const after = await storedEntry("guest", first.event.activationId);
  t.is(after!.revision, stored!.revision, "the record was not written again");
  t.deepEqual(after!.record, stored!.record);
});

test.serial("a redelivered assignment whose record exists is answered with it and does not run", async (t) => {
  const first = await invokeCapturing("echo-c", { x: 2 });
  const stored = await storedEntry("guest", first.event.activationId);
  const before = ctx.runs();
  const reply = nextOn(first.event.replyTo!);
  await ctx.nc.flush();
  t.deepEqual(await runInvocation(redelivery(first.data), ctx.deps), { ok: true, activationId: first.event.activationId });
  t.deepEqual(JSON.parse(Buffer.from(await reply.message).toString("utf8")), stored!.record, "the waiting gateway gets the first record");
  ranOnce(t, before, 0, "the action did not run again");
  const after = await storedEntry("guest", first.event.activationId);
  t.is(after!.revision, stored!.revision);
  t.deepEqual(after!.record.logs, stored!.record.logs);
});

test.serial("a redelivered assignment without a record runs and records once", async (t) => {
  const first = await invokeCapturing("echo-c", { x: 3 });
  // The same event under a new activation id: never recorded, as when a runner died mid-call.
  const event: InvocationEvent = { ...first.event, activationId: randomBytes(16).toString("hex"), replyTo: undefined };
  const before = ctx.runs();
  t.true((await runInvocation({ ...event, redelivered: true }, ctx.deps)).ok);
  ranOnce(t, before, 1, "no record yet: it runs");
  const stored = await storedEntry("guest", event.activationId);
  t.deepEqual(stored?.record.response.result, { x: 3 });
});

test.serial("the scheduler marks only redeliveries, and keeps every field of the event as published", (t) => {
  const data = new TextEncoder().encode(JSON.stringify({ activationId: "a".repeat(32), future: { kept: true } }));
  t.is(assignmentPayload(data, 1), data, "a first delivery is sent as published, not re-encoded");
  t.deepEqual(JSON.parse(new TextDecoder().decode(assignmentPayload(data, 3))), { activationId: "a".repeat(32), future: { kept: true }, redelivered: true });
});

test.serial("a redelivered sequence does not run the components recorded already, and names the same component records", async (t) => {
  const first = await invokeCapturing("pipeline", { n: 1 });
  t.deepEqual(first.record.response.result, { n: 3 });
  const ids = first.record.logs;
  t.deepEqual(ids, [0, 1].map((i) => componentActivationId(first.event.activationId, i)), "component ids follow from the sequence's");
  const components = await Promise.all(ids.map((id) => storedEntry("guest", id)));
  // As if the runner died after its components were recorded but before the sequence's record.
  await ctx.activations.delete(activationKey("guest", first.event.activationId));
  const before = ctx.runs();
  t.true((await runInvocation(redelivery(first.data), ctx.deps)).ok);
  ranOnce(t, before, 0, "both components were recorded: neither runs again");
  const again = await storedEntry("guest", first.event.activationId);
  t.deepEqual(again?.record.logs, ids);
  t.deepEqual(again?.record.response.result, { n: 3 });
  const componentsAfter = await Promise.all(ids.map((id) => storedEntry("guest", id)));
  t.deepEqual(componentsAfter.map((c) => c?.revision), components.map((c) => c?.revision), "component records untouched");
});

test.serial("the recorder creates a record only if absent: a second write keeps the first, sends it, and is counted", async (t) => {
  const recorder = new ActivationRecorder(ctx.nc, ctx.activations, logger);
  const event: InvocationEvent = { activationId: "b".repeat(32), namespace: "records-once", name: "direct", params: {}, published: Date.now() };
  const firstRecord = buildActivation({ event, start: 1_000, end: 1_005, verdict: { status: "success", result: { first: true } }, logs: ["first"] });
  const secondRecord = buildActivation({ event, start: 2_000, end: 2_009, verdict: developerError("second") });
  t.deepEqual(await recorder.record(firstRecord), { outcome: "created" });
  const stored = await storedEntry("records-once", event.activationId);
  const replyTo = `records-once.reply.${event.activationId}`;
  const reply = nextOn(replyTo);
  await ctx.nc.flush();
  const second = await recorder.record(secondRecord, replyTo);
  t.is(second.outcome, "existed");
  t.deepEqual(second.outcome === "existed" && second.existing, stored!.record);
  t.is(recorder.existingRecords, 1);
  t.deepEqual(JSON.parse(Buffer.from(await reply.message).toString("utf8")), stored!.record, "the caller gets the first record");
  const after = await storedEntry("records-once", event.activationId);
  t.is(after!.revision, stored!.revision);
  t.deepEqual(after!.record.response.result, { first: true });
});

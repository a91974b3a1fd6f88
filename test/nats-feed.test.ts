// The NATS subject event source (triggers/nats-feed.ts) against a real nats-server: registrations
// written to FEEDS_BUCKET as the feed action writes them, messages from an independent client
// (its own connection, as an outside program would), and the fires counted where they land, in
// VESPID_FIRES (no fire consumer runs here, so every fire stays there to be read).
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { entityKey, FEEDS_BUCKET, FeedRegistration, FireEvent, FIRES_STREAM, fireSubject, NatsFeedParams } from "../contracts/index.ts";
import { createLogger } from "../infra/logger.ts";
import { startNatsFeeds } from "../triggers/nats-feed.ts";
import { bindStream, derivedDurable, streamFireId } from "../triggers/nats-stream-binding.ts";
import { fireFromFeed } from "../triggers/nats-feed.ts";
import { startProvisionedNats } from "./harness.ts";

const logger = createLogger(process.env.VESPID_LOG_LEVEL ? "debug" : "error");

let dataDir: string;
let stopNats: () => Promise<void>;
let url: string;
let nc: NatsConnection; // the triggers component's connection
let publisher: NatsConnection; // an outside program's
let jsm: JetStreamManager;
let feeds: KV;
let service: { stop(): Promise<void> };

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "vespid-nats-feed-test-"));
  const started = await startProvisionedNats(dataDir, "vespid-triggers");
  stopNats = started.nats.stop;
  url = started.nats.url;
  nc = started.nc;
  publisher = await connect({ servers: url, name: "outside-publisher" });
  jsm = await jetstreamManager(publisher);
  feeds = await new Kvm(publisher).open(FEEDS_BUCKET);
  service = await startNatsFeeds({ nc, logger });
});

test.after.always(async () => {
  await service?.stop();
  await publisher?.drain();
  await nc?.drain();
  await stopNats?.();
  await rm(dataDir, { recursive: true, force: true });
});

let registeredAt = 0;
async function register(namespace: string, trigger: string, params: Record<string, unknown>, status: "active" | "paused" = "active", created?: number): Promise<FeedRegistration> {
  // Registration times must differ between tests reusing a trigger name, and never go back.
  const now = Math.max(Date.now(), registeredAt + 1);
  registeredAt = now;
  const reg: FeedRegistration = { namespace, trigger, feed: "/whisk.system/nats/subscribe", kind: "nats", params, status, created: created ?? now, updated: now };
  await feeds.put(entityKey(namespace, trigger), JSON.stringify(reg));
  return reg;
}

/** Reads (and acks) every fire of `namespace` from VESPID_FIRES as it arrives. */
async function fireReader(namespace: string) {
  const name = `reader-${namespace}`;
  await jsm.consumers.add(FIRES_STREAM, { durable_name: name, ack_policy: AckPolicy.Explicit, filter_subject: fireSubject(namespace) });
  const messages = await jetstream(publisher).consumers.get(FIRES_STREAM, name).then((c) => c.consume({ max_messages: 256 }));
  const fires: FireEvent[] = [];
  const reading = (async () => {
    for await (const m of messages) {
      fires.push(FireEvent.parse(m.json()));
      m.ack();
    }
  })();
  return {
    fires,
    /** Resolves once `count` fires have come (fails after `ms`). */
    async until(count: number, ms = 20_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (fires.length < count) {
        if (Date.now() > deadline) throw new Error(`${fires.length} fires of ${count} after ${ms} ms`);
        await sleep(50);
      }
    },
    async close() {
      await messages.close();
      await reading;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

/**
 * Core NATS keeps nothing for a subscriber that is not there yet: publish probes until one fires,
 * which shows the binding is live, then forget the probes.
 */
async function untilBound(subject: string, reader: Awaited<ReturnType<typeof fireReader>>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (reader.fires.length === 0) {
    if (Date.now() > deadline) throw new Error(`no binding on ${subject} after 10 s`);
    publisher.publish(subject, json({ probe: true }));
    await sleep(100);
  }
  await sleep(300); // probes still in flight land now
  reader.fires.length = 0;
}

test("the feed's parameters: subjects with wildcards, reserved subjects and bad names refused with the field named", (t) => {
  for (const subject of ["orders", "orders.*", "orders.>", "a.*.c", "*", "shop.orders.eu"]) t.true(NatsFeedParams.safeParse({ subject }).success, subject);
  const issue = (params: unknown) => {
    const r = NatsFeedParams.safeParse(params);
    return r.success ? "accepted" : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
  };
  t.regex(issue({ subject: "vespid.fire.guest" }), /^subject: .*reserved/);
  t.regex(issue({ subject: "vespid.>" }), /^subject: .*reserved/);
  t.regex(issue({ subject: "$JS.API.>" }), /^subject: .*reserved/);
  t.regex(issue({ subject: "$KV.vespid_auth.>" }), /^subject: .*reserved/);
  t.regex(issue({ subject: "$SYS.>" }), /^subject: .*reserved/);
  t.regex(issue({ subject: "_INBOX.abc" }), /^subject: .*reserved/);
  t.regex(issue({ subject: ">" }), /^subject: .*literal/);
  t.regex(issue({ subject: "*.fire.guest" }), /^subject: .*literal/);
  t.regex(issue({ subject: "orders..eu" }), /^subject: .*empty/);
  t.regex(issue({ subject: "orders.>.eu" }), /^subject: .*last token/);
  t.regex(issue({ subject: "orders.eu*" }), /^subject: .*whole tokens/);
  t.regex(issue({ subject: "orders eu" }), /^subject: .*whitespace/);
  t.regex(issue({}), /^subject: /);
  t.regex(issue({ subject: "orders", stream: "VESPID_INVOCATIONS" }), /^stream: /);
  t.regex(issue({ subject: "orders", stream: "KV_vespid_auth" }), /^stream: /);
  t.regex(issue({ subject: "orders", stream: "a.b" }), /^stream: /);
  t.regex(issue({ subject: "orders", durable: "d" }), /^durable: .*needs a stream/);
});

test("core NATS: a message from another connection fires the trigger with its data, headers and subject", async (t) => {
  const reader = await fireReader("core-ns");
  t.teardown(reader.close);
  await register("core-ns", "on-order", { subject: "core.orders.*" });
  await untilBound("core.orders.probe", reader);

  const h = headers();
  h.append("X-Trace", "abc");
  h.append("X-Multi", "1");
  h.append("X-Multi", "2");
  publisher.publish("core.orders.eu", json({ id: 7, item: "tea", __nats_subject: "forged" }), { headers: h });
  await reader.until(1);
  const [fire] = reader.fires;
  t.is(fire!.namespace, "core-ns");
  t.is(fire!.trigger, "on-order");
  t.is(fire!.source, "nats");
  t.is(fire!.subject, "core-ns");
  t.regex(fire!.activationId, /^[0-9a-f]{32}$/);
  t.like(fire!.payload, { id: 7, item: "tea", __nats_subject: "core.orders.eu" });
  t.deepEqual(fire!.payload.__nats_headers, { "X-Trace": "abc", "X-Multi": "1, 2" });
  t.false("__nats_stream" in fire!.payload);
});

test("core NATS: messages fire in the order they were published; two triggers on one subject each fire once", async (t) => {
  const reader = await fireReader("order-ns");
  t.teardown(reader.close);
  await register("order-ns", "first", { subject: "ordered.events" });
  await register("order-ns", "second", { subject: "ordered.events" });
  await untilBound("ordered.events", reader);
  await sleep(500); // both bound: the probes fired the first to bind at least
  reader.fires.length = 0;
  for (let i = 0; i < 200; i++) publisher.publish("ordered.events", json({ i }));
  await reader.until(400);
  await sleep(500);
  t.is(reader.fires.length, 400, "each message fires each trigger exactly once");
  for (const trigger of ["first", "second"]) {
    const seen = reader.fires.filter((f) => f.trigger === trigger).map((f) => f.payload.i);
    t.deepEqual(seen, Array.from({ length: 200 }, (_, i) => i), `${trigger} fired in publish order`);
  }
});

test("malformed data never stops the service: non-JSON, invalid UTF-8, non-object JSON, deep JSON, empty and oversized messages", async (t) => {
  const reader = await fireReader("bad-data-ns");
  t.teardown(reader.close);
  await register("bad-data-ns", "t", { subject: "bad.data" });
  await untilBound("bad.data", reader);

  const deep = "[".repeat(5000) + "]".repeat(5000);
  const sent: Array<Uint8Array | string> = ["not json {", new Uint8Array([0xff, 0xfe, 0x00, 0x80]), "[1,2,3]", '"text"', "42", "null", deep, "", '{"ok":true}'];
  publisher.publish("bad.data", new Uint8Array(2 * 1024 * 1024)); // over the 1 MiB bound: dropped, logged
  for (const data of sent) publisher.publish("bad.data", data);
  await reader.until(sent.length);
  await sleep(500);
  t.is(reader.fires.length, sent.length, "the oversized message is dropped, every other one fires");
  const payloads = reader.fires.map(({ payload }) => {
    const { __nats_headers, __nats_subject, ...rest } = payload;
    return rest;
  });
  t.deepEqual(payloads.map((p) => JSON.stringify(p).slice(0, 60)), [
    { __nats_data_base64: Buffer.from("not json {").toString("base64") },
    { __nats_data_base64: Buffer.from([0xff, 0xfe, 0x00, 0x80]).toString("base64") },
    { __nats_data: [1, 2, 3] },
    { __nats_data: "text" },
    { __nats_data: 42 },
    { __nats_data: null },
    { __nats_data_base64: Buffer.from(deep).toString("base64") },
    {},
    { ok: true },
  ].map((p) => JSON.stringify(p).slice(0, 60)));
});

test("malformed registrations are ignored with a log line; reserved subjects are never subscribed", async (t) => {
  const reader = await fireReader("bad-reg-ns");
  t.teardown(reader.close);
  await feeds.put(entityKey("bad-reg-ns", "garbage"), "{{{ not json");
  await feeds.put(entityKey("bad-reg-ns", "half"), JSON.stringify({ kind: "nats", namespace: "bad-reg-ns" }));
  await register("bad-reg-ns", "sys", { subject: "vespid.>" });
  await register("bad-reg-ns", "inbox", { subject: "_INBOX.>" });
  await register("bad-reg-ns", "all", { subject: ">" });
  await register("bad-reg-ns", "no-subject", { stream: "X" });
  // Our own traffic on vespid.*: had "vespid.>" been bound, this fire would fire "sys" again.
  await register("bad-reg-ns", "good", { subject: "fine.subject" });
  await untilBound("fine.subject", reader);
  publisher.publish("vespid.runner.heartbeat.test", json({ x: 1 }));
  publisher.publish("_INBOX.test", json({ x: 1 }));
  publisher.publish("fine.subject", json({ after: "garbage" }));
  await reader.until(1);
  await sleep(700);
  t.deepEqual(reader.fires.map((f) => [f.trigger, f.payload.after]), [["good", "garbage"]]);
});

test("removing or pausing a core registration stops firing within a second; unpausing resumes it", async (t) => {
  const reader = await fireReader("remove-ns");
  t.teardown(reader.close);
  await register("remove-ns", "t", { subject: "remove.me" });
  await untilBound("remove.me", reader);
  await register("remove-ns", "t", { subject: "remove.me" }, "paused", registeredAt - 1);
  await sleep(1000);
  publisher.publish("remove.me", json({ while: "paused" }));
  await sleep(700);
  t.is(reader.fires.length, 0, "paused: nothing fires");

  await register("remove-ns", "t", { subject: "remove.me" });
  await untilBound("remove.me", reader);
  await feeds.delete(entityKey("remove-ns", "t"));
  await sleep(1000);
  publisher.publish("remove.me", json({ after: "delete" }));
  await sleep(700);
  t.is(reader.fires.length, 0, "deleted: nothing fires");
});

test("stream: a message stored in a user's stream fires the trigger with its stream sequence; acked only after", async (t) => {
  const reader = await fireReader("stream-ns");
  t.teardown(reader.close);
  // As a user would: a stream of their own, made with their own client.
  await jsm.streams.add({ name: "SHOP", subjects: ["shop.>"] });
  t.teardown(() => jsm.streams.delete("SHOP").then(() => undefined));
  const reg = await register("stream-ns", "on-shop", { subject: "shop.orders.*", stream: "SHOP" });
  const js = jetstream(publisher);
  // Published at once, possibly before the consumer exists: the registration's time counts.
  const ack = await js.publish("shop.orders.eu", json({ order: 1 }));
  await js.publish("shop.other", json({ not: "mine" }));
  await reader.until(1);
  const [fire] = reader.fires;
  t.like(fire!.payload, { order: 1, __nats_subject: "shop.orders.eu", __nats_stream: "SHOP", __nats_stream_seq: ack.seq });
  const info = await jsm.streams.info("SHOP");
  t.is(fire!.activationId, streamFireId(info.created, "SHOP", ack.seq, reg), "the id is derived from stream, sequence and trigger");
  const consumer = await jsm.consumers.info("SHOP", derivedDurable(reg));
  t.is(consumer.config.filter_subject, "shop.orders.*");
  // Acked once the fire was stored: nothing left pending or waiting for an ack.
  const deadline = Date.now() + 5000;
  let state = consumer;
  while ((state.num_ack_pending > 0 || state.num_pending > 0) && Date.now() < deadline) {
    await sleep(100);
    state = await jsm.consumers.info("SHOP", derivedDurable(reg));
  }
  t.is(state.num_ack_pending, 0);
  t.is(state.num_pending, 0);
  await sleep(500);
  t.is(reader.fires.length, 1, "the message on another subject did not fire");
});

// Serial (AVA runs serial tests first, alone): the second component binds every registration, and
// core-NATS messages of the other tests would be spread over both, so their order across the two
// would not be kept.
test.serial("stream: a burst of 1,000 messages fires exactly 1,000 times, with a second component joining and one leaving mid-burst", async (t) => {
  t.timeout(150_000);
  const reader = await fireReader("burst-ns");
  t.teardown(reader.close);
  await jsm.streams.add({ name: "BURST", subjects: ["burst.>"] });
  t.teardown(() => jsm.streams.delete("BURST").then(() => undefined));
  const reg = await register("burst-ns", "t", { subject: "burst.events", stream: "BURST" });
  // Another triggers component on its own connection, sharing the durable consumer.
  const otherNc = await connect({ servers: url, name: "other-triggers" });
  t.teardown(() => otherNc.drain());
  const other = await startNatsFeeds({ nc: otherNc, logger });

  const js = jetstream(publisher);
  const seqs: number[] = [];
  for (let i = 0; i < 1000; i++) {
    seqs.push((await js.publish("burst.events", json({ i }))).seq);
    // The other component leaves mid-burst: messages it pulled but did not ack are redelivered.
    if (i === 400) await other.stop();
  }
  const created = (await jsm.streams.info("BURST")).created;
  // Redelivery of what the leaving component held waits for the 30 s ack wait.
  await reader.until(1000, 120_000);
  await sleep(1500);
  const ids = reader.fires.map((f) => f.activationId);
  t.is(reader.fires.length, 1000, "no fire lost and none stored twice");
  t.is(new Set(ids).size, 1000);
  t.deepEqual([...ids].sort(), seqs.map((seq) => streamFireId(created, "BURST", seq, reg)).sort(), "every id is the one derived from its message");
  t.deepEqual(
    reader.fires.map((f) => f.payload.i as number).sort((a, b) => a - b),
    Array.from({ length: 1000 }, (_, i) => i),
  );
});

test("stream: a paused registration keeps its consumer and fires what arrived meanwhile on unpause; deleting it removes the consumer", async (t) => {
  const reader = await fireReader("pause-ns");
  t.teardown(reader.close);
  await jsm.streams.add({ name: "PAUSE", subjects: ["pause.>"] });
  t.teardown(() => jsm.streams.delete("PAUSE").then(() => undefined));
  const js = jetstream(publisher);
  const reg = await register("pause-ns", "t", { subject: "pause.x", stream: "PAUSE", durable: "my-durable" });
  await js.publish("pause.x", json({ n: 1 }));
  await reader.until(1);

  await feeds.put(entityKey("pause-ns", "t"), JSON.stringify({ ...reg, status: "paused", updated: Date.now() }));
  await sleep(1000);
  await js.publish("pause.x", json({ n: 2 }));
  await sleep(1000);
  t.is(reader.fires.length, 1, "nothing fires while paused");
  t.is((await jsm.consumers.info("PAUSE", "my-durable")).num_pending, 1, "the message waits in the consumer");

  await feeds.put(entityKey("pause-ns", "t"), JSON.stringify({ ...reg, status: "active", updated: Date.now() }));
  await reader.until(2);
  t.deepEqual(reader.fires.map((f) => f.payload.n), [1, 2]);

  await feeds.delete(entityKey("pause-ns", "t"));
  const deadline = Date.now() + 3000;
  let consumers: string[] = ["my-durable"];
  while (consumers.includes("my-durable") && Date.now() < deadline) {
    await sleep(100);
    consumers = (await jsm.consumers.list("PAUSE").next()).map((c) => c.name);
  }
  t.false(consumers.includes("my-durable"), "the consumer Vespid made is removed with the registration");
  await js.publish("pause.x", json({ n: 3 }));
  await sleep(1000);
  t.is(reader.fires.length, 2, "nothing fires after the registration is gone");
});

test("stream: a missing stream is retried until it exists; a user's push consumer of the name is refused, not hijacked", async (t) => {
  const reader = await fireReader("late-ns");
  t.teardown(reader.close);
  await register("late-ns", "t", { subject: "late.x", stream: "LATE" });
  await sleep(500);
  await jsm.streams.add({ name: "LATE", subjects: ["late.>"] });
  t.teardown(() => jsm.streams.delete("LATE").then(() => undefined));
  await jetstream(publisher).publish("late.x", json({ late: true }));
  await reader.until(1, 15_000);
  t.is(reader.fires[0]!.payload.late, true);

  await jsm.consumers.add("LATE", { durable_name: "theirs", ack_policy: AckPolicy.Explicit, deliver_subject: "somewhere.else", filter_subject: "late.y" });
  await register("late-ns", "u", { subject: "late.y", stream: "LATE", durable: "theirs" });
  await jetstream(publisher).publish("late.y", json({ y: 1 }));
  await sleep(1500);
  t.is(reader.fires.length, 1, "no fire through a consumer that is not a pull consumer");
  t.is((await jsm.consumers.info("LATE", "theirs")).config.deliver_subject, "somewhere.else", "the user's consumer is left as it was");
  await feeds.delete(entityKey("late-ns", "u"));
});

test("stream: an oversized message is terminated, not redelivered forever; bad bytes fire as base64; the next message still fires", async (t) => {
  const reader = await fireReader("stream-bad-ns");
  t.teardown(reader.close);
  await jsm.streams.add({ name: "BADSTREAM", subjects: ["badstream.>"], max_msg_size: -1 });
  t.teardown(() => jsm.streams.delete("BADSTREAM").then(() => undefined));
  const reg = await register("stream-bad-ns", "t", { subject: "badstream.x", stream: "BADSTREAM" });
  const js = jetstream(publisher);
  await js.publish("badstream.x", new Uint8Array(2 * 1024 * 1024));
  await js.publish("badstream.x", new Uint8Array([0xc3, 0x28]));
  await js.publish("badstream.x", json({ after: true }));
  await reader.until(2);
  t.deepEqual(reader.fires.map((f) => f.payload.__nats_data_base64 ?? f.payload.after), [Buffer.from([0xc3, 0x28]).toString("base64"), true]);
  const deadline = Date.now() + 5000;
  let info = await jsm.consumers.info("BADSTREAM", derivedDurable(reg));
  while (info.num_ack_pending > 0 && Date.now() < deadline) {
    await sleep(100);
    info = await jsm.consumers.info("BADSTREAM", derivedDurable(reg));
  }
  t.is(info.num_ack_pending, 0, "the oversized message was terminated, not left to redeliver");
  t.is(info.num_redelivered, 0);
});

test("stream: fires whose answer was lost are retried and redelivered under the same id, and stored once", async (t) => {
  t.timeout(60_000);
  const reader = await fireReader("lost-ack-ns");
  t.teardown(reader.close);
  await jsm.streams.add({ name: "LOSTACK", subjects: ["lostack.>"] });
  t.teardown(() => jsm.streams.delete("LOSTACK").then(() => undefined));
  // Not through FEEDS_BUCKET: a binding of our own whose fires are stored but then "fail", as
  // when JetStream's answer is lost. Every message fails once after storing (retried at once);
  // every tenth fails three times (handed back with nak, redelivered by JetStream).
  const reg: FeedRegistration = { namespace: "lost-ack-ns", trigger: "t", feed: "/whisk.system/nats/subscribe", kind: "nats", params: {}, status: "active", created: Date.now(), updated: Date.now() };
  const realFire = fireFromFeed(jetstream(nc));
  const attempts = new Map<string, number>();
  const flaky: typeof realFire = async (r, payload, id) => {
    await realFire(r, payload, id);
    const n = (attempts.get(id) ?? 0) + 1;
    attempts.set(id, n);
    const failures = (payload.__nats_stream_seq as number) % 10 === 0 ? 3 : 1;
    if (n <= failures) throw new Error("the answer was lost");
  };
  const binding = bindStream(jsm, reg, { subject: "lostack.x", stream: "LOSTACK" }, flaky, logger);
  t.teardown(() => binding.remove());
  const js = jetstream(publisher);
  for (let i = 0; i < 20; i++) await js.publish("lostack.x", json({ i }));
  await reader.until(20, 30_000);
  // The two naked messages come back after their delay; wait for each to be tried a fourth time.
  const deadline = Date.now() + 30_000;
  while ([...attempts.values()].filter((n) => n >= 4).length < 2 && Date.now() < deadline) await sleep(200);
  await sleep(1000);
  t.is(reader.fires.length, 20, "each message stored once however often it was fired");
  t.is(new Set(reader.fires.map((f) => f.activationId)).size, 20);
  t.is([...attempts.values()].filter((n) => n >= 4).length, 2, "messages 10 and 20 were redelivered and fired again");
  const info = await jsm.consumers.info("LOSTACK", derivedDurable(reg));
  t.is(info.num_ack_pending, 0, "all acked in the end");
});

// NATS subject events end to end on the running platform, set up as a user does it: a trigger,
// the feed /whisk.system/nats/subscribe through the `openwhisk` client, a rule to an action; the
// messages come from an independent program's connection (core NATS and a stream the user made).
import test from "ava";
import openwhisk from "openwhisk";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { entityKey, FEEDS_BUCKET, FeedRegistration } from "../contracts/index.ts";
import { streamFireId } from "../triggers/nats-stream-binding.ts";
import { api, startPlatform, waitForActivation, type Platform } from "./harness.ts";

let platform: Platform;
let ow: ReturnType<typeof openwhisk>;
let outside: NatsConnection;

test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 4 });
  ow = openwhisk({ api: `${platform.url}/api/v1/`, api_key: platform.apiKey });
  outside = await connect({ servers: platform.nc.getServer(), name: "outside-program" });
});
test.after.always(async () => {
  await outside?.drain();
  await platform?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const json = (value: unknown) => JSON.stringify(value);

/** A trigger fed by the NATS feed with `params`, and a rule to a fresh echo action named `${name}-echo`. */
async function natsTrigger(name: string, params: Record<string, unknown>) {
  await ow.actions.create({ name: `${name}-echo`, action: "function main(params) { return params; }", kind: "nodejs:default" } as any);
  await ow.triggers.create({ name, trigger: { annotations: [{ key: "feed", value: "/whisk.system/nats/subscribe" }] } } as any);
  const feed: any = await ow.feeds.create({ name: "/whisk.system/nats/subscribe", trigger: name, params });
  if (!feed.response.success) throw new Error(`feed CREATE: ${JSON.stringify(feed.response)}`);
  await ow.rules.create({ name: `${name}-rule`, action: `${name}-echo`, trigger: name });
}

/** Activations of `name` (an action or a trigger), newest first (the newest 200). */
async function activationsOf(name: string): Promise<any[]> {
  const res = await platform.request("GET", api(`activations?name=${name}&limit=200&docs=true`));
  return res.body;
}

/** How many activations `name` has, page by page. */
async function countActivations(name: string): Promise<number> {
  let count = 0;
  for (let skip = 0; ; skip += 200) {
    const page = (await platform.request("GET", api(`activations?name=${name}&limit=200&skip=${skip}`))).body;
    count += page.length;
    if (page.length < 200) return count;
  }
}

test("core NATS: a message from an outside program fires the trigger, and the rule runs the action with the data", async (t) => {
  await natsTrigger("core-orders", { subject: "e2e.orders.*" });
  // Core NATS holds nothing for a subscriber not there yet: probe until the binding is live.
  const deadline = Date.now() + 15_000;
  while ((await activationsOf("core-orders-echo")).length === 0) {
    if (Date.now() > deadline) throw new Error("the feed never bound");
    outside.publish("e2e.orders.probe", json({ probe: true }));
    await sleep(300);
  }
  outside.publish("e2e.orders.eu", json({ order: 42, item: "tea" }));
  let found: any;
  while (!found && Date.now() < deadline + 15_000) {
    found = (await activationsOf("core-orders-echo")).find((a) => a.response.result.order === 42);
    if (!found) await sleep(200);
  }
  t.truthy(found, "the action ran for the message");
  t.like(found.response.result, { order: 42, item: "tea", __nats_subject: "e2e.orders.eu", __nats_headers: {} });

  // DELETE through the feed (as `wsk trigger delete` does): no more fires.
  const deleted: any = await ow.feeds.delete({ name: "/whisk.system/nats/subscribe", trigger: "core-orders" });
  t.true(deleted.response.success, JSON.stringify(deleted.response));
  await sleep(1000);
  const before = (await activationsOf("core-orders")).length;
  outside.publish("e2e.orders.eu", json({ order: 43 }));
  await sleep(1500);
  t.is((await activationsOf("core-orders")).length, before, "the removed feed fires nothing");
});

test("stream: a burst of 1,000 messages in the user's own stream: each fires once and runs the action once; ids derived from the stream sequence", async (t) => {
  t.timeout(170_000);
  const jsm = await jetstreamManager(outside);
  await jsm.streams.add({ name: "E2E_EVENTS", subjects: ["e2e.events.>"] });
  await natsTrigger("stream-events", { subject: "e2e.events.>", stream: "E2E_EVENTS" });
  const reg = FeedRegistration.parse((await (await new Kvm(platform.nc).open(FEEDS_BUCKET)).get(entityKey("guest", "stream-events")))!.json());
  const js = jetstream(outside);
  const seqs: number[] = [];
  for (let i = 0; i < 1000; i++) seqs.push((await js.publish(`e2e.events.${i % 3}`, json({ i }))).seq);
  const created = (await jsm.streams.info("E2E_EVENTS")).created;

  const results: number[] = [];
  for (const seq of seqs) {
    const trigger = await waitForActivation(platform, streamFireId(created, "E2E_EVENTS", seq, reg));
    const logs = trigger.logs.map((l: string) => JSON.parse(l));
    t.is(logs.length, 1);
    results.push((await waitForActivation(platform, logs[0].activationId)).response.result.i);
  }
  t.deepEqual(results.sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  // Nothing more than one trigger activation per message, and one action run per fire.
  await sleep(1500);
  t.is(await countActivations("stream-events"), 1000, "one trigger activation per message");
  t.is(await countActivations("stream-events-echo"), 1000, "one action run per fire");
  const consumer = (await jsm.consumers.list("E2E_EVENTS").next())[0]!;
  t.is(consumer.num_ack_pending, 0, "every message acked");
  t.is(consumer.num_pending, 0);
});

test("the feed action refuses reserved subjects and bad stream names, naming the field", async (t) => {
  await ow.triggers.create({ name: "bad-feed", trigger: { annotations: [{ key: "feed", value: "/whisk.system/nats/subscribe" }] } } as any);
  for (const [params, message] of [
    [{ subject: "vespid.invoke.guest" }, /subject: .*reserved/],
    [{ subject: ">" }, /subject: .*literal/],
    [{ subject: "ok", stream: "VESPID_FIRES" }, /stream: /],
  ] as const) {
    const res = await platform.request("POST", "/api/v1/namespaces/whisk.system/actions/nats/subscribe?blocking=true", {
      lifecycleEvent: "CREATE", triggerName: "/guest/bad-feed", authKey: platform.apiKey, ...params,
    });
    t.false(res.body.response?.success ?? true, JSON.stringify(params));
    t.regex(JSON.stringify(res.body.response?.result), message);
  }
  t.is((await (await new Kvm(platform.nc).open(FEEDS_BUCKET)).get(entityKey("guest", "bad-feed")))?.operation ?? "none", "none", "nothing registered");
});

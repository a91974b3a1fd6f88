// Request bodies have bounded depth and size (issue 8, finding 4): a body nested past
// MAX_JSON_DEPTH, or an invocation too big for one NATS message, is the caller's 4xx naming the
// bound, decided before anything is queued or stored. Before, parameters nested 100k deep were a
// `503 could not be queued` on invoke and a 500 on PUT (JSON.stringify overflowed the stack when
// queueing or storing them). Everything runs on a real platform: nats-server, scheduler, a runner.
import test from "ava";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import {
  ACTIONS_BUCKET,
  actionKey,
  INVOCATIONS_STREAM,
  jsonTextTooDeepAt,
  jsonValueTooDeep,
  MAX_JSON_DEPTH,
} from "../contracts/index.ts";
import { MAX_BODY_BYTES } from "../gateway/body.ts";
import { api, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
let jsm: JetStreamManager;
let actionsKv: KV;

/** Reports how deeply its parameter `p` nests arrays, so a test sees the whole depth arrived. */
const DEPTH_PROBE = `function main(params) {
  let depth = 0;
  for (let v = params.p; Array.isArray(v); v = v[0]) depth++;
  return { depth };
}`;
const probe = { exec: { kind: "nodejs", code: DEPTH_PROBE } };

test.before(async () => {
  platform = await startPlatform();
  jsm = await jetstreamManager(platform.nc);
  actionsKv = await new Kvm(platform.nc).open(ACTIONS_BUCKET);
  const res = await platform.request("PUT", api("actions/probe"), probe);
  if (res.status !== 200) throw new Error(`creating the probe action: ${res.status} ${JSON.stringify(res.body)}`);
});
test.after.always(async () => {
  await platform?.stop();
});

const DEEP = 100_000;
/** `k` arrays around `1`: depth k. */
const arraysText = (k: number) => "[".repeat(k) + "1" + "]".repeat(k);
/** `{"a": …}` k times around `1`: depth k. */
const objectsText = (k: number) => '{"a":'.repeat(k) + "1" + "}".repeat(k);
/** `k` arrays around `1`, as a value. */
function arrays(k: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < k; i++) v = [v];
  return v;
}

const TOO_DEEP = new RegExp(`deeper than the limit of ${MAX_JSON_DEPTH} levels`);
const JSON_HEADERS = { "content-type": "application/json" };

/**
 * Every event ever queued: the stream is a work queue, so its message count drops as the scheduler
 * takes them; its last sequence number only ever grows.
 */
const queuedSoFar = async () => (await jsm.streams.info(INVOCATIONS_STREAM)).state.last_seq;
const activationIds = async (): Promise<string[]> => {
  const res = await platform.request("GET", api("activations?limit=200"));
  return (res.body as Array<{ activationId: string }>).map((a) => a.activationId);
};

/**
 * The probe still runs, through the same gateway: nothing above broke it or its queue. Its
 * Idempotency-Key sends it through JetStream (a blocking call without one goes straight to a runner).
 */
async function gatewayStillWorks(t: import("ava").ExecutionContext, queuedBefore: number) {
  const key = { ...JSON_HEADERS, "Idempotency-Key": `probe-${Math.random()}` };
  const res = await platform.request("POST", api("actions/probe?blocking=true&result=true"), { p: arrays(3) }, key);
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body, { depth: 3 });
  t.is(await queuedSoFar(), queuedBefore + 1, "exactly the probe's invocation was queued");
}

test.serial("invoke parameters nested 100k deep are a 400 naming the bound, blocking or not, and nothing is queued", async (t) => {
  const queuedBefore = await queuedSoFar();
  const activationsBefore = await activationIds();
  const bodies = { arrays: `{"p":${arraysText(DEEP)}}`, objects: objectsText(DEEP) };
  for (const blocking of [false, true]) {
    for (const [shape, body] of Object.entries(bodies)) {
      const res = await platform.request("POST", api(`actions/probe?blocking=${blocking}`), body, JSON_HEADERS);
      t.is(res.status, 400, `${shape}, blocking=${blocking}: ${JSON.stringify(res.body)}`);
      t.regex(res.body.error, TOO_DEEP);
      t.regex(res.body.code, /^[0-9a-f]{16}$/, "the usual error shape, with the request id");
    }
  }
  t.is(await queuedSoFar(), queuedBefore, "nothing reached the invocation stream");
  t.deepEqual(await activationIds(), activationsBefore, "no activation was recorded");
  await gatewayStillWorks(t, queuedBefore);
});

test.serial("a PUT with parameters or annotations nested 100k deep is a 400 naming the bound, and nothing is stored", async (t) => {
  const code = JSON.stringify(probe.exec);
  for (const field of ["parameters", "annotations"]) {
    for (const [shape, deep] of [["arrays", arraysText(DEEP)], ["objects", objectsText(DEEP)]]) {
      const body = `{"exec":${code},"${field}":[{"key":"p","value":${deep}}]}`;
      const created = await platform.request("PUT", api("actions/deep"), body, JSON_HEADERS);
      t.is(created.status, 400, `${field}, ${shape}: ${JSON.stringify(created.body)}`);
      t.regex(created.body.error, TOO_DEEP);
      t.is((await platform.request("GET", api("actions/deep"))).status, 404, "no action was created");

      // An update of an existing action leaves it as it was.
      const before = (await platform.request("GET", api("actions/probe"))).body;
      const updated = await platform.request("PUT", api("actions/probe?overwrite=true"), `{"${field}":[{"key":"p","value":${deep}}]}`, JSON_HEADERS);
      t.is(updated.status, 400, `update, ${field}, ${shape}: ${JSON.stringify(updated.body)}`);
      t.regex(updated.body.error, TOO_DEEP);
      t.deepEqual((await platform.request("GET", api("actions/probe"))).body, before, "the action is unchanged");

      const pkg = await platform.request("PUT", api("packages/deep"), `{"${field}":[{"key":"p","value":${deep}}]}`, JSON_HEADERS);
      t.is(pkg.status, 400, `package, ${field}, ${shape}: ${JSON.stringify(pkg.body)}`);
      t.regex(pkg.body.error, TOO_DEEP);
      t.is((await platform.request("GET", api("packages/deep"))).status, 404, "no package was created");
    }
  }
  await gatewayStillWorks(t, await queuedSoFar());
});

test.serial("a body nested exactly to the bound works; one level more is a 400 that says where", async (t) => {
  // Invoke: the body is the parameters object (level 1), so `p` may hold MAX_JSON_DEPTH - 1 levels.
  const atBound = await platform.request("POST", api("actions/probe?blocking=true&result=true"), { p: arrays(MAX_JSON_DEPTH - 1) });
  t.is(atBound.status, 200, JSON.stringify(atBound.body));
  t.deepEqual(atBound.body, { depth: MAX_JSON_DEPTH - 1 }, "the action got every level");

  const queuedBefore = await queuedSoFar();
  const overText = `{"p":${arraysText(MAX_JSON_DEPTH)}}`;
  const over = await platform.request("POST", api("actions/probe?blocking=true"), overText, JSON_HEADERS);
  t.is(over.status, 400);
  // The bracket that opens level MAX_JSON_DEPTH + 1: the last `[`.
  t.is(over.body.error, `request body nests arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels (at character ${overText.lastIndexOf("[")})`);
  t.is(await queuedSoFar(), queuedBefore);

  // PUT: a parameter's value sits at level 4 of the body (body, list, {key, value}, value).
  const withDefault = (depth: number) => ({ ...probe, parameters: [{ key: "p", value: arrays(depth) }] });
  const stored = await platform.request("PUT", api("actions/at-bound"), withDefault(MAX_JSON_DEPTH - 3));
  t.is(stored.status, 200, JSON.stringify(stored.body));
  const ran = await platform.request("POST", api("actions/at-bound?blocking=true&result=true"));
  t.is(ran.status, 200, JSON.stringify(ran.body));
  t.deepEqual(ran.body, { depth: MAX_JSON_DEPTH - 3 }, "the stored default arrived whole");
  const refused = await platform.request("PUT", api("actions/past-bound"), withDefault(MAX_JSON_DEPTH - 2));
  t.is(refused.status, 400);
  t.regex(refused.body.error, TOO_DEEP);
});

test.serial("default parameters stored deeper than the bound (before it existed) are refused at invoke, before anything is queued", async (t) => {
  const res = await platform.request("PUT", api("actions/legacy"), probe);
  t.is(res.status, 200, JSON.stringify(res.body));
  const key = actionKey("guest", "legacy");
  const record = (await actionsKv.get(key))!.json<Record<string, unknown>>();
  // Written straight to the bucket, as the API no longer would: one just past the bound and one
  // deep enough that serialising it overflows the stack.
  const texts = {
    "just past the bound": JSON.stringify({ ...record, parameters: [{ key: "p", value: arrays(MAX_JSON_DEPTH) }] }),
    "100k deep": JSON.stringify({ ...record, parameters: [{ key: "p", value: "DEEP" }] }).replace('"DEEP"', arraysText(DEEP)),
  };
  for (const [what, text] of Object.entries(texts)) {
    await actionsKv.put(key, text);
    const queuedBefore = await queuedSoFar();
    for (const blocking of [false, true]) {
      const invoked = await platform.request("POST", api(`actions/legacy?blocking=${blocking}`));
      t.is(invoked.status, 400, `${what}, blocking=${blocking}: ${JSON.stringify(invoked.body)}`);
      t.is(invoked.body.error, `the parameters, with the action's default parameters, nest arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels`);
    }
    t.is(await queuedSoFar(), queuedBefore, `${what}: nothing was queued`);
  }
  await gatewayStillWorks(t, await queuedSoFar());
});

test.serial("an invocation too big for one NATS message is a 413 naming the limit, and nothing is queued", async (t) => {
  const maxPayload = platform.nc.info!.max_payload;
  // Each body stays under the 5 MiB request limit; the package's and the action's defaults
  // together do not fit one message.
  const share = Math.ceil(maxPayload / 2);
  t.true(share < MAX_BODY_BYTES - 1024);
  const pkg = await platform.request("PUT", api("packages/big"), { parameters: [{ key: "a", value: "a".repeat(share) }] });
  t.is(pkg.status, 200, JSON.stringify(pkg.body));
  const action = await platform.request("PUT", api("actions/big/probe"), { ...probe, parameters: [{ key: "b", value: "b".repeat(share) }] });
  t.is(action.status, 200, JSON.stringify(action.body));

  const queuedBefore = await queuedSoFar();
  const activationsBefore = await activationIds();
  for (const blocking of [false, true]) {
    const res = await platform.request("POST", api(`actions/big/probe?blocking=${blocking}`), { p: [] });
    t.is(res.status, 413, JSON.stringify(res.body));
    t.regex(res.body.error, new RegExp(`^the invocation takes \\d+ bytes with its parameters and the action's default parameters, more than the limit of ${maxPayload - 1024} bytes`));
  }
  t.is(await queuedSoFar(), queuedBefore, "nothing reached the invocation stream");
  t.deepEqual(await activationIds(), activationsBefore, "no activation was recorded");
  await gatewayStillWorks(t, queuedBefore);
});

test.serial("an invoke body over the size limit is a 413 naming it", async (t) => {
  const queuedBefore = await queuedSoFar();
  const res = await platform.request("POST", api("actions/probe"), { p: "x".repeat(MAX_BODY_BYTES) });
  t.is(res.status, 413);
  t.is(res.body.error, `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`);
  t.is(await queuedSoFar(), queuedBefore);
});

test("jsonTextTooDeepAt reads brackets outside strings only, without recursing", (t) => {
  t.is(jsonTextTooDeepAt("{}"), -1);
  t.is(jsonTextTooDeepAt(arraysText(MAX_JSON_DEPTH)), -1);
  t.is(jsonTextTooDeepAt(arraysText(MAX_JSON_DEPTH + 1)), MAX_JSON_DEPTH);
  t.is(jsonTextTooDeepAt("[[[", 2), 2);
  // Brackets in strings, escaped quotes and escaped backslashes before a closing quote.
  t.is(jsonTextTooDeepAt(JSON.stringify({ s: "[".repeat(500), t: '"[[[', u: "\\" }) , 1), -1);
  t.is(jsonTextTooDeepAt('["\\\\", [[', 2), 8, "the string ends after the escaped backslash");
  t.is(jsonTextTooDeepAt('["\\"[[[', 1), -1, "an escaped quote does not end the string");
  // Siblings do not add up: depth is what is open at once.
  t.is(jsonTextTooDeepAt(`[${Array(1000).fill("[[]]").join(",")}]`, 3), -1);
  // A million levels take no stack.
  t.is(jsonTextTooDeepAt("[".repeat(1_000_000), 1_000_000), -1);
});

test("jsonValueTooDeep measures a parsed value, without recursing", (t) => {
  t.false(jsonValueTooDeep(5, 0));
  t.true(jsonValueTooDeep({}, 0));
  t.false(jsonValueTooDeep({}, 1));
  t.false(jsonValueTooDeep(arrays(MAX_JSON_DEPTH)));
  t.true(jsonValueTooDeep(arrays(MAX_JSON_DEPTH + 1)));
  t.true(jsonValueTooDeep({ a: 1, b: [2, { c: [] }] }, 3));
  t.false(jsonValueTooDeep({ a: 1, b: [2, { c: [] }] }, 4));
  t.true(jsonValueTooDeep(JSON.parse(arraysText(DEEP))), "100k levels take no stack");
  t.true(jsonValueTooDeep(JSON.parse(objectsText(DEEP))));
});

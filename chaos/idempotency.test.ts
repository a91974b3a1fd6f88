// Idempotency-Key across gateways (issue 10): a request repeated with the same key, to any
// gateway, runs once and answers the first request's activation, also when the gateway that took
// the first request is killed while its blocking caller waits. Real processes on loopback: a
// nats-server, two gateways, a scheduler and two runners.
import test from "ava";
import { jetstreamManager } from "@nats-io/jetstream";
import { ACTIVATIONS_BUCKET } from "../contracts/index.ts";
import { startChaosPlatform, type ChaosPlatform } from "./platform.ts";
import { Kvm } from "@nats-io/kv";
import { activationKey } from "../contracts/index.ts";
import { ACTION, call, countOutcome, createAction, LOG } from "./workload.ts";

const SLOW_ACTION = "chaos-slow";
/** Runs long enough (~1.5 s) for its gateway to be killed while the caller waits. */
const SLOW_CODE = `function main(params) {
  const end = Date.now() + 1500;
  while (Date.now() < end) {}
  return { key: params.key, nonce: Math.random().toString(36).slice(2) + "-" + Date.now() };
}`;
const invokePath = (action: string, blocking: boolean) => `/api/v1/namespaces/_/actions/${action}${blocking ? "?blocking=true" : ""}`;

let platform: ChaosPlatform;

test.before(async () => {
  platform = await startChaosPlatform({ gateways: 2, runners: 2 });
  await createAction(platform);
  const res = await call(platform, platform.gateways[0]!.url, "PUT", `/api/v1/namespaces/_/actions/${SLOW_ACTION}`, { exec: { kind: "nodejs", code: SLOW_CODE } });
  if (res.status !== 200) throw new Error(`could not create ${SLOW_ACTION}: ${res.status} ${JSON.stringify(res.body)}`);
});

test.after.always(() => platform?.stop());

/** Record writes that replaced one, and re-executions that found their record there. */
async function duplicates(): Promise<{ overwritten: number; reExecuted: number; records: number }> {
  const state = (await (await jetstreamManager(platform.nc)).streams.info(`KV_${ACTIVATIONS_BUCKET}`)).state;
  let reExecuted = 0;
  for (const runner of platform.runners) reExecuted += await runner.countLogLines(LOG.recordExisted);
  return { overwritten: state.last_seq - state.messages, reExecuted, records: state.messages };
}

async function recordOf(id: string, boundMs = 60_000): Promise<any> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const res = await call(platform, platform.gateways[1]!.url, "GET", `/api/v1/namespaces/_/activations/${id}`);
    if (res.status === 200) return res.body;
    if (Date.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

test.serial("the same Idempotency-Key sent to two gateways at once runs once per key", async (t) => {
  const before = await duplicates();
  const keys = Array.from({ length: 20 }, (_, i) => `chaos-key-${i}-${Date.now()}`);
  const answers = await Promise.all(
    keys.flatMap((key, i) =>
      [0, 1, 0, 1].map((g) => call(platform, platform.gateways[g]!.url, "POST", invokePath(ACTION, false), { n: i }, { "Idempotency-Key": key }).then((res) => ({ key, res }))),
    ),
  );
  const idsByKey = new Map<string, Set<string>>();
  for (const { key, res } of answers) {
    t.true(res.status >= 200 && res.status < 300, `${key}: ${res.status} ${JSON.stringify(res.body)}`);
    const ids = idsByKey.get(key) ?? new Set();
    ids.add(res.body?.activationId);
    idsByKey.set(key, ids);
  }
  const distinct = [...idsByKey.values()].filter((ids) => ids.size !== 1);
  t.is(distinct.length, 0, `keys answered with more than one activation id (the header was not honoured): ${distinct.length} of ${keys.length}`);
  for (const ids of idsByKey.values()) for (const id of ids) t.truthy(await recordOf(id), `record of ${id}`);
  await new Promise((resolve) => setTimeout(resolve, 2_000)); // a second run, if any, has time to show
  const after = await duplicates();
  t.is(after.records - before.records, keys.length, "one record per key, no more");
  t.is(after.overwritten - before.overwritten, 0, "records overwritten");
  t.is(after.reExecuted - before.reExecuted, 0, "runs that found their record there (a second run)");
});

test.serial("a blocking caller cut off by a gateway kill -9 retries on the other gateway with its key and gets the first run", async (t) => {
  const before = await duplicates();
  const key = `chaos-cut-off-${Date.now()}`;
  // The first try, on gateway 1, asks for the activation id before the body.
  const first = fetch(`${platform.gateways[0]!.url}${invokePath(SLOW_ACTION, true)}`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(platform.apiKey).toString("base64")}`,
      "content-type": "application/json",
      "Idempotency-Key": key,
      Prefer: "early-activation-id",
    },
    body: JSON.stringify({ key }),
  });
  const headers = await first.then((res) => res.headers).catch(() => undefined);
  const earlyId = headers?.get("x-openwhisk-activation-id") ?? undefined;
  t.log(`activation id before the body: ${earlyId ?? "none"}`);
  await new Promise((resolve) => setTimeout(resolve, 300)); // the call is running now
  await platform.gateways[0]!.kill();
  const cutOff = await first.then((res) => res.text()).then(
    () => "answered",
    () => "cut off",
  );
  t.log(`the first try was ${cutOff}`);

  // The retry, same key, on gateway 2.
  const retry = await call(platform, platform.gateways[1]!.url, "POST", invokePath(SLOW_ACTION, true), { key }, { "Idempotency-Key": key }, 90_000);
  t.true(retry.status === 200 || retry.status === 202, `retry: ${retry.status} ${JSON.stringify(retry.body)}`);
  const id = retry.body?.activationId;
  if (earlyId) t.is(id, earlyId, "the retry answers the first try's activation");
  const record = await recordOf(id);
  t.truthy(record, "the activation has a record");
  if (retry.status === 200) t.is(retry.body.response?.result?.nonce, record.response?.result?.nonce, "the retry's answer is the stored run");
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const after = await duplicates();
  t.is(after.records - before.records, 1, "one record");
  t.is(after.overwritten - before.overwritten, 0, "records overwritten");
  t.is(after.reExecuted - before.reExecuted, 0, "runs that found their record there (a second run)");
  await platform.gateways[0]!.start();
});

test.serial("the counts can fail: an overwritten record and an accepted call without a record are seen", async (t) => {
  const res = await call(platform, platform.gateways[1]!.url, "POST", invokePath(ACTION, true), { n: 42 });
  t.is(res.status, 200);
  const id = res.body.activationId as string;
  const before = await duplicates();
  // What a second run without create-if-absent would do: write the record again.
  const kv = await new Kvm(platform.nc).open(ACTIVATIONS_BUCKET);
  const stored = await kv.get(activationKey("guest", id));
  await kv.put(activationKey("guest", id), stored!.value);
  const never = "0".repeat(32); // accepted (as far as the counts know), never recorded
  const counts = await countOutcome(platform, "self-check", { accepted: [{ id, nonce: "not-the-stored-one" }, { id: never }], refused: {}, endedAt: Date.now() }, 2_000);
  t.is(counts.lost, 1);
  t.deepEqual(counts.lostSample, [never]);
  t.is(counts.overwritten - before.overwritten, 1);
  t.is(counts.blockingMismatched, 1);
});

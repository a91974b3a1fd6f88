// gateway/kv-watch.ts against a real bucket: current records then changes, in order; an async
// apply finishes before the next entry; an entry apply throws on is logged and skipped without
// ending the watch; stop() waits for the entry being applied.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import { pino } from "pino";
import { entryJson, followBucket } from "../gateway/kv-watch.ts";
import { startProvisionedNats } from "./harness.ts";

let dataDir: string;
let stopNats: () => Promise<void>;
let closeNc: () => Promise<void>;
let kvm: Kvm;

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "vespid-kv-watch-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "kv-watch-test");
  stopNats = nats.stop;
  closeNc = () => nc.close();
  kvm = new Kvm(nc);
});

test.after.always(async () => {
  await closeNc?.();
  await stopNats?.();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** A logger whose error lines the test reads. */
function capturedLogger() {
  const lines: Array<{ msg: string; key?: string }> = [];
  const logger = pino({ level: "error" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!done()) throw new Error(`timed out waiting for ${what}`);
}

let buckets = 0;
const freshBucket = (): Promise<KV> => kvm.create(`kv_watch_test_${++buckets}`);

test("current records first, then changes, in order; a bad entry is logged and skipped", async (t) => {
  const kv = await freshBucket();
  await kv.put("a", JSON.stringify({ n: 1 }));
  await kv.put("b", "not json");
  const { logger, lines } = capturedLogger();
  const seen: string[] = [];
  const follower = await followBucket(kv, (entry) => {
    if (entry.operation !== "PUT") return void seen.push(`${entry.key}:deleted`);
    seen.push(`${entry.key}:${(entry.json() as { n: number }).n}`);
  }, logger, "test records");
  await kv.put("a", JSON.stringify({ n: 2 }));
  await kv.delete("a");
  await kv.put("c", JSON.stringify({ n: 3 }));
  await until(() => seen.includes("c:3"), "the last change");
  t.deepEqual(seen, ["a:1", "a:2", "a:deleted", "c:3"]);
  t.deepEqual(lines.map((l) => [l.msg, l.key]), [["could not apply a change to test records", "b"]]);
  await follower.stop();
  await kv.put("d", JSON.stringify({ n: 4 }));
  await new Promise((r) => setTimeout(r, 200));
  t.false(seen.some((s) => s.startsWith("d:")), "nothing is applied after stop()");
});

test("an async apply finishes before the next entry starts, and stop() waits for it", async (t) => {
  const kv = await freshBucket();
  const { logger } = capturedLogger();
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const follower = await followBucket(kv, async (entry: KvWatchEntry) => {
    events.push(`start ${entry.key}`);
    if (entry.key === "slow") await gate;
    events.push(`end ${entry.key}`);
  }, logger, "test records");
  await kv.put("slow", "1");
  await kv.put("next", "2");
  await until(() => events.includes("start slow"), "the slow entry");
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(events, ["start slow"], "the next entry waits for the slow one");
  let stopped = false;
  const stopping = follower.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 100));
  t.false(stopped, "stop() waits for the entry being applied");
  release();
  await stopping;
  t.deepEqual(events.slice(0, 2), ["start slow", "end slow"]);
});

test("entryJson: the value as JSON, undefined when it is not JSON", async (t) => {
  const kv = await freshBucket();
  await kv.put("json", JSON.stringify({ a: [1, null] }));
  await kv.put("text", "{not json");
  t.deepEqual(entryJson((await kv.get("json"))!), { a: [1, null] });
  t.is(entryJson((await kv.get("text"))!), undefined);
});

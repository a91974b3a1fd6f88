// The load generator's arithmetic (bench/load-stats.ts): nearest-rank percentiles, counts by
// status, cold/warm from the records' annotations, and a sample of ids that stays bounded.
import test from "ava";
import { summarise, Tally } from "../bench/load-stats.ts";

test("percentiles are nearest-rank over all samples, whatever their order", (t) => {
  const samples = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1000 … 1, shuffled by order
  const s = summarise(samples);
  t.like(s, { count: 1000, p50Ms: 500, p90Ms: 900, p99Ms: 990, p999Ms: 999, maxMs: 1000, meanMs: 500.5 });
  t.like(summarise([7]), { p50Ms: 7, p999Ms: 7, maxMs: 7 });
  t.like(summarise([]), { count: 0, p50Ms: 0 });
});

test("a tally counts statuses, errors, cold and warm records, and keeps a bounded uniform sample of ids", (t) => {
  const tally = new Tally(10);
  tally.add("200", 1, true);
  tally.add("503", 2, false);
  tally.add("error: socket hang up", 3, false);
  t.is(tally.calls, 3);
  t.is(tally.errors, 2);
  t.deepEqual(Object.fromEntries(tally.byStatus), { "200": 1, "503": 1, "error: socket hang up": 1 });
  tally.addRecord({ annotations: [{ key: "initTime", value: 12 }] });
  tally.addRecord({ annotations: [{ key: "waitTime", value: 1 }] });
  tally.addRecord({});
  t.is(tally.cold, 1);
  t.is(tally.warm, 2);
  for (let i = 0; i < 1000; i++) tally.keepId(String(i));
  t.is(tally.ids.length, 10);
  t.is(new Set(tally.ids).size, 10);
  t.true(tally.ids.some((id) => Number(id) >= 10), "later ids get their chance too");
});

// The scheduler's picture of runner load, driven by a hand-set clock.
import test from "ava";
import { RUNNER_EXPIRY_MS, type RunnerHeartbeat } from "../contracts/index.ts";
import { RunnerTable } from "../scheduler/runner-table.ts";
import { DEFAULT_MAX_RETRIES, maxRetriesFromEnv, retryDelayMs } from "../scheduler/retries.ts";

function table() {
  let now = 1_000_000;
  const runners = new RunnerTable(() => now);
  const beat = (runnerId: string, capacity: number, inflight = 0) =>
    runners.observe({ runnerId, capacity, inflight, at: now } satisfies RunnerHeartbeat);
  return { runners, beat, advance: (ms: number) => (now += ms) };
}

test("picks the runner with the most free slots, counting our own assignments", (t) => {
  const { runners, beat } = table();
  beat("a", 2);
  beat("b", 3);
  t.is(runners.pickFreest(), "b");
  runners.reserve("b");
  runners.reserve("b");
  t.is(runners.pickFreest(), "a");
  runners.reserve("a");
  runners.reserve("a");
  runners.reserve("b");
  t.is(runners.pickFreest(), undefined);
  runners.release("a");
  t.is(runners.pickFreest(), "a");
});

test("a heartbeat's load beyond our assignments is other schedulers' and counts against the runner", (t) => {
  const { runners, beat } = table();
  beat("a", 4);
  runners.reserve("a");
  beat("a", 4, 3); // our 1 + 2 from elsewhere
  t.is(runners.pickFreest(), "a", "1 ours + 2 others leave 1 slot");
  runners.reserve("a");
  t.is(runners.pickFreest(), undefined, "2 ours + 2 others fill 4 slots");
});

test("silent runners expire; refusals and missing subscribers take a runner out at once", (t) => {
  const { runners, beat, advance } = table();
  beat("a", 1);
  advance(RUNNER_EXPIRY_MS + 1);
  t.false(runners.isLive("a"));
  t.is(runners.pickFreest(), undefined);
  beat("a", 1);
  t.is(runners.pickFreest(), "a");
  runners.markFull("a");
  t.is(runners.pickFreest(), undefined, "full until its next heartbeat");
  beat("a", 1);
  t.is(runners.pickFreest(), "a");
  runners.forget("a");
  t.false(runners.isLive("a"));
  runners.prune();
  beat("a", 1);
  t.true(runners.isLive("a"), "a runner that comes back is welcome");
});

test("leases: which live runner holds an activation, by its last heartbeat; silence is excused across our own reconnect", (t) => {
  const { runners, advance } = table();
  const beat = (runnerId: string, seq: number, activations?: string[]) =>
    runners.observe({ runnerId, capacity: 2, inflight: activations?.length ?? 0, at: 0, seq, ...(activations && { activations }) });
  beat("a", 1, ["x"]);
  beat("old", 7);
  t.is(runners.holder("x"), "a");
  t.true(runners.holds("a", "x"));
  t.false(runners.holds("a", "y"));
  t.is(runners.holds("old", "x"), undefined, "a runner that lists nothing says nothing");
  t.is(runners.seq("a"), 1);
  t.is(runners.seq("nobody"), 0);
  beat("a", 2, []);
  t.is(runners.holder("x"), undefined, "its next heartbeat no longer lists it");
  beat("a", 3, ["x"]);
  advance(RUNNER_EXPIRY_MS - 100);
  runners.excuseSilence();
  advance(RUNNER_EXPIRY_MS - 100);
  t.true(runners.isLive("a"), "heartbeats we could not hear do not count against it");
  t.is(runners.holder("x"), "a");
  advance(200);
  t.false(runners.isLive("a"));
  t.is(runners.holder("x"), undefined, "a silent runner holds nothing");
});

test("retries: VESPID_MAX_RETRIES is read and checked; the backoff doubles up to its cap", (t) => {
  t.is(maxRetriesFromEnv({}), DEFAULT_MAX_RETRIES);
  t.is(maxRetriesFromEnv({ VESPID_MAX_RETRIES: "" }), DEFAULT_MAX_RETRIES);
  t.is(maxRetriesFromEnv({ VESPID_MAX_RETRIES: "0" }), 0);
  t.is(maxRetriesFromEnv({ VESPID_MAX_RETRIES: "12" }), 12);
  for (const bad of ["-1", "101", "two", "1.5"]) {
    t.throws(() => maxRetriesFromEnv({ VESPID_MAX_RETRIES: bad }), { message: new RegExp(`^VESPID_MAX_RETRIES must be a whole number from 0 to 100, not "${bad.replace(".", "\\.")}"`) });
  }
  t.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(retryDelayMs), [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
});

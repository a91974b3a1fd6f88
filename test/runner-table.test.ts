// The scheduler's picture of runner load, driven by a hand-set clock.
import test from "ava";
import { RUNNER_EXPIRY_MS, type RunnerHeartbeat } from "../contracts/index.ts";
import { RunnerTable } from "../scheduler/runner-table.ts";

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

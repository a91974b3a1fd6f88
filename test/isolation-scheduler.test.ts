// The scheduler's picture of runner tiers, driven by a hand-set clock: placement by requirement and
// when a tier counts as missing.
import test from "ava";
import { RUNNER_EXPIRY_MS, type Isolation, type RunnerHeartbeat } from "../contracts/index.ts";
import { MISSING_TIER_WAIT_MS } from "../scheduler/dispatcher.ts";
import { RunnerTable } from "../scheduler/runner-table.ts";

function table() {
  let now = 1_000_000;
  const runners = new RunnerTable(() => now);
  const beat = (runnerId: string, capacity: number, isolation?: Isolation, inflight = 0) =>
    runners.observe({ runnerId, capacity, inflight, at: now, ...(isolation && { isolation }) } satisfies RunnerHeartbeat);
  return { runners, beat, advance: (ms: number) => (now += ms) };
}

test("work that requires kvm goes to kvm runners only; other work to the freest of any tier", (t) => {
  const { runners, beat } = table();
  beat("k", 1, "kvm");
  beat("p", 3, "process");
  t.is(runners.pickFreest(), "p");
  t.is(runners.pickFreest("process"), "p", "process is what every runner gives");
  t.is(runners.pickFreest("kvm"), "k");
  runners.reserve("k");
  t.is(runners.pickFreest("kvm"), undefined, "the kvm runner is full: wait, do not fall back to process");
  t.is(runners.pickFreest(), "p");
});

test("a heartbeat without a tier is a runner from before tiers: kvm", (t) => {
  const { runners, beat } = table();
  beat("old", 1);
  t.is(runners.pickFreest("kvm"), "old");
});

test("a tier counts as heard until MISSING_TIER_WAIT_MS after its last runner's heartbeat, forgotten or pruned", (t) => {
  const { runners, beat, advance } = table();
  t.false(runners.tierHeardWithin("kvm", MISSING_TIER_WAIT_MS));
  beat("p", 1, "process");
  t.false(runners.tierHeardWithin("kvm", MISSING_TIER_WAIT_MS), "a process runner does not satisfy kvm");
  t.true(runners.tierHeardWithin("process", MISSING_TIER_WAIT_MS));
  beat("k", 1, "kvm");
  t.true(runners.tierHeardWithin("process", MISSING_TIER_WAIT_MS), "a kvm runner satisfies process");
  runners.forget("k");
  advance(RUNNER_EXPIRY_MS + 1);
  runners.prune();
  t.is(runners.pickFreest("kvm"), undefined);
  t.true(runners.tierHeardWithin("kvm", MISSING_TIER_WAIT_MS), "gone, but maybe restarting");
  advance(MISSING_TIER_WAIT_MS - RUNNER_EXPIRY_MS);
  t.false(runners.tierHeardWithin("kvm", MISSING_TIER_WAIT_MS));
});

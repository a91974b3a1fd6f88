// The fault-injection suite (issue 10): a platform of separate real processes on loopback (its own
// nats-server or 3-node cluster, a gateway, a scheduler, two runners), 2,000 non-blocking calls
// plus blocking ones, and one fault per case injected a quarter of the way in. Every case must end
// with 0 lost calls, 0 overwritten records and every blocking answer equal to its record;
// re-executions are counted and printed. The table of counts is printed at the end.
//
//   npm run test:chaos                          (all cases, about 10 minutes)
//   npm run test:chaos -- --match '*scheduler*' (one case)
//   VESPID_CHAOS_RATE=200 VESPID_CHAOS_BOUND_S=120 VESPID_KEEP_TEST_DATA=1 npm run test:chaos
import test, { type ExecutionContext } from "ava";
import { jetstreamManager } from "@nats-io/jetstream";
import { INVOCATIONS_STREAM } from "../contracts/index.ts";
import { startChaosPlatform, type ChaosPlatform, type ChaosPlatformOptions } from "./platform.ts";
import { countOutcome, createAction, formatTable, runLoad, type CaseCounts } from "./workload.ts";

/** How long after the load (and the repair) every accepted call must have its record, ms. */
const RECORD_BOUND_MS = Number(process.env.VESPID_CHAOS_BOUND_S ?? 60) * 1000;
/** The fault comes this many calls into the 2,000. */
const FAULT_AT_CALL = 500;

const rows: CaseCounts[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.after.always(() => {
  if (rows.length) console.log(`\nFault-injection counts (bound for a record: ${RECORD_BOUND_MS / 1000} s after the load)\n${formatTable(rows)}\n`);
});

async function chaosCase(t: ExecutionContext, name: string, options: ChaosPlatformOptions, inject: (platform: ChaosPlatform) => Promise<void>, before?: (platform: ChaosPlatform) => Promise<void>) {
  const platform = await startChaosPlatform(options);
  t.teardown(platform.stop);
  await createAction(platform);
  await before?.(platform);
  const load = await runLoad(platform, { fault: { atCall: FAULT_AT_CALL, inject: () => inject(platform) } });
  const counts = await countOutcome(platform, name, load, RECORD_BOUND_MS);
  rows.push(counts);
  t.log(JSON.stringify(counts));
  t.true(counts.accepted > 0, "some calls were accepted");
  t.is(counts.lost, 0, `accepted calls without a record after ${RECORD_BOUND_MS / 1000} s, e.g. ${counts.lostSample.join(", ")}`);
  t.is(counts.overwritten, 0, "records overwritten by a second write");
  t.is(counts.blockingMismatched, 0, "blocking answers that differ from the stored record");
}

test.serial("runner kill -9, restarted 2 s later", (t) =>
  chaosCase(t, "runner kill -9 + restart", {}, async (platform) => {
    await platform.runners[0]!.kill();
    await sleep(2_000);
    await platform.runners[0]!.start();
  }));

test.serial("runner kill -9, not restarted", (t) =>
  chaosCase(t, "runner kill -9", {}, async (platform) => {
    await platform.runners[0]!.kill();
  }));

test.serial("scheduler kill -9, restarted 1 s later", (t) =>
  chaosCase(t, "scheduler kill -9 + restart", {}, async (platform) => {
    await platform.scheduler.kill();
    await sleep(1_000);
    await platform.scheduler.start();
  }));

test.serial("nats-server kill -9, restarted on the same store 5 s later", (t) =>
  chaosCase(t, "nats-server kill -9, 5 s", {}, async (platform) => {
    const node = platform.nats.nodes[0]!;
    await node.kill("SIGKILL");
    await sleep(5_000);
    await node.start();
  }));

test.serial("3-node cluster (R3): kill -9 of the node leading the invocation stream", async (t) => {
  let killed = "";
  await chaosCase(
    t,
    "cluster node kill -9 (R3)",
    { natsNodes: 3, replicas: 3 },
    async (platform) => {
      const jsm = await jetstreamManager(platform.nc);
      const leader = (await jsm.streams.info(INVOCATIONS_STREAM)).cluster?.leader;
      const node = platform.nats.nodes.find((n) => n.name === leader) ?? platform.nats.nodes[0]!;
      killed = node.name;
      await node.kill("SIGKILL");
    },
    async (platform) => {
      const info = await (await jetstreamManager(platform.nc)).streams.info(INVOCATIONS_STREAM);
      t.is(info.config.num_replicas, 3, "the invocation stream is R3");
    },
  );
  t.log(`killed ${killed}`);
});

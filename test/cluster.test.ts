// Replication: provisioning on a real 3-node nats-server cluster on loopback (infra/cluster/), the
// default replicas from the cluster size, scaling existing R1 streams and buckets up, and writes
// retried while a leader is elected (infra/retry-jetstream.ts).
import test from "ava";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { errors, type NatsConnection } from "@nats-io/transport-node";
import { ACTIONS_BUCKET, ACTIVATIONS_BUCKET, DEAD_LETTER_STREAM, FIRES_STREAM, INVOCATIONS_STREAM } from "../contracts/index.ts";
import { nodeConfig, startLocalCluster, type LocalCluster } from "../infra/cluster/local-cluster.ts";
import { loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { findNatsServer } from "../infra/nats-server.ts";
import { BUCKETS, defaultReplicas, provision } from "../infra/provision.ts";
import { isElectionError, retryDuringElection } from "../infra/retry-jetstream.ts";

const natsServer = findNatsServer(loadConfig().dataDir);
const ALL_STREAMS = [INVOCATIONS_STREAM, FIRES_STREAM, DEAD_LETTER_STREAM, ...Object.keys(BUCKETS).map((bucket) => `KV_${bucket}`)];

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vespid-cluster-test-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function cluster(t: Parameters<typeof tempDir>[0], size = 3): Promise<LocalCluster> {
  const started = await startLocalCluster({ dataDir: await tempDir(t), size, natsServer: await natsServer });
  t.teardown(started.stop);
  return started;
}

/** Connects once every node is routed (the INFO lists them all), as a component would find it. */
async function connectRouted(t: Parameters<typeof tempDir>[0], urls: string, size: number): Promise<NatsConnection> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const nc = await connectNats(urls, "cluster-test");
    if (new Set(nc.info?.connect_urls ?? []).size >= size || Date.now() > deadline) {
      t.teardown(() => nc.close());
      return nc;
    }
    await nc.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function replicasOf(nc: NatsConnection): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  const found: Record<string, number> = {};
  for (const name of ALL_STREAMS) found[name] = (await retryDuringElection(() => jsm.streams.info(name))).config.num_replicas;
  return found;
}

/** The stream's leader once it has one and both followers are current (after a scale-up they catch up first). */
async function settledLeader(jsm: Awaited<ReturnType<typeof jetstreamManager>>, stream: string): Promise<string | undefined> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const info = await retryDuringElection(() => jsm.streams.info(stream));
    const followers = info.cluster?.replicas ?? [];
    if (info.cluster?.leader && followers.length === 2 && followers.every((peer) => peer.current)) return info.cluster.leader;
    if (Date.now() > deadline) return info.cluster?.leader;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const every = (n: number) => Object.fromEntries(ALL_STREAMS.map((name) => [name, n]));

test("defaultReplicas: 3 in a cluster of 3 or more servers, else 1", (t) => {
  t.is(defaultReplicas(undefined), 1);
  t.is(defaultReplicas({ connect_urls: ["a:1", "b:1", "c:1"] }), 1, "no cluster name: a single server");
  t.is(defaultReplicas({ cluster: "c", connect_urls: ["a:1", "b:1"] }), 1);
  t.is(defaultReplicas({ cluster: "c", connect_urls: ["a:1", "a:1", "b:1"] }), 1, "a server listed twice counts once");
  t.is(defaultReplicas({ cluster: "c", connect_urls: ["a:1", "b:1", "c:1"] }), 3);
  t.is(defaultReplicas({ cluster: "c", connect_urls: ["a:1", "b:1", "c:1", "d:1", "e:1"] }), 3);
  t.is(defaultReplicas({ cluster: "c" }), 1, "no_advertise: nothing listed");
});

test("isElectionError: leaderless and unreachable are worth a retry, a wrong request is not", (t) => {
  const api = (err_code: number, code: number, description: string) => new JetStreamApiError({ err_code, code, description });
  t.true(isElectionError(api(10008, 503, "JetStream system temporarily unavailable")));
  t.true(isElectionError(api(10005, 500, "no suitable peers for placement")));
  t.true(isElectionError(new errors.TimeoutError()));
  t.false(isElectionError(api(10058, 400, "stream name already in use with a different configuration")));
  t.false(isElectionError(api(10071, 400, "wrong last sequence: 4")));
  t.false(isElectionError(new Error("bad input")));
});

test("retryDuringElection tries again until the leader answers, and not past a wrong request", async (t) => {
  let tries = 0;
  const result = await retryDuringElection(async () => {
    if (++tries < 3) throw new errors.TimeoutError();
    return "done";
  });
  t.is(result, "done");
  t.is(tries, 3);
  let wrong = 0;
  await t.throwsAsync(
    retryDuringElection(async () => {
      wrong++;
      throw new Error("bad input");
    }),
    { message: "bad input" },
  );
  t.is(wrong, 1);
  // A deadline ends the retries with the last error.
  await t.throwsAsync(retryDuringElection(() => Promise.reject(new errors.TimeoutError()), { deadlineMs: 300 }), { instanceOf: errors.TimeoutError });
});

test("nodeConfig: JetStream on the node's own store, routes to every node", (t) => {
  const text = nodeConfig({ name: "n2", port: 4223, storeDir: "/data/n2/jetstream", cluster: { name: "vespid", port: 6223, routes: [6222, 6223, 6224] } });
  t.regex(text, /server_name: n2/);
  t.regex(text, /listen: 127\.0\.0\.1:4223/);
  t.regex(text, /store_dir: "\/data\/n2\/jetstream"/);
  t.regex(text, /cluster \{\n {2}name: vespid\n {2}listen: 127\.0\.0\.1:6223/);
  t.is(text.match(/nats-route:\/\//g)?.length, 3);
  t.notRegex(nodeConfig({ name: "solo", port: 4222, storeDir: "/s" }), /cluster/);
});

test("the node-*.conf files shipped for a hand-started cluster are what nodeConfig makes", async (t) => {
  for (const [i, name] of ["n1", "n2", "n3"].entries()) {
    const shipped = await readFile(new URL(`../infra/cluster/node-${i + 1}.conf`, import.meta.url), "utf8");
    const made = nodeConfig({ name, port: 4222 + i, storeDir: `${name}/jetstream`, cluster: { name: "vespid", port: 6222 + i, routes: [6222, 6223, 6224] } });
    // The shipped files start with a comment saying how to use them.
    t.is(shipped.replace(/^#.*\n/gm, ""), made, `node-${i + 1}.conf`);
  }
});

test("a single server gets R1 everywhere", async (t) => {
  const single = await cluster(t, 1);
  const nc = await connectNats(single.urls, "single-test");
  t.teardown(() => nc.close());
  t.is(defaultReplicas(nc.info), 1);
  await provision(nc);
  t.deepEqual(await replicasOf(nc), every(1));
  // Asking a single server for 3 is refused, naming the setting; nothing was changed.
  await t.throwsAsync(provision(nc, { replicas: 3 }), { message: /cannot keep 3 replicas of Vespid's streams here \(VESPID_REPLICAS\): replicas > 1 not supported in non-clustered mode/ });
  t.deepEqual(await replicasOf(nc), every(1));
});

test("3-node cluster: provisioning makes R3; R1 made earlier is scaled up; a default never scales down; losing a node loses nothing", async (t) => {
  const three = await cluster(t, 3);
  const nc = await connectRouted(t, three.urls, 3);
  t.is(defaultReplicas(nc.info), 3);

  // An older Vespid (or VESPID_REPLICAS=1) made everything R1 ...
  await provision(nc, { replicas: 1 });
  t.deepEqual(await replicasOf(nc), every(1));
  const kv = await new Kvm(nc).open(ACTIONS_BUCKET);
  await kv.put("guest.kept", "before the scale-up");

  // ... and a component started with the default raises it, keeping the data. A cluster this
  // new (on a loaded machine) may not yet offer three current peers for placement for longer than
  // provision's own 30 s of election retries.
  await retryDuringElection(() => provision(nc), { deadlineMs: 90_000 });
  t.deepEqual(await replicasOf(nc), every(3));
  // The scale-up moves the bucket to a new Raft group: reads time out until it has a leader.
  t.is((await retryDuringElection(() => kv.get("guest.kept")))?.string(), "before the scale-up");

  // A process that sees fewer servers (one away) provisions with its default of 1: R3 stays.
  await provision(nc, {});
  const jsm = await jetstreamManager(nc);
  let info = await jsm.streams.info(INVOCATIONS_STREAM);
  t.is(info.config.num_replicas, 3);
  // Right after a scale-up the Raft group may still list a peer being replaced: wait for three.
  for (let i = 0; i < 60 && (info.cluster?.replicas?.length ?? 0) + 1 !== 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    info = await jsm.streams.info(INVOCATIONS_STREAM);
  }
  t.is((info.cluster?.replicas?.length ?? 0) + 1, 3, "a leader and two followers");

  // Kill the node leading the activations bucket: its writes go on once a new leader is elected.
  const leaderName = await settledLeader(jsm, `KV_${ACTIVATIONS_BUCKET}`);
  const leader = three.nodes.find((node) => node.name === leaderName)!;
  t.truthy(leader, `leader ${leaderName} is one of ours`);
  const survivorUrls = three.nodes.filter((node) => node !== leader).map((node) => node.url).join(",");
  const survivor = await connectNats(survivorUrls, "survivor");
  t.teardown(() => survivor.close());
  const records = await new Kvm(survivor).open(ACTIVATIONS_BUCKET);
  await records.put("guest.first", "written before the kill");
  await leader.kill("SIGKILL");
  let retries = 0;
  await retryDuringElection(() => records.create("guest.second", "written during the election"), { onRetry: () => retries++ });
  t.is((await retryDuringElection(() => records.get("guest.first")))?.string(), "written before the kill");
  t.is((await retryDuringElection(() => records.get("guest.second")))?.string(), "written during the election");
  t.log(`writes retried ${retries} times during the election`);
  // Provisioning from a component started now, with a node away, succeeds and keeps R3.
  await provision(survivor);
  t.is((await jetstreamManager(survivor).then((m) => m.streams.info(INVOCATIONS_STREAM))).config.num_replicas, 3);

  // The node comes back on its store and catches up.
  await leader.start();
  t.is((await retryDuringElection(() => records.get("guest.second")))?.string(), "written during the election");
});

// Tests of infra/: configuration, the embedded nats-server, connecting and provisioning, against a
// real nats-server (and a fake old one).
import test from "ava";
import { mkdtemp, rm, writeFile, chmod } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { ACTIONS_BUCKET, ACTIVATIONS_BUCKET, AUTH_BUCKET, INVOCATIONS_STREAM, fromSubjectToken, subjectToken } from "../contracts/index.ts";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_ISOLATION, DEFAULT_LOG_LEVEL, DEFAULT_NAMESPACE_CONCURRENT, DEFAULT_NAMESPACE_PER_MINUTE, DEFAULT_POOL_MB, DEFAULT_PORT, DEFAULT_RUNNER_CAPACITY, loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { findNatsServer, startLocalNats } from "../infra/nats-server.ts";
import { ACTIVATION_TTL_MS, provision } from "../infra/provision.ts";
import { isVersionAtLeast } from "../infra/version.ts";

const MS = 1_000_000; // nanoseconds, JetStream's unit for durations

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vespid-infra-test-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const natsServer = findNatsServer(loadConfig().dataDir);

async function localNats(t: Parameters<typeof tempDir>[0], port?: number) {
  const nats = await startLocalNats({ dataDir: await tempDir(t), port, natsServer: await natsServer });
  t.teardown(nats.stop);
  return nats;
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe);
  await close(probe);
  return port;
}

// --- config ---------------------------------------------------------------------------------------

test("config: defaults when nothing is set", (t) => {
  const config = loadConfig({});
  t.deepEqual(config, {
    port: DEFAULT_PORT,
    host: DEFAULT_HOST,
    dataDir: join(process.cwd(), DEFAULT_DATA_DIR),
    natsUrl: undefined,
    runnerCapacity: DEFAULT_RUNNER_CAPACITY,
    runnerQueue: undefined,
    directCalls: true,
    poolMb: DEFAULT_POOL_MB,
    isolation: DEFAULT_ISOLATION,
    logLevel: DEFAULT_LOG_LEVEL,
    logFormat: undefined,
    activationRetentionMs: undefined,
    namespaceLimits: { concurrent: DEFAULT_NAMESPACE_CONCURRENT, perMinute: DEFAULT_NAMESPACE_PER_MINUTE },
    replicas: undefined,
    maxRetries: undefined,
    idempotencyWindowMs: undefined,
    maxQueue: 10_000,
    maxBlockingWaits: 10_000,
  });
  t.is(config.port, 8989);
  t.true(config.runnerCapacity >= 1);
});

test("config: values from the environment; empty means unset", (t) => {
  const config = loadConfig({
    VESPID_PORT: "0",
    VESPID_HOST: "0.0.0.0",
    VESPID_DATA_DIR: "/srv/vespid",
    NATS_URL: "nats://a:4222,nats://b:4222",
    VESPID_RUNNER_CAPACITY: "7",
    VESPID_RUNNER_QUEUE: "0",
    VESPID_DIRECT_CALLS: "off",
    VESPID_POOL_MB: "512",
    VESPID_ISOLATION: "process",
    VESPID_LOG_LEVEL: "debug",
    VESPID_LOG_FORMAT: "json",
    VESPID_ACTIVATION_RETENTION: "12h",
    VESPID_NAMESPACE_CONCURRENT: "5",
    VESPID_NAMESPACE_PER_MINUTE: "600",
    VESPID_IDEMPOTENCY_WINDOW: "2h",
    VESPID_MAX_QUEUE: "50",
    VESPID_MAX_BLOCKING_WAITS: "70",
    VESPID_REPLICAS: "3",
    VESPID_MAX_RETRIES: "2",
  });
  t.deepEqual(config, { port: 0, host: "0.0.0.0", dataDir: "/srv/vespid", natsUrl: "nats://a:4222,nats://b:4222", runnerCapacity: 7, runnerQueue: 0, directCalls: false, poolMb: 512, isolation: "process", logLevel: "debug", logFormat: "json", activationRetentionMs: 12 * 60 * 60 * 1000, namespaceLimits: { concurrent: 5, perMinute: 600 }, idempotencyWindowMs: 2 * 60 * 60 * 1000, maxQueue: 50, maxBlockingWaits: 70, replicas: 3, maxRetries: 2 });
  t.is(loadConfig({ NATS_URL: "", VESPID_PORT: "" }).natsUrl, undefined);
  t.is(loadConfig({ VESPID_DATA_DIR: "rel/dir" }).dataDir, join(process.cwd(), "rel/dir"));
});

for (const [name, value] of [
  ["VESPID_PORT", "http"],
  ["VESPID_PORT", "65536"],
  ["VESPID_PORT", "-1"],
  ["VESPID_PORT", "80.5"],
  ["VESPID_HOST", "a host"],
  ["NATS_URL", "http://example/x"],
  ["VESPID_RUNNER_CAPACITY", "0"],
  ["VESPID_RUNNER_CAPACITY", "many"],
  ["VESPID_POOL_MB", "8"],
  ["VESPID_RUNNER_QUEUE", "-1"],
  ["VESPID_DIRECT_CALLS", "yes"],
  ["VESPID_LOG_LEVEL", "loud"],
  ["VESPID_ISOLATION", "xen"],
  ["VESPID_ACTIVATION_RETENTION", "0"],
  ["VESPID_IDEMPOTENCY_WINDOW", "10s"],
  ["VESPID_MAX_QUEUE", "0"],
  ["VESPID_REPLICAS", "0"],
  ["VESPID_REPLICAS", "6"],
  ["VESPID_ACTIVATION_RETENTION", "7 days"],
  ["VESPID_ACTIVATION_RETENTION", "3w"],
  ["VESPID_ACTIVATION_RETENTION", "-5s"],
  ["VESPID_ACTIVATION_RETENTION", "5000d"],
  ["VESPID_NAMESPACE_CONCURRENT", "-1"],
  ["VESPID_NAMESPACE_CONCURRENT", "lots"],
  ["VESPID_NAMESPACE_PER_MINUTE", "1.5"],
  ["VESPID_NAMESPACE_PER_MINUTE", "100000001"],
  ["VESPID_MAX_RETRIES", "-1"],
  ["VESPID_MAX_RETRIES", "101"],
  ["VESPID_MAX_RETRIES", "few"],
] as const) {
  test(`config: ${name}=${value} is refused, naming the variable`, (t) => {
    const err = t.throws(() => loadConfig({ [name]: value }));
    t.regex(err!.message, new RegExp(`^invalid configuration: ${name}\\b`));
    t.true(err!.message.includes(JSON.stringify(value)));
  });
}

test("config: all bad variables are reported at once, with their flags", (t) => {
  const err = t.throws(() => loadConfig({ VESPID_PORT: "x", VESPID_LOG_LEVEL: "y" }));
  t.regex(err!.message, /VESPID_PORT \(--port\) must be a whole number from 0 to 65535/);
  t.regex(err!.message, /VESPID_LOG_LEVEL must be one of/);
});

// --- versions -------------------------------------------------------------------------------------

test("isVersionAtLeast compares major.minor.patch numerically", (t) => {
  t.true(isVersionAtLeast("2.10.0", "2.10.0"));
  t.true(isVersionAtLeast("2.10.27", "2.10.0"));
  t.true(isVersionAtLeast("v2.11.1", "2.10.0"));
  t.true(isVersionAtLeast("3.0.0", "2.10.0"));
  t.true(isVersionAtLeast("2.10.0-RC.3", "2.10.0"));
  t.false(isVersionAtLeast("2.9.10", "2.10.0"));
  t.false(isVersionAtLeast("2.9.99", "2.10.0"));
  t.false(isVersionAtLeast("1.99.99", "2.10.0"));
  t.false(isVersionAtLeast("", "2.10.0"));
  t.false(isVersionAtLeast("nonsense", "2.10.0"));
});

// --- nats-server ----------------------------------------------------------------------------------

test("findNatsServer says to run setup when there is none", async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(findNatsServer(dir, "", dir), { message: /no nats-server ≥ 2\.10\.0 found.*npm run setup/ });
});

test("findNatsServer skips a nats-server that is too old", async (t) => {
  const dir = await tempDir(t);
  const old = join(dir, "nats-server");
  await writeFile(old, "#!/bin/sh\necho 'nats-server: v2.9.10'\n");
  await chmod(old, 0o755);
  await t.throwsAsync(findNatsServer(join(dir, "empty"), dir, dir), { message: /nats-server is 2\.9\.10/ });
  const good = await natsServer;
  t.is(await findNatsServer(join(dir, "empty"), dir, join(good, "..")), good);
});

test("startLocalNats starts a JetStream server and stop() ends it", async (t) => {
  const nats = await localNats(t);
  t.regex(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  t.truthy(await jsm.getAccountInfo());
  await nc.close();
  await nats.stop();
  await nats.exited;
  await t.throwsAsync(connect({ servers: nats.url, reconnect: false, timeout: 1_000 }));
  await nats.stop(); // a second stop is harmless
});

test("startLocalNats uses the requested port when it is free", async (t) => {
  const port = await freePort();
  const nats = await localNats(t, port);
  t.is(nats.url, `nats://127.0.0.1:${port}`);
});

test("startLocalNats picks another port when the requested one is busy", async (t) => {
  const busy = createServer();
  const port = await listen(busy);
  t.teardown(() => close(busy));
  const nats = await localNats(t, port);
  t.not(nats.url, `nats://127.0.0.1:${port}`);
  const nc = await connectNats(nats.url, "busy-port-test");
  await nc.close();
});

test("startLocalNats reports a server that exits while starting", async (t) => {
  const dir = await tempDir(t);
  const broken = join(dir, "nats-server");
  await writeFile(broken, "#!/bin/sh\necho 'cannot open store' >&2\nexit 3\n");
  await chmod(broken, 0o755);
  await t.throwsAsync(startLocalNats({ dataDir: dir, natsServer: broken }), { message: /did not start: exited with code 3/ });
});

// --- connect --------------------------------------------------------------------------------------

/** Speaks just enough of the NATS protocol to let a client connect, claiming to be `version`. */
async function fakeNatsServer(t: Parameters<typeof tempDir>[0], version: string): Promise<string> {
  const server = createServer((socket) => {
    socket.write(`INFO ${JSON.stringify({ server_id: "FAKE", version, proto: 1, headers: true, max_payload: 1048576, jetstream: true })}\r\n`);
    socket.on("data", (data) => {
      if (data.toString().includes("PING")) socket.write("PONG\r\n");
    });
    socket.on("error", () => {});
  });
  const port = await listen(server);
  t.teardown(() => close(server));
  return `nats://127.0.0.1:${port}`;
}

test("connectNats refuses a 2.9 server, saying why", async (t) => {
  const url = await fakeNatsServer(t, "2.9.10");
  await t.throwsAsync(connectNats(url, "old-server-test"), {
    message: "nats-server 2.9.10 is too old: Vespid needs ≥ 2.10.0 (JetStream pull consumers lose requests under redelivery in 2.9)",
  });
});

test("connectNats names the URL it cannot reach", async (t) => {
  const port = await freePort();
  await t.throwsAsync(connectNats(`nats://127.0.0.1:${port}`, "unreachable-test"), { message: new RegExp(`^cannot connect to NATS at nats://127\\.0\\.0\\.1:${port}`) });
});

test("connectNats accepts the real server", async (t) => {
  const nats = await localNats(t);
  const nc = await connectNats(nats.url, "real-server-test");
  t.true(isVersionAtLeast(nc.info!.version, "2.10.0"));
  await nc.drain();
});

// --- provision ------------------------------------------------------------------------------------

async function assertProvisioned(t: import("ava").ExecutionContext, url: string) {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const stream = (await jsm.streams.info(INVOCATIONS_STREAM)).config;
  t.deepEqual(stream.subjects, ["vespid.invoke.>"]);
  t.is(stream.retention, RetentionPolicy.Workqueue);
  t.is(stream.storage, StorageType.File);
  t.is(stream.discard, DiscardPolicy.Old);
  t.is(stream.max_age, 24 * 60 * 60 * 1000 * MS);
  t.is(stream.duplicate_window, 2 * 60 * 1000 * MS);

  const kvm = new Kvm(nc);
  for (const [bucket, ttl] of [
    [ACTIONS_BUCKET, 0],
    [ACTIVATIONS_BUCKET, ACTIVATION_TTL_MS],
    [AUTH_BUCKET, 0],
  ] as const) {
    const status = await (await kvm.open(bucket)).status();
    t.is(status.history, 1, `${bucket} history`);
    t.is(status.ttl, ttl, `${bucket} ttl`);
    t.is(status.streamInfo.config.storage, StorageType.File, `${bucket} storage`);
  }
  t.is(ACTIVATION_TTL_MS, 7 * 24 * 60 * 60 * 1000);
  await nc.close();
}

test("provision creates the stream and buckets, and a second run changes nothing", async (t) => {
  const nats = await localNats(t);
  const nc = await connectNats(nats.url, "provision-test");
  await provision(nc);
  await assertProvisioned(t, nats.url);
  await provision(nc);
  await assertProvisioned(t, nats.url);
  await nc.drain();
});

test("provision run concurrently from two connections succeeds in both", async (t) => {
  const nats = await localNats(t);
  const [a, b] = await Promise.all([connectNats(nats.url, "provision-a"), connectNats(nats.url, "provision-b")]);
  await Promise.all([provision(a), provision(b), provision(a), provision(b)]);
  await assertProvisioned(t, nats.url);
  await Promise.all([a.drain(), b.drain()]);
});

test("provision brings back settings changed on an existing stream and bucket", async (t) => {
  const nats = await localNats(t);
  const nc = await connectNats(nats.url, "provision-drift-test");
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: INVOCATIONS_STREAM, subjects: ["vespid.invoke.>"], retention: RetentionPolicy.Workqueue, max_age: 60_000 * MS });
  await new Kvm(nc).create(ACTIVATIONS_BUCKET, { history: 5, ttl: 60_000 });
  // Without a configured retention an existing bucket keeps its own (tested in retention.test.ts);
  // with one, it is brought to it.
  await provision(nc, { activationRetentionMs: ACTIVATION_TTL_MS });
  await assertProvisioned(t, nats.url);
  await nc.drain();
});

// --- subject tokens -------------------------------------------------------------------------------

test("subjectToken/fromSubjectToken round-trip odd names into safe tokens", (t) => {
  for (const name of ["plain", "with space", "user@example.com", "a.b.c", "x=y", "=3d", "émoji 🐝", "日本語", "_-", "tab\there", "a>b*c"]) {
    const token = subjectToken(name);
    t.regex(token, /^[A-Za-z0-9_=-]+$/, name);
    t.is(fromSubjectToken(token), name);
  }
  t.is(subjectToken("a.b"), "a=2eb");
  t.not(subjectToken("a b"), subjectToken("a_b"));
});

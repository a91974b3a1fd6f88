// A runner: builds guest images on request and runs the invocations the scheduler assigns to it,
// each in its own virtine, at most `capacity` at once.
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type pino from "pino";
import { ACTION_VERSIONS_BUCKET, ACTIONS_BUCKET, ACTIVATIONS_BUCKET, ALARM_STATE_BUCKET, FEEDS_BUCKET, RunnerHeartbeat, TRIGGERS_BUCKET } from "../contracts/index.ts";
import { DIRECT_QUEUE_PER_SLOT, serveAssignments } from "./assignments.ts";
import { serveBuilds, type BuildService } from "./build-service.ts";
import type { Engine, Isolation } from "./engine.ts";
import { ReopeningEngine } from "./engine-start.ts";
import { observedEngine, RunnerHealth } from "./health.ts";
import { startHeartbeat } from "./heartbeat.ts";
import type { ImageStore } from "./images.ts";
import { runInvocation } from "./invocation.ts";
import { MAX_RECORD_LOG_BYTES } from "./logs-format.ts";
import { ActivationRecorder } from "./recorder.ts";
import { KvReadCache } from "../infra/kv-cache.ts";
import { maxActionLabels, RunnerMetrics } from "./metrics.ts";

export interface RunnerOptions {
  nc: NatsConnection;
  /** Holds the image cache. */
  dataDir: string;
  /** Invocations run at once. */
  capacity: number;
  /** Calls that may wait for a slot (VESPID_RUNNER_QUEUE; default DIRECT_QUEUE_PER_SLOT per slot). */
  queueLimit?: number;
  /** Memory for the engine's snapshots and idle VMs, MiB (engine default when absent). */
  poolMb?: number;
  /** Defaults to hostname-pid-random. */
  runnerId?: string;
  logger: pino.Logger;
  /**
   * The tier to run invocations on (VESPID_ISOLATION): `auto` (default) takes the strongest the
   * host offers; a named tier that the host cannot give makes startRunner throw with the reason.
   * Ignored when `engine` is given: the engine's own tier counts.
   */
  isolation?: Isolation | "auto";
  /** Defaults to the native engine on the tier `isolation` chooses. */
  engine?: Engine;
  /** Defaults to the on-disk image store under dataDir, checking JS code on the runner's engine. */
  images?: ImageStore;
  /**
   * How long close() lets running calls finish before handing them back to the schedulers, ms
   * (default SHUTDOWN_GRACE_MS).
   */
  shutdownGraceMs?: number;
}

/** Default bound on a graceful shutdown's wait for running calls, ms: within the CLI's 20 s shutdown bound (bin/vespid.ts). */
export const SHUTDOWN_GRACE_MS = 10_000;

/** The probe call of an unhealthy runner (runner/health.ts): the smallest JS action there is. */
const PROBE_CODE = "function main() { return { probe: true }; }";

export interface Runner {
  runnerId: string;
  /** The tier every invocation of this runner runs on. */
  isolation: Isolation;
  /** Why that tier, for people: "/dev/kvm is usable", "requested", "/dev/kvm: No such file or directory". */
  isolationReason: string;
  /** Why it takes no work now (its engine failed to start or keeps failing), or undefined when healthy. */
  unhealthy(): string | undefined;
  /**
   * Stops taking work, lets running calls finish within shutdownGraceMs and hands the rest back
   * to their schedulers; resolves once done.
   */
  close(): Promise<void>;
}

/** The line a runner says at start: `isolation: process (/dev/kvm: No such file or directory)`. */
export const describeIsolation = (isolation: Isolation, reason: string): string =>
  `isolation: ${isolation}${reason ? ` (${reason})` : ""}`;

export async function startRunner(opts: RunnerOptions): Promise<Runner> {
  const runnerId = RunnerHeartbeat.shape.runnerId.parse(opts.runnerId ?? newRunnerId());
  const logger = opts.logger.child({ component: "runner", runnerId });
  // Loaded only when no substitute is given: the native engine maps a shared library and the
  // image store needs the guest toolchain, neither of which tests with substitutes should require.
  // Chosen first, so a runner refused its tier touches nothing.
  const native = opts.engine ? undefined : await import("./engine-native.ts");
  const chosen = opts.engine
    ? { isolation: opts.engine.isolation, reason: "the engine given" }
    : native!.chooseIsolation(opts.isolation ?? "auto");
  const kvm = new Kvm(opts.nc);
  const [actions, activations, versions, feeds, triggers, alarmState] = await Promise.all([
    kvm.open(ACTIONS_BUCKET),
    kvm.open(ACTIVATIONS_BUCKET),
    kvm.open(ACTION_VERSIONS_BUCKET),
    // For the feed actions of whisk.system, which the runner runs itself (runner/builtin.ts).
    kvm.open(FEEDS_BUCKET),
    kvm.open(TRIGGERS_BUCKET),
    kvm.open(ALARM_STATE_BUCKET),
  ]);
  // An engine that fails to open leaves the runner up, unhealthy, trying again at each probe.
  const opened = opts.engine ?? new ReopeningEngine(chosen.isolation, () => native!.openNativeEngine({
    isolation: chosen.isolation,
    // Each invocation passes its action's own limit; this only covers calls that do not.
    logLimit: MAX_RECORD_LOG_BYTES,
    threads: opts.capacity,
    ...(opts.poolMb !== undefined && { poolBudget: opts.poolMb * 1024 * 1024 }),
  }));
  const health = new RunnerHealth(async () => {
    if (opened instanceof ReopeningEngine) {
      const why = opened.tryOpen();
      if (why) return why;
    }
    const image = await images.build("nodejs", PROBE_CODE);
    if (!image.ok) return image.error;
    const outcome = await engine.run({ image: image.image, init: image.init ?? new TextEncoder().encode(PROBE_CODE), params: "{}", memoryMb: 128, timeoutMs: 10_000 });
    return outcome.status === "ok" ? undefined : `${outcome.status}: ${outcome.error ?? "no error text"}`;
  }, logger, () => {
    // An unhealthy runner leaves the build queue group too: a PUT's check would fail on its engine.
    syncBuilds();
    heartbeat?.beat();
  });
  // Prometheus metrics (runner/metrics.ts), published once a second for the gateways.
  const metrics = new RunnerMetrics({ runnerId, isolation: chosen.isolation, capacity: opts.capacity, maxActions: maxActionLabels() });
  // Every outcome counts towards health: one failing on the host too often takes the runner out.
  const engine = metrics.countRuns(observedEngine(opened, health));
  // The JS check at PUT runs the code's top level: on this engine, so on the tier that will run it.
  const images = opts.images ?? (await import("./image-store.ts")).createImageStore({ dataDir: opts.dataDir, logger, engine });
  let closing = false;
  // Set once started; the health changes that use them may come before (the first probe).
  let heartbeat: ReturnType<typeof startHeartbeat> | undefined;
  let builds: BuildService | undefined;
  const buildsClosing = new Set<Promise<void>>();
  /** Serves builds exactly while the runner is healthy and not shutting down. */
  const syncBuilds = () => {
    if (!health.unhealthy && !closing && !builds) builds = serveBuilds(opts.nc, images, logger, { isolation: engine.isolation, runnerId });
    else if ((health.unhealthy || closing) && builds) {
      const done = builds.close().finally(() => buildsClosing.delete(done));
      buildsClosing.add(done);
      builds = undefined;
    }
  };
  await health.check();

  const actionsCache = new KvReadCache(actions, logger);
  await actionsCache.start();
  const deps = { actions, actionsCache, versions, images, engine, recorder: new ActivationRecorder(opts.nc, activations, logger, (a) => metrics.observe(a)), logger, feedStores: { feeds, triggers, alarmState } };
  syncBuilds();
  const queueLimit = opts.queueLimit ?? opts.capacity * DIRECT_QUEUE_PER_SLOT;
  const assignments = serveAssignments(opts.nc, {
    runnerId,
    capacity: opts.capacity,
    queueLimit,
    run: (event, ran) => runInvocation(event, deps, ran),
    unhealthy: () => health.unhealthy,
    heartbeatSeq: () => heartbeat?.seq ?? 0,
    logger,
  });
  heartbeat = startHeartbeat(opts.nc, {
    runnerId,
    capacity: opts.capacity,
    isolation: engine.isolation,
    inflight: () => assignments.inflight,
    queued: () => assignments.queued,
    queueLimit,
    held: () => assignments.held(),
    unhealthy: () => health.unhealthy,
    closing: () => closing,
    engineStats: () => engine.stats(),
    logger,
  });
  metrics.inflight = () => assignments.inflight;
  metrics.engineStats = () => engine.stats();
  const metricsPublisher = metrics.publish(opts.nc, logger);
  if (health.unhealthy) logger.error({ why: health.unhealthy }, "runner started unhealthy: it takes no work until its probe call succeeds");
  logger.info({ isolation: engine.isolation, reason: chosen.reason }, describeIsolation(engine.isolation, chosen.reason));
  logger.info({ capacity: opts.capacity, isolation: engine.isolation }, "runner started");

  return {
    runnerId,
    isolation: engine.isolation,
    isolationReason: chosen.reason,
    unhealthy: () => health.unhealthy,
    async close() {
      // Announced at once (capacity 0, closing), so schedulers place nothing more here; the
      // heartbeats go on, listing what is still held, until it is finished or handed back.
      closing = true;
      heartbeat!.beat();
      syncBuilds();
      const handedBack = await assignments.close(opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS);
      await Promise.allSettled([...buildsClosing]);
      if (handedBack.length) logger.warn({ handedBack }, "shutting down: calls still running were handed back to the schedulers");
      heartbeat!.beat();
      heartbeat!.stop();
      metricsPublisher.stop();
      health.stop();
      actionsCache.stop();
      // A call handed back may still be inside the engine; it goes with the process.
      if (!opts.engine && handedBack.length === 0) engine.close();
    },
  };
}

/** `host-pid-random`, reduced to the characters a subject token allows. */
function newRunnerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
  return `${host}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

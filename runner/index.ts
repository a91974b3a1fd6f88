// A runner: builds guest images on request and runs the invocations the scheduler assigns to it,
// each in its own virtine, at most `capacity` at once.
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type pino from "pino";
import { ACTION_VERSIONS_BUCKET, ACTIONS_BUCKET, ACTIVATIONS_BUCKET, RunnerHeartbeat } from "../contracts/index.ts";
import { serveAssignments } from "./assignments.ts";
import { serveBuilds } from "./build-service.ts";
import type { Engine, Isolation } from "./engine.ts";
import { startHeartbeat } from "./heartbeat.ts";
import type { ImageStore } from "./images.ts";
import { runInvocation } from "./invocation.ts";
import { MAX_RECORD_LOG_BYTES } from "./logs-format.ts";
import { ActivationRecorder } from "./recorder.ts";

export interface RunnerOptions {
  nc: NatsConnection;
  /** Holds the image cache. */
  dataDir: string;
  /** Invocations run at once. */
  capacity: number;
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
}

export interface Runner {
  runnerId: string;
  /** The tier every invocation of this runner runs on. */
  isolation: Isolation;
  /** Why that tier, for people: "/dev/kvm is usable", "requested", "/dev/kvm: No such file or directory". */
  isolationReason: string;
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
  const [actions, activations, versions] = await Promise.all([
    kvm.open(ACTIONS_BUCKET),
    kvm.open(ACTIVATIONS_BUCKET),
    kvm.open(ACTION_VERSIONS_BUCKET),
  ]);
  const engine = opts.engine ?? native!.openNativeEngine({
    isolation: chosen.isolation,
    // Each invocation passes its action's own limit; this only covers calls that do not.
    logLimit: MAX_RECORD_LOG_BYTES,
    threads: opts.capacity,
    ...(opts.poolMb !== undefined && { poolBudget: opts.poolMb * 1024 * 1024 }),
  });
  // The JS check at PUT runs the code's top level: on this engine, so on the tier that will run it.
  const images = opts.images ?? (await import("./image-store.ts")).createImageStore({ dataDir: opts.dataDir, logger, engine });

  const deps = { actions, versions, images, engine, recorder: new ActivationRecorder(opts.nc, activations, logger), logger };
  const builds = serveBuilds(opts.nc, images, logger, { isolation: engine.isolation, runnerId });
  const assignments = serveAssignments(opts.nc, {
    runnerId,
    capacity: opts.capacity,
    run: (event) => runInvocation(event, deps),
    logger,
  });
  const heartbeat = startHeartbeat(opts.nc, {
    runnerId,
    capacity: opts.capacity,
    isolation: engine.isolation,
    inflight: () => assignments.inflight,
    engineStats: () => engine.stats(),
  });
  logger.info({ isolation: engine.isolation, reason: chosen.reason }, describeIsolation(engine.isolation, chosen.reason));
  logger.info({ capacity: opts.capacity, isolation: engine.isolation }, "runner started");

  return {
    runnerId,
    isolation: engine.isolation,
    isolationReason: chosen.reason,
    async close() {
      // Silence first: schedulers stop assigning here once the heartbeats stop.
      heartbeat.stop();
      await Promise.all([builds.close(), assignments.close()]);
      if (!opts.engine) engine.close();
    },
  };
}

/** `host-pid-random`, reduced to the characters a subject token allows. */
function newRunnerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
  return `${host}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

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
import type { Engine } from "./engine.ts";
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
  /** Defaults to the native KVM engine. */
  engine?: Engine;
  /** Defaults to the on-disk image store under dataDir. */
  images?: ImageStore;
}

export interface Runner {
  runnerId: string;
  close(): Promise<void>;
}

export async function startRunner(opts: RunnerOptions): Promise<Runner> {
  const runnerId = RunnerHeartbeat.shape.runnerId.parse(opts.runnerId ?? newRunnerId());
  const logger = opts.logger.child({ component: "runner", runnerId });
  const kvm = new Kvm(opts.nc);
  const [actions, activations, versions] = await Promise.all([
    kvm.open(ACTIONS_BUCKET),
    kvm.open(ACTIVATIONS_BUCKET),
    kvm.open(ACTION_VERSIONS_BUCKET),
  ]);
  // Loaded only when no substitute is given: the native engine maps a shared library and the
  // image store needs the guest toolchain, neither of which tests with substitutes should require.
  const engine = opts.engine ?? (await import("./engine-native.ts")).openNativeEngine({
    // Each invocation passes its action's own limit; this only covers calls that do not.
    logLimit: MAX_RECORD_LOG_BYTES,
    threads: opts.capacity,
    ...(opts.poolMb !== undefined && { poolBudget: opts.poolMb * 1024 * 1024 }),
  });
  const images = opts.images ?? (await import("./image-store.ts")).createImageStore({ dataDir: opts.dataDir, logger });

  const deps = { actions, versions, images, engine, recorder: new ActivationRecorder(opts.nc, activations, logger), logger };
  const builds = serveBuilds(opts.nc, images, logger);
  const assignments = serveAssignments(opts.nc, {
    runnerId,
    capacity: opts.capacity,
    run: (event) => runInvocation(event, deps),
    logger,
  });
  const heartbeat = startHeartbeat(opts.nc, {
    runnerId,
    capacity: opts.capacity,
    inflight: () => assignments.inflight,
    engineStats: () => engine.stats(),
  });
  logger.info({ capacity: opts.capacity }, "runner started");

  return {
    runnerId,
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

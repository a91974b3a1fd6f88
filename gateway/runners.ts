// The runners a gateway hears of, for /health: it listens to the same heartbeats the schedulers
// place work by, so an operator (or a load balancer) sees which tiers are live without asking a
// scheduler. A runner silent for RUNNER_EXPIRY_MS is gone, as for the schedulers.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { decodeMessage, RUNNER_EXPIRY_MS, RUNNER_HEARTBEAT_SUBJECT, RunnerHeartbeat, type Isolation } from "../contracts/index.ts";

export interface LiveRunner {
  runnerId: string;
  isolation: Isolation;
  capacity: number;
  inflight: number;
  /** Why it takes no work (its engine cannot run anything), when it says so. */
  unhealthy?: string;
}

export interface RunnerRoster {
  /** Runners heard from within RUNNER_EXPIRY_MS, by id. */
  live(): LiveRunner[];
  close(): void;
}

/** `onHeartbeat` also gets every valid heartbeat (the direct path's runner table, gateway/direct-dispatch.ts). */
export function watchRunners(nc: NatsConnection, logger: Logger, now: () => number = Date.now, onHeartbeat?: (beat: RunnerHeartbeat) => void): RunnerRoster {
  const seen = new Map<string, { runner: LiveRunner; at: number }>();
  const subscription = nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, {
    callback: (err, msg) => {
      if (err) return logger.warn({ err }, "runner heartbeat subscription failed");
      const beat = decodeMessage(RunnerHeartbeat, msg.data);
      if (!beat.success) return;
      const { runnerId, capacity, inflight, unhealthy } = beat.data;
      // A heartbeat without a tier comes from a runner older than tiers: those ran virtines only.
      const runner: LiveRunner = { runnerId, isolation: beat.data.isolation ?? "kvm", capacity, inflight, ...(unhealthy && { unhealthy }) };
      seen.set(runnerId, { runner, at: now() });
      onHeartbeat?.(beat.data);
    },
  });
  return {
    live() {
      const t = now();
      const live: LiveRunner[] = [];
      for (const [id, { runner, at }] of seen) {
        if (t - at < RUNNER_EXPIRY_MS) live.push(runner);
        else seen.delete(id);
      }
      return live.sort((a, b) => a.runnerId.localeCompare(b.runnerId));
    },
    close() {
      try {
        subscription.unsubscribe();
      } catch {
        // The connection is already closed, and the subscription with it.
      }
    },
  };
}

// Tells the schedulers this runner exists and how busy it is; silence for RUNNER_EXPIRY_MS is
// how they learn it is gone.
import type { NatsConnection } from "@nats-io/transport-node";
import { HEARTBEAT_INTERVAL_MS, RUNNER_HEARTBEAT_SUBJECT, type Isolation, type RunnerHeartbeat } from "../contracts/index.ts";
import type { EngineStats } from "./engine.ts";

export interface HeartbeatOptions {
  runnerId: string;
  capacity: number;
  /** Schedulers place work that requires a tier only on runners of that tier. */
  isolation: Isolation;
  inflight: () => number;
  engineStats: () => EngineStats;
}

export function startHeartbeat(nc: NatsConnection, opts: HeartbeatOptions): { stop(): void } {
  const beat = () => {
    const heartbeat: RunnerHeartbeat = {
      runnerId: opts.runnerId,
      capacity: opts.capacity,
      inflight: opts.inflight(),
      at: Date.now(),
      isolation: opts.isolation,
      engine: opts.engineStats(),
    };
    try {
      nc.publish(RUNNER_HEARTBEAT_SUBJECT, JSON.stringify(heartbeat));
    } catch {
      // Closed or draining connection: the runner is on its way out, and silence says so.
    }
  };
  beat(); // at once, so schedulers can place work here without waiting a full interval
  const timer = setInterval(beat, HEARTBEAT_INTERVAL_MS);
  return { stop: () => clearInterval(timer) };
}

// Tells the schedulers this runner exists, how busy it is and which activations it holds (their
// leases); silence for RUNNER_EXPIRY_MS is how they learn it is gone. A heartbeat goes out at once
// after a reconnect, so schedulers that lost messages across it learn what the runner still holds.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { HEARTBEAT_INTERVAL_MS, RUNNER_HEARTBEAT_SUBJECT, type Isolation, type RunnerHeartbeat } from "../contracts/index.ts";
import type { EngineStats } from "./engine.ts";

export interface HeartbeatOptions {
  runnerId: string;
  capacity: number;
  /** Schedulers place work that requires a tier only on runners of that tier. */
  isolation: Isolation;
  inflight: () => number;
  /** Calls waiting for a slot, and how many may. */
  queued?: () => number;
  queueLimit?: number;
  /** Every activation held, running or being recorded. */
  held: () => string[];
  /** Why no work is taken (announced with capacity 0), or undefined. */
  unhealthy: () => string | undefined;
  closing: () => boolean;
  engineStats: () => EngineStats;
  logger?: Logger;
}

export interface Heartbeat {
  /** Heartbeats sent so far: the `seq` of the last one. */
  readonly seq: number;
  /** Sends one now (a change schedulers should hear of before the next interval). */
  beat(): void;
  stop(): void;
}

export function startHeartbeat(nc: NatsConnection, opts: HeartbeatOptions): Heartbeat {
  let seq = 0;
  const beat = () => {
    const unhealthy = opts.unhealthy();
    const closing = opts.closing();
    const heartbeat: RunnerHeartbeat = {
      runnerId: opts.runnerId,
      capacity: unhealthy || closing ? 0 : opts.capacity,
      inflight: opts.inflight(),
      ...(opts.queued && { queued: opts.queued(), queueLimit: unhealthy || closing ? 0 : opts.queueLimit }),
      at: Date.now(),
      seq: ++seq,
      activations: opts.held(),
      isolation: opts.isolation,
      engine: opts.engineStats(),
      ...(unhealthy && { unhealthy }),
      ...(closing && { closing }),
    };
    try {
      nc.publish(RUNNER_HEARTBEAT_SUBJECT, JSON.stringify(heartbeat));
    } catch {
      // Closed or draining connection: the runner is on its way out, and silence says so.
    }
  };
  beat(); // at once, so schedulers can place work here without waiting a full interval
  const timer = setInterval(beat, HEARTBEAT_INTERVAL_MS);
  let stopped = false;
  // Re-announce after a reconnect: what was sent while the server was away is lost.
  void (async () => {
    for await (const status of nc.status()) {
      if (stopped) break;
      if (status.type === "reconnect") {
        opts.logger?.info("reconnected to NATS: announcing what this runner holds");
        beat();
      }
    }
  })().catch(() => undefined);
  return {
    get seq() {
      return seq;
    },
    beat,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}

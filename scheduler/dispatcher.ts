// Places invocation events on runners as slots free up. Events wait here ("parked") while every
// runner is busy or none is up, kept alive with working(), so a burst or a runner restart costs
// no redeliveries; only a failed placement does (nak), and the last one is given up on for good.
// An event that requires an isolation tier waits in its own queue for a runner of that tier, so
// it holds up no other event; while no such runner has been heard from for MISSING_TIER_WAIT_MS it
// ends at once with a record naming the tier, rather than waiting for one that may never come.
import type { JsMsg } from "@nats-io/jetstream";
import { RequestError, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { decodeMessage, InvocationEvent, type Isolation } from "../contracts/index.ts";
import type { Abandon } from "./abandon.ts";
import { requestAssignment, WORKING_INTERVAL_MS } from "./assignment.ts";
import { MAX_DELIVER } from "./consumer.ts";
import type { RunnerTable } from "./runner-table.ts";

/** Before a failed placement is retried (ms): long enough for a refusing runner's load to drop. */
export const RETRY_DELAY_MS = 500;
/**
 * A tier no runner has been heard from for this long (ms), by a scheduler up at least as long, is
 * missing: events that require it end at once. Longer than a runner's heartbeat interval and
 * expiry, so a scheduler that just started, or a runner restarting, is not mistaken for it.
 */
export const MISSING_TIER_WAIT_MS = 5_000;
/** How often parked events of a missing tier are looked at while there are any (ms). */
const MISSING_TIER_CHECK_MS = 250;

export interface DispatcherDeps {
  nc: NatsConnection;
  runners: RunnerTable;
  abandon: Abandon;
  logger: Logger;
  now?: () => number;
}

interface Pending {
  msg: JsMsg;
  event: InvocationEvent;
  /** Accept order, so the oldest head among the queues goes first. */
  order: number;
}

/** Parked events by requirement: "any", or the tier they require. */
type QueueKey = "any" | Isolation;

export const missingTierMessage = (tier: Isolation): string =>
  `no runner with isolation ${tier} is available (the action or its namespace requires ${tier})`;

export class Dispatcher {
  private readonly queues = new Map<QueueKey, Pending[]>();
  private readonly placing = new Set<Promise<void>>();
  private readonly keepAlive: NodeJS.Timeout;
  private missingTierTimer: NodeJS.Timeout | undefined;
  private accepted = 0;
  private closed = false;
  private readonly now: () => number;
  private readonly startedAt: number;

  constructor(private readonly deps: DispatcherDeps) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.keepAlive = setInterval(() => {
      deps.runners.prune();
      // Throws only once the connection is closed, when every event goes back to the stream anyway.
      tryAcking(() => this.forEachParked(({ msg }) => msg.working()), deps.logger);
    }, WORKING_INTERVAL_MS);
  }

  accept(msg: JsMsg): void {
    const parsed = decodeMessage(InvocationEvent, msg.data);
    if (!parsed.success) {
      this.deps.logger.error({ seq: msg.seq, issues: parsed.error.issues }, "dropping a malformed invocation event");
      return msg.term("malformed invocation event");
    }
    const key: QueueKey = parsed.data.isolation ?? "any";
    let queue = this.queues.get(key);
    if (!queue) this.queues.set(key, (queue = []));
    queue.push({ msg, event: parsed.data, order: this.accepted++ });
    this.pump();
  }

  /** Places parked events while some runner they may run on has a free slot; call when slots may have freed. */
  pump(): void {
    while (!this.closed) {
      // Of the queues whose head has a free runner, the one with the oldest head: first come,
      // first served across requirements.
      let chosen: { queue: Pending[]; runnerId: string } | undefined;
      let chosenOrder = Infinity;
      for (const [key, queue] of this.queues) {
        const head = queue[0];
        if (!head || head.order > chosenOrder) continue;
        const runnerId = this.deps.runners.pickFreest(key === "any" ? undefined : key);
        if (runnerId !== undefined) [chosen, chosenOrder] = [{ queue, runnerId }, head.order];
      }
      if (!chosen) break;
      const pending = chosen.queue.shift()!;
      const { runnerId } = chosen;
      this.deps.runners.reserve(runnerId);
      const done = this.place(pending, runnerId)
        .catch((err: unknown) => this.deps.logger.error({ err, activationId: pending.event.activationId }, "placement failed"))
        .finally(() => {
          this.deps.runners.release(runnerId);
          this.placing.delete(done);
          this.pump();
        });
      this.placing.add(done);
    }
    this.endMissingTiers();
  }

  /** Hands parked events back for redelivery at once and waits for the placements under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.keepAlive);
    clearTimeout(this.missingTierTimer);
    const parked: Pending[] = [];
    for (const queue of this.queues.values()) parked.push(...queue.splice(0));
    tryAcking(() => parked.forEach(({ msg }) => msg.nak()), this.deps.logger);
    await Promise.allSettled([...this.placing]);
  }

  private forEachParked(fn: (pending: Pending) => void): void {
    for (const queue of this.queues.values()) queue.forEach(fn);
  }

  /**
   * Ends, with a record naming the tier, the events that require a tier no runner has offered
   * for MISSING_TIER_WAIT_MS; looks again shortly while any event waits for a tier.
   */
  private endMissingTiers(): void {
    if (this.closed) return;
    const settled = this.now() - this.startedAt >= MISSING_TIER_WAIT_MS;
    let waiting = false;
    for (const [key, queue] of this.queues) {
      if (key === "any" || queue.length === 0) continue;
      if (!settled || this.deps.runners.tierHeardWithin(key, MISSING_TIER_WAIT_MS)) {
        waiting = true;
        continue;
      }
      for (const pending of queue.splice(0)) {
        const done = this.giveUp(pending, missingTierMessage(key))
          .catch((err: unknown) => this.deps.logger.error({ err, activationId: pending.event.activationId }, "could not record a missing tier"))
          .finally(() => this.placing.delete(done));
        this.placing.add(done);
      }
    }
    if (waiting && !this.missingTierTimer) {
      this.missingTierTimer = setTimeout(() => {
        this.missingTierTimer = undefined;
        this.endMissingTiers();
      }, MISSING_TIER_CHECK_MS);
    }
  }

  private async giveUp({ msg, event }: Pending, reason: string): Promise<void> {
    this.deps.logger.warn({ activationId: event.activationId, reason }, "ending an invocation no runner can take");
    try {
      await this.deps.abandon(event, reason);
    } finally {
      tryAcking(() => msg.term(reason), this.deps.logger);
    }
  }

  private async place(pending: Pending, runnerId: string): Promise<void> {
    const { msg, event } = pending;
    const { activationId } = event;
    try {
      const reply = await requestAssignment(this.deps.nc, runnerId, msg.data, {
        isLive: () => this.deps.runners.isLive(runnerId),
        working: () => tryAcking(() => msg.working(), this.deps.logger),
      });
      if (reply.ok) return msg.ack();
      // The runner recorded a failed activation; running it again would not do better.
      if (!reply.retry) {
        this.deps.logger.warn({ activationId, runnerId, error: reply.error }, "runner could not complete an invocation");
        return msg.ack();
      }
      this.deps.runners.markFull(runnerId);
      await this.retryLater(pending, reply.error);
    } catch (err) {
      // A stopped runner is noticed at once, not after its heartbeats expire: otherwise every
      // retry until then would go to it and use up the event's deliveries.
      if (err instanceof RequestError && err.isNoResponders()) this.deps.runners.forget(runnerId);
      await this.retryLater(pending, (err as Error).message);
    }
  }

  private async retryLater({ msg, event }: Pending, reason: string): Promise<void> {
    const { activationId } = event;
    if (msg.info.deliveryCount < MAX_DELIVER) {
      this.deps.logger.debug({ activationId, reason }, "placement failed; retrying");
      return msg.nak(RETRY_DELAY_MS);
    }
    this.deps.logger.error({ activationId, reason, deliveries: msg.info.deliveryCount }, "giving up on an invocation");
    try {
      await this.deps.abandon(event);
    } finally {
      msg.term(`not placed after ${MAX_DELIVER} deliveries`);
    }
  }
}

/** Acks go out on the connection; once it is closed they fail, and redelivery takes over. */
function tryAcking(ack: () => void, logger: Logger): void {
  try {
    ack();
  } catch (err) {
    logger.debug({ err }, "could not acknowledge an invocation event");
  }
}

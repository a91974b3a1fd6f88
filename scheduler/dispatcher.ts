// Places invocation events on runners as slots free up. Events wait here ("parked") while every
// runner is busy or none is up, kept alive with working(), so a burst or a runner restart costs
// no redeliveries; only a failed placement does (nak), and the last one is given up on for good.
import type { JsMsg } from "@nats-io/jetstream";
import { RequestError, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { decodeMessage, InvocationEvent } from "../contracts/index.ts";
import type { Abandon } from "./abandon.ts";
import { requestAssignment, WORKING_INTERVAL_MS } from "./assignment.ts";
import { MAX_DELIVER } from "./consumer.ts";
import type { RunnerTable } from "./runner-table.ts";

/** Before a failed placement is retried (ms): long enough for a refusing runner's load to drop. */
export const RETRY_DELAY_MS = 500;

export interface DispatcherDeps {
  nc: NatsConnection;
  runners: RunnerTable;
  abandon: Abandon;
  logger: Logger;
}

interface Pending {
  msg: JsMsg;
  event: InvocationEvent;
}

export class Dispatcher {
  private readonly parked: Pending[] = [];
  private readonly placing = new Set<Promise<void>>();
  private readonly keepAlive: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly deps: DispatcherDeps) {
    this.keepAlive = setInterval(() => {
      deps.runners.prune();
      // Throws only once the connection is closed, when every event goes back to the stream anyway.
      tryAcking(() => this.parked.forEach(({ msg }) => msg.working()), deps.logger);
    }, WORKING_INTERVAL_MS);
  }

  accept(msg: JsMsg): void {
    const parsed = decodeMessage(InvocationEvent, msg.data);
    if (!parsed.success) {
      this.deps.logger.error({ seq: msg.seq, issues: parsed.error.issues }, "dropping a malformed invocation event");
      return msg.term("malformed invocation event");
    }
    this.parked.push({ msg, event: parsed.data });
    this.pump();
  }

  /** Places parked events while some runner has a free slot; call when slots may have freed. */
  pump(): void {
    while (!this.closed && this.parked.length > 0) {
      const runnerId = this.deps.runners.pickFreest();
      if (runnerId === undefined) return;
      const pending = this.parked.shift()!;
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
  }

  /** Hands parked events back for redelivery at once and waits for the placements under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.keepAlive);
    tryAcking(() => this.parked.splice(0).forEach(({ msg }) => msg.nak()), this.deps.logger);
    await Promise.allSettled([...this.placing]);
  }

  private async place({ msg, event }: Pending, runnerId: string): Promise<void> {
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
      await this.retryLater({ msg, event }, reply.error);
    } catch (err) {
      // A stopped runner is noticed at once, not after its heartbeats expire: otherwise every
      // retry until then would go to it and use up the event's deliveries.
      if (err instanceof RequestError && err.isNoResponders()) this.deps.runners.forget(runnerId);
      await this.retryLater({ msg, event }, (err as Error).message);
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

// Places invocation events on runners as slots free up, and holds each placed event under a lease
// until it is recorded. Events wait here ("parked") while every runner is busy or none is up, kept
// alive with working(), so a burst or a runner restart costs no redeliveries.
//
// A lease is kept by the runner's heartbeats, which list every activation it holds:
// - the runner tells how the call went (notices: `ran` frees the slot, `ended` acks the event), but
//   a notice may be lost; a heartbeat later than the one the runner took the work at that no longer
//   lists the activation ends the lease all the same, and the record says how (present: ack;
//   absent: a system failure, retried);
// - a runner silent for RUNNER_EXPIRY_MS (while this scheduler is connected) lost what it held: the
//   events without a record are retried at once;
// - an answer to the assignment that never comes costs ACCEPT_TIMEOUT_MS, then heartbeats decide.
// A redelivered event that a live runner already holds (its scheduler died, or its working() was
// lost) is not placed again: this scheduler takes over the lease.
//
// An event that requires an isolation tier waits in its own queue for a runner of that tier, so it
// holds up no other event; while no such runner has been heard from for MISSING_TIER_WAIT_MS it
// ends at once with a record naming the tier, rather than waiting for one that may never come.
import type { JsMsg } from "@nats-io/jetstream";
import { RequestError, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { decodeMessage, HEARTBEAT_INTERVAL_MS, InvocationEvent, type AssignmentAck, type AssignmentNotice, type Isolation } from "../contracts/index.ts";
import type { Abandon } from "./abandon.ts";
import { assignmentPayload, requestAssignment, WORKING_INTERVAL_MS } from "./assignment.ts";
import type { DeadLetterWriter } from "./dead-letters.ts";
import { DEFAULT_MAX_RETRIES, retryDelayMs } from "./retries.ts";
import type { RunnerTable } from "./runner-table.ts";
import { callIds } from "../infra/logger.ts";

/**
 * A tier no runner has been heard from for this long (ms), by a scheduler up at least as long, is
 * missing: events that require it end at once. Longer than a runner's heartbeat interval and
 * expiry, so a scheduler that just started, or a runner restarting, is not mistaken for it.
 */
export const MISSING_TIER_WAIT_MS = 5_000;
/** How often parked events of a missing tier are looked at while there are any (ms). */
const MISSING_TIER_CHECK_MS = 250;
/** How often leases are checked against runner expiry, ms. */
const LEASE_CHECK_MS = 250;
/**
 * A scheduler younger than this (ms) has not heard every runner's heartbeat yet, so it cannot tell
 * whether a redelivered event is still held by one: it looks at such events once it has.
 */
const HEARD_EVERYONE_MS = HEARTBEAT_INTERVAL_MS * 1.5;

export interface DispatcherDeps {
  nc: NatsConnection;
  runners: RunnerTable;
  abandon: Abandon;
  logger: Logger;
  /** Where this scheduler's runners send their notices (schedulerNoticeSubject). */
  noticeSubject: string;
  /** Whether the activation has its record; throws when the bucket cannot be read. */
  hasRecord: (event: InvocationEvent) => Promise<boolean>;
  deadLetter: DeadLetterWriter;
  /** System failures retried before an event goes to the dead letters (VESPID_MAX_RETRIES). */
  maxRetries?: number;
  now?: () => number;
}

interface Pending {
  msg: JsMsg;
  event: InvocationEvent;
  /** Accept order, so the oldest head among the queues goes first. */
  order: number;
}

interface Lease {
  pending: Pending;
  runnerId: string;
  /** The runner's heartbeat count when the assignment went out. */
  seqAtSend: number;
  /** A heartbeat later than this one that does not list the activation ends the lease; unset until known. */
  heldFromSeq?: number;
  /** A slot of the runner is counted as ours until the engine is done. */
  reserved: boolean;
}

/** Parked events by requirement: "any", or the tier they require. */
type QueueKey = "any" | Isolation;

export const missingTierMessage = (tier: Isolation): string =>
  `no runner with isolation ${tier} is available (the action or its namespace requires ${tier})`;

export class Dispatcher {
  private readonly queues = new Map<QueueKey, Pending[]>();
  /** Parked events by activation id, so a redelivery of one held here replaces it instead of doubling it. */
  private readonly parked = new Map<string, Pending>();
  private readonly leases = new Map<string, Lease>();
  private readonly endings = new Set<Promise<void>>();
  private readonly keepAlive: NodeJS.Timeout;
  private readonly leaseCheck: NodeJS.Timeout;
  private missingTierTimer: NodeJS.Timeout | undefined;
  private accepted = 0;
  private closed = false;
  private connected = true;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly maxRetries: number;

  constructor(private readonly deps: DispatcherDeps) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.maxRetries = deps.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.keepAlive = setInterval(() => {
      deps.runners.prune();
      // Throws only once the connection is closed, when every event goes back to the stream anyway.
      tryAcking(() => {
        for (const pending of this.parked.values()) pending.msg.working();
        for (const lease of this.leases.values()) lease.pending.msg.working();
      }, deps.logger);
    }, WORKING_INTERVAL_MS);
    this.leaseCheck = setInterval(() => this.expireLeases(), LEASE_CHECK_MS);
  }

  /** Events this scheduler holds: parked, and placed under a lease. */
  get holding(): { parked: number; leased: number } {
    return { parked: this.parked.size, leased: this.leases.size };
  }

  accept(msg: JsMsg): void {
    if (this.closed) return tryAcking(() => msg.nak(), this.deps.logger);
    const parsed = decodeMessage(InvocationEvent, msg.data);
    if (!parsed.success) {
      this.deps.logger.error({ seq: msg.seq, issues: parsed.error.issues }, "dropping a malformed invocation event");
      return msg.term("malformed invocation event");
    }
    const event = parsed.data;
    const { activationId } = event;
    // JetStream gave it to us again while we hold it (our working() was lost): keep one, acked through the newest delivery.
    const lease = this.leases.get(activationId);
    if (lease) return void (lease.pending.msg = msg);
    const parked = this.parked.get(activationId);
    if (parked) return void (parked.msg = msg);
    // A gateway's direct call queued here after its runner went quiet says `redelivered`: it may be
    // running already, like any redelivery.
    if (msg.info.deliveryCount > 1 || event.redelivered) {
      const young = HEARD_EVERYONE_MS - (this.now() - this.startedAt);
      if (young > 0) return void setTimeout(() => this.accept(msg), young);
      const holder = this.deps.runners.holder(activationId);
      if (holder !== undefined) {
        // Running on a live runner under a lease someone else lost: take the lease over, run nothing.
        this.deps.logger.info({ activationId, runnerId: holder }, "a redelivered invocation is running already: taking over its lease");
        const seq = this.deps.runners.seq(holder);
        this.leases.set(activationId, { pending: { msg, event, order: this.accepted++ }, runnerId: holder, seqAtSend: seq, heldFromSeq: seq, reserved: false });
        return;
      }
    }
    this.park({ msg, event, order: this.accepted++ });
    this.pump();
  }

  /** A runner's heartbeat was heard: ends the leases it shows to be over. */
  heartbeat(runnerId: string): void {
    const seq = this.deps.runners.seq(runnerId);
    for (const lease of this.leases.values()) {
      if (lease.runnerId !== runnerId) continue;
      const held = this.deps.runners.holds(runnerId, lease.pending.event.activationId);
      // A runner that lists nothing is older than leases: its answers and expiry are all there is.
      if (held === undefined || held) continue;
      if (seq < lease.seqAtSend) this.lost(lease, `runner ${runnerId} restarted and no longer holds the invocation`);
      else if (lease.heldFromSeq !== undefined && seq > lease.heldFromSeq) this.lost(lease, `runner ${runnerId} no longer holds the invocation`);
    }
    this.pump();
  }

  /** A runner's notice about an assignment of ours. */
  notice(notice: AssignmentNotice): void {
    const lease = this.leases.get(notice.activationId);
    if (!lease || lease.runnerId !== notice.runnerId) return;
    if (notice.phase === "ran") {
      this.unreserve(lease);
      return this.pump();
    }
    this.endLease(lease);
    const { msg, event } = lease.pending;
    if (notice.ok) tryAcking(() => msg.ack(), this.deps.logger);
    else if (notice.retry) this.track(this.systemFailure(lease.pending, notice.error ?? "the runner could not finish the invocation"));
    else {
      // The runner recorded how it failed; running it again would not do better.
      this.deps.logger.warn({ activationId: event.activationId, runnerId: notice.runnerId, error: notice.error }, "runner could not complete an invocation");
      tryAcking(() => msg.ack(), this.deps.logger);
    }
    this.pump();
  }

  /** The NATS connection went away or came back: runners are not judged by heartbeats we could not hear. */
  connection(up: boolean): void {
    this.connected = up;
    this.deps.runners.excuseSilence();
    if (up) this.pump();
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
      this.parked.delete(pending.event.activationId);
      this.place(pending, chosen.runnerId);
    }
    this.endMissingTiers();
  }

  /**
   * Hands every event held here back for redelivery at once: parked ones to be placed by another
   * scheduler, leased ones to be taken over (their runner still holds them), and waits for the
   * records and dead letters being written.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.keepAlive);
    clearInterval(this.leaseCheck);
    clearTimeout(this.missingTierTimer);
    const held = [...this.parked.values(), ...[...this.leases.values()].map((l) => l.pending)];
    for (const queue of this.queues.values()) queue.splice(0);
    this.parked.clear();
    for (const lease of this.leases.values()) this.unreserve(lease);
    this.leases.clear();
    tryAcking(() => held.forEach(({ msg }) => msg.nak()), this.deps.logger);
    await Promise.allSettled([...this.endings]);
  }

  private park(pending: Pending, first = false): void {
    const key: QueueKey = pending.event.isolation ?? "any";
    let queue = this.queues.get(key);
    if (!queue) this.queues.set(key, (queue = []));
    // Put back at its place by accept order: a refused event keeps its turn.
    if (first) {
      const at = queue.findIndex((p) => p.order > pending.order);
      queue.splice(at < 0 ? queue.length : at, 0, pending);
    } else queue.push(pending);
    this.parked.set(pending.event.activationId, pending);
  }

  private place(pending: Pending, runnerId: string): void {
    const { msg, event } = pending;
    const lease: Lease = { pending, runnerId, seqAtSend: this.deps.runners.seq(runnerId), reserved: true };
    this.deps.runners.reserve(runnerId);
    this.leases.set(event.activationId, lease);
    this.deps.logger.debug({ ...callIds(event), runnerId }, "assigning an invocation");
    let payload: Uint8Array;
    try {
      payload = assignmentPayload(msg.data, msg.info.deliveryCount);
    } catch (err) {
      // decodeMessage took it, so it is JSON; this is only for safety's sake.
      this.endLease(lease);
      return void this.track(this.giveUp(pending, `the event could not be re-encoded: ${(err as Error).message}`));
    }
    requestAssignment(this.deps.nc, runnerId, payload, this.deps.noticeSubject).then(
      (ack) => this.answered(lease, ack),
      (err: unknown) => this.unanswered(lease, err),
    );
  }

  private answered(lease: Lease, ack: AssignmentAck): void {
    if (this.leases.get(lease.pending.event.activationId) !== lease) return;
    if (ack.accepted) {
      lease.heldFromSeq = ack.seq;
      return;
    }
    this.endLease(lease);
    if (!ack.retry) return void this.track(this.giveUp(lease.pending, ack.error));
    // Full, unhealthy or shutting down: placed again at its turn, at no cost to its retries.
    this.deps.logger.debug({ activationId: lease.pending.event.activationId, runnerId: lease.runnerId, error: ack.error }, "assignment refused; placing it again");
    this.deps.runners.markFull(lease.runnerId);
    this.park(lease.pending, true);
    this.pump();
  }

  private unanswered(lease: Lease, err: unknown): void {
    if (this.leases.get(lease.pending.event.activationId) !== lease) return;
    if (err instanceof RequestError && err.isNoResponders()) {
      // Nobody listens on the runner's subject: it is gone, whatever its last heartbeat said, and
      // never got the event. Placed again elsewhere at once.
      this.deps.runners.forget(lease.runnerId);
      this.endLease(lease);
      this.park(lease.pending, true);
      return this.pump();
    }
    // The request or its answer was lost (a reconnect, a slow runner): whether the runner took it
    // shows in its heartbeats. One beat of margin for a request still on its way.
    this.deps.logger.debug({ err, activationId: lease.pending.event.activationId, runnerId: lease.runnerId }, "no answer to an assignment; its runner's heartbeats will tell");
    lease.heldFromSeq = lease.seqAtSend + 1;
  }

  /** Ends the leases of runners that stopped sending heartbeats. */
  private expireLeases(): void {
    if (!this.connected || this.closed) return;
    for (const lease of this.leases.values()) {
      if (!this.deps.runners.isLive(lease.runnerId)) this.lost(lease, `runner ${lease.runnerId} stopped sending heartbeats`);
    }
  }

  /** The runner no longer holds the event: its record says whether it finished. */
  private lost(lease: Lease, reason: string): void {
    this.endLease(lease);
    const { pending } = lease;
    this.track((async () => {
      let recorded = false;
      try {
        recorded = await this.deps.hasRecord(pending.event);
      } catch (err) {
        this.deps.logger.warn({ err, activationId: pending.event.activationId }, "could not look for the record of a lost invocation");
      }
      if (recorded) return tryAcking(() => pending.msg.ack(), this.deps.logger);
      this.deps.logger.warn({ activationId: pending.event.activationId, reason }, "an invocation was lost with its lease; retrying it");
      await this.systemFailure(pending, reason);
    })());
  }

  /** A failure on the platform's side: retried with backoff, or, with its retries used up, dead-lettered and recorded as failed. */
  private async systemFailure({ msg, event }: Pending, reason: string): Promise<void> {
    const deliveries = msg.info.deliveryCount;
    if (deliveries <= this.maxRetries) {
      this.deps.logger.debug({ activationId: event.activationId, reason, retry: deliveries }, "retrying an invocation");
      return tryAcking(() => msg.nak(retryDelayMs(deliveries)), this.deps.logger);
    }
    const why = `The invocation failed on the platform's side in all of its ${deliveries} attempts (VESPID_MAX_RETRIES ${this.maxRetries}); the last failure: ${reason}`;
    this.deps.logger.error({ activationId: event.activationId, reason, deliveries }, "giving up on an invocation: it goes to the dead letters");
    try {
      await this.deps.deadLetter(event, reason, deliveries);
      await this.deps.abandon(event, why);
    } catch (err) {
      // Nothing is dropped before both are written: the event comes back and this is tried again.
      this.deps.logger.error({ err, activationId: event.activationId }, "could not dead-letter an invocation; it comes back later");
      return tryAcking(() => msg.nak(retryDelayMs(deliveries)), this.deps.logger);
    }
    tryAcking(() => msg.term(why), this.deps.logger);
  }

  private endLease(lease: Lease): void {
    this.unreserve(lease);
    if (this.leases.get(lease.pending.event.activationId) === lease) this.leases.delete(lease.pending.event.activationId);
  }

  private unreserve(lease: Lease): void {
    if (!lease.reserved) return;
    lease.reserved = false;
    this.deps.runners.release(lease.runnerId);
  }

  private track(work: Promise<void>): void {
    const done = work
      .catch((err: unknown) => this.deps.logger.error({ err }, "ending an invocation failed"))
      .finally(() => this.endings.delete(done));
    this.endings.add(done);
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
        this.parked.delete(pending.event.activationId);
        this.track(this.giveUp(pending, missingTierMessage(key)));
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
    } catch (err) {
      // No record yet: the event comes back, and the next try may write one.
      this.deps.logger.error({ err, activationId: event.activationId }, "could not record an invocation no runner can take");
      return tryAcking(() => msg.nak(retryDelayMs(msg.info.deliveryCount)), this.deps.logger);
    }
    tryAcking(() => msg.term(reason), this.deps.logger);
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

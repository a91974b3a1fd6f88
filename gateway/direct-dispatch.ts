// The direct path of blocking calls: the gateway hands the invocation straight to a runner with
// room (a slot, or a place in its short queue), skipping JetStream and the scheduler. A blocking
// caller holds its connection open for the answer, so what JetStream's storage buys a queued call
// (surviving the gateway) buys it nothing; what it must not do is lose the call while the gateway
// lives. So the gateway keeps each direct call until its record arrives, and queues it on JetStream
// like any other invocation (with `redelivered`, so a runner first looks for its record) when:
// - the runner answers that it could not finish it (an `ended` notice with retry: its record could
//   not be written, or it shut down before the call started);
// - the runner stops sending heartbeats (RUNNER_EXPIRY_MS) while holding it;
// - the runner never answered the hand-over and two of its later heartbeats do not list the call.
// A runner that is full, unhealthy or gone answers at once (a refusal, or no responders): the call
// is queued on JetStream then, as if the direct path did not exist.
//
// Cost on the path: one request to the runner (answered before the call runs) instead of a
// JetStream publish, a pull, an assignment and an ack; the record comes back on replyTo as usual.
import { headers, RequestError, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  AssignmentAck,
  AssignmentNotice,
  decodeMessage,
  DONE_TO_HEADER,
  gatewayNoticeSubject,
  runnerRunSubject,
  type InvocationEvent,
  type RunnerHeartbeat,
} from "../contracts/index.ts";
import { ACCEPT_TIMEOUT_MS } from "../scheduler/assignment.ts";
import { RunnerTable } from "../scheduler/runner-table.ts";

/** How often direct calls are checked against their runners' heartbeats, ms. */
const CHECK_MS = 250;
/** A runner's heartbeats that must omit an unanswered call before it counts as never received. */
const BEATS_TO_DISOWN = 2;

interface DirectCall {
  event: InvocationEvent;
  runnerId: string;
  /** Heartbeats of the runner heard since the hand-over, while it is unanswered; undefined once accepted. */
  unansweredBeats?: number;
  /** Set while it is being queued on JetStream instead. */
  requeuing?: boolean;
}

export interface DirectDispatchOptions {
  nc: NatsConnection;
  gatewayId: string;
  logger: Logger;
  /**
   * Queues the event on JetStream (the invoker's publish); rejects when it could not. Called with
   * `redelivered: true` set on the event, so the runner that gets it looks for a record first.
   */
  requeue: (event: InvocationEvent) => Promise<void>;
}

export class DirectDispatch {
  private readonly runners = new RunnerTable();
  private readonly calls = new Map<string, DirectCall>();
  private readonly noticeSubject: string;
  private readonly notices;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private connected = true;

  constructor(private readonly opts: DirectDispatchOptions) {
    this.noticeSubject = gatewayNoticeSubject(opts.gatewayId);
    this.notices = opts.nc.subscribe(this.noticeSubject, {
      callback: (err, msg) => {
        if (err) return opts.logger.error({ err }, "direct call notice subscription failed");
        const notice = decodeMessage(AssignmentNotice, msg.data);
        if (notice.success) this.notice(notice.data);
      },
    });
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
    // Heartbeats this gateway could not hear say nothing about the runners (as for schedulers).
    void (async () => {
      for await (const status of opts.nc.status()) {
        if (status.type !== "disconnect" && status.type !== "reconnect") continue;
        this.connected = status.type === "reconnect";
        this.runners.excuseSilence();
      }
    })().catch(() => undefined);
  }

  /** Feed every runner heartbeat here (gateway/runners.ts watchRunners' onHeartbeat). */
  heartbeat(beat: RunnerHeartbeat): void {
    this.runners.observe(beat);
    for (const call of this.calls.values()) {
      if (call.runnerId !== beat.runnerId || call.unansweredBeats === undefined) continue;
      if (beat.activations?.includes(call.event.activationId)) call.unansweredBeats = undefined;
      else if (++call.unansweredBeats >= BEATS_TO_DISOWN) this.requeue(call, "the runner never took the call");
    }
  }

  /** Direct calls waiting for their records. */
  get pending(): number {
    return this.calls.size;
  }

  /**
   * Hands a blocking invocation (with replyTo set) to a runner with room. True when a runner took
   * it, or may have: the gateway then answers for it until its record arrives (finished()). False
   * when no runner could: queue it on JetStream.
   */
  async send(event: InvocationEvent, payload: Uint8Array): Promise<boolean> {
    if (this.closed) return false;
    const runnerId = this.runners.pickFreest(event.isolation, { direct: true });
    if (runnerId === undefined) return false;
    const call: DirectCall = { event, runnerId };
    this.calls.set(event.activationId, call);
    this.runners.reserve(runnerId);
    const h = headers();
    h.set(DONE_TO_HEADER, this.noticeSubject);
    let ack: AssignmentAck;
    try {
      const reply = await this.opts.nc.request(runnerRunSubject(runnerId), payload, { timeout: ACCEPT_TIMEOUT_MS, headers: h });
      ack = AssignmentAck.parse(reply.json());
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders()) {
        // Nobody listens there: the runner is gone (or predates direct calls) and never got it.
        this.runners.forget(runnerId);
        this.drop(call);
        return false;
      }
      // Lost on the way there or back: the runner's heartbeats will say whether it holds the call.
      this.opts.logger.debug({ err, activationId: event.activationId, runnerId }, "no answer to a direct call; its runner's heartbeats will tell");
      if (this.calls.get(event.activationId) === call) call.unansweredBeats = 0;
      return true;
    }
    if (ack.accepted) return true;
    this.drop(call);
    this.runners.markFull(runnerId);
    return false;
  }

  /** The call's record arrived (or its lease ran out): nothing more to answer for. */
  finished(activationId: string): void {
    const call = this.calls.get(activationId);
    if (call && !call.requeuing) this.drop(call);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    try {
      this.notices.unsubscribe();
    } catch {
      // The connection is closed already.
    }
  }

  private notice(notice: AssignmentNotice): void {
    const call = this.calls.get(notice.activationId);
    if (!call || call.runnerId !== notice.runnerId || notice.phase !== "ended" || notice.ok) return;
    this.requeue(call, notice.error ?? "the runner could not finish the call");
  }

  /** Calls whose runner went silent are queued on JetStream; so are calls a requeue failed for. */
  private check(): void {
    if (!this.connected) return;
    this.runners.prune();
    for (const call of this.calls.values()) {
      if (call.requeuing) continue;
      if (!this.runners.isLive(call.runnerId)) this.requeue(call, `runner ${call.runnerId} stopped sending heartbeats`);
    }
  }

  private requeue(call: DirectCall, reason: string): void {
    if (call.requeuing || this.closed) return;
    call.requeuing = true;
    this.runners.release(call.runnerId);
    this.opts.logger.warn({ activationId: call.event.activationId, runnerId: call.runnerId, reason }, "a direct call goes to the queue instead");
    this.opts.requeue({ ...call.event, redelivered: true }).then(
      () => this.calls.get(call.event.activationId) === call && this.calls.delete(call.event.activationId),
      (err: unknown) => {
        // JetStream cannot take it now (an outage): tried again at the next check, while the runner stays silent.
        this.opts.logger.warn({ err, activationId: call.event.activationId }, "could not queue a direct call; trying again");
        setTimeout(() => {
          call.requeuing = false;
          this.runners.reserve(call.runnerId);
          this.requeue(call, reason);
        }, 1_000).unref();
      },
    );
  }

  private drop(call: DirectCall): void {
    if (this.calls.get(call.event.activationId) !== call) return;
    this.calls.delete(call.event.activationId);
    this.runners.release(call.runnerId);
  }
}

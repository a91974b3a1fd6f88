// Invocations the scheduler assigns to this runner, on its own subject.
//
// An assignment carrying DONE_TO_HEADER is answered at once (AssignmentAck: taken, or refused and
// why), and how it goes is told afterwards on that subject (AssignmentNotice): `ran` when the
// engine is done, which frees the slot while the record is written, then `ended`. Notices are fire
// and forget; what the scheduler trusts is the list of held activations in every heartbeat. An
// assignment without the header (an older scheduler, a tool) is answered once recorded, with an
// AssignmentReply, as before.
//
// The same activation assigned again while held here (a redelivery to another scheduler) is not run
// a second time: the new assigner is told about the run under way.
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  decodeMessage,
  DONE_TO_HEADER,
  InvocationEvent,
  runnerAssignSubject,
  type AssignmentAck,
  type AssignmentNotice,
  type AssignmentReply,
} from "../contracts/index.ts";

/** Finished calls being recorded at once, per slot: recording overlaps the next call, within bounds. */
const RECORDING_PER_SLOT = 4;

export interface AssignmentService {
  /** Calls whose engine run is under way: the slots in use. */
  readonly inflight: number;
  /** Every activation held (running or being recorded), for the heartbeat. */
  held(): string[];
  /** Takes no more work, waits up to `graceMs` for what it holds, then hands the rest back; resolves to the ids handed back. */
  close(graceMs: number): Promise<string[]>;
}

export interface AssignmentOptions {
  runnerId: string;
  capacity: number;
  /** `ran` is called once the engine is done with the call, before its record is written. */
  run: (event: InvocationEvent, ran: () => void) => Promise<AssignmentReply>;
  /** Why no work is taken now (unhealthy), or undefined. */
  unhealthy: () => string | undefined;
  /** The heartbeat count at this moment (AssignmentAck.seq). */
  heartbeatSeq: () => number;
  logger: Logger;
}

interface Held {
  running: boolean;
  /** Subjects of the schedulers to tell how it goes. */
  watchers: Set<string>;
  done: Promise<void>;
  /** Set when the runner hands the call back at shutdown: nothing more is said about it. */
  handedBack: boolean;
}

export function serveAssignments(nc: NatsConnection, opts: AssignmentOptions): AssignmentService {
  const held = new Map<string, Held>();
  let running = 0;
  let closing = false;

  const notify = (activationId: string, entry: Held, notice: Omit<AssignmentNotice, "runnerId" | "activationId">) => {
    const data = JSON.stringify({ runnerId: opts.runnerId, activationId, ...notice } satisfies AssignmentNotice);
    for (const subject of entry.watchers) {
      try {
        nc.publish(subject, data);
      } catch {
        // The connection is closed: the scheduler learns from the heartbeats (or their silence).
      }
    }
  };

  /** Why no more work is taken now (each worth placing elsewhere), or undefined. */
  const refusal = (): string | undefined => {
    if (closing) return "runner is shutting down";
    const unhealthy = opts.unhealthy();
    if (unhealthy) return `runner is unhealthy: ${unhealthy}`;
    // The scheduler's view of our load lags a heartbeat behind; refuse and let it place elsewhere.
    if (running >= opts.capacity || held.size >= opts.capacity * (1 + RECORDING_PER_SLOT)) return "runner is full";
    return undefined;
  };

  const accept = (msg: Msg) => {
    const doneTo = msg.headers?.get(DONE_TO_HEADER) || undefined;
    const parsed = decodeMessage(InvocationEvent, msg.data);
    if (!parsed.success) {
      opts.logger.warn({ issues: parsed.error.issues }, "refusing a malformed assignment");
      const error = "malformed invocation event";
      return respond(msg, doneTo ? { accepted: false, error, retry: false } : { ok: false, error, retry: false });
    }
    const event = parsed.data;
    const { activationId } = event;
    const already = held.get(activationId);
    if (already) {
      if (!doneTo) return void already.done.then(() => respond(msg, { ok: true, activationId }));
      already.watchers.add(doneTo);
      return respond(msg, { accepted: true, seq: opts.heartbeatSeq() });
    }
    const refused = refusal();
    if (refused) return respond(msg, doneTo ? { accepted: false, error: refused, retry: true } : { ok: false, error: refused, retry: true });

    const entry: Held = { running: true, watchers: new Set(doneTo ? [doneTo] : []), done: Promise.resolve(), handedBack: false };
    running++;
    const ran = () => {
      if (!entry.running) return;
      entry.running = false;
      running--;
      if (!entry.handedBack) notify(activationId, entry, { phase: "ran" });
    };
    entry.done = opts
      .run(event, ran)
      .catch((err: unknown): AssignmentReply => {
        opts.logger.error({ err, activationId }, "assignment failed");
        return { ok: false, error: "the runner failed to run the invocation", retry: false };
      })
      .then((reply) => {
        ran();
        held.delete(activationId);
        if (entry.handedBack) return;
        if (!doneTo) return respond(msg, reply);
        notify(activationId, entry, reply.ok ? { phase: "ended", ok: true } : { phase: "ended", ok: false, retry: reply.retry, error: reply.error });
      });
    held.set(activationId, entry);
    if (doneTo) respond(msg, { accepted: true, seq: opts.heartbeatSeq() });
  };

  const subscription = nc.subscribe(runnerAssignSubject(opts.runnerId), {
    callback: (err, msg) => (err ? opts.logger.error({ err }, "assignment subscription failed") : accept(msg)),
  });

  return {
    get inflight() {
      return running;
    },
    held: () => [...held.keys()],
    async close(graceMs) {
      closing = true;
      try {
        subscription.unsubscribe();
      } catch {
        // The connection is closed already, and the subscription with it.
      }
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<"over">((resolve) => (timer = setTimeout(() => resolve("over"), graceMs)));
      const finished = await Promise.race([Promise.allSettled([...held.values()].map((h) => h.done)), graceOver]);
      clearTimeout(timer);
      if (finished !== "over") return [];
      // What still runs is given back, so another runner takes it now, not after an ack wait. If it
      // does finish here after all, its record is a create-if-absent, and the other run's record
      // and this one cannot both stand.
      const handedBack: string[] = [];
      for (const [activationId, entry] of held) {
        notify(activationId, entry, { phase: "ended", ok: false, retry: true, error: "the runner shut down before the call finished" });
        entry.handedBack = true;
        handedBack.push(activationId);
      }
      held.clear();
      return handedBack;
    },
  };
}

function respond(msg: Msg, reply: AssignmentReply | AssignmentAck): void {
  try {
    msg.respond(JSON.stringify(reply));
  } catch {
    // The connection closed under us: the scheduler learns from the heartbeats.
  }
}

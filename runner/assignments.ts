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
//
// Blocking calls may also come straight from a gateway, on `vespid.runner.<id>.run` (the direct
// path: no JetStream, no scheduler). They are answered at once too. Calls from either wait here,
// first come first served, in a queue of at most `queueLimit` behind busy slots: a few ms of
// waiting here cost less than a refusal and a placement elsewhere, and schedulers and gateways
// share the slots fairly. A direct call's record goes to the event's replyTo; only a failure to
// finish is told to its gateway (an `ended` notice with retry), which then queues it on JetStream.
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  decodeMessage,
  DONE_TO_HEADER,
  InvocationEvent,
  runnerAssignSubject,
  runnerRunSubject,
  type AssignmentAck,
  type AssignmentNotice,
  type AssignmentReply,
} from "../contracts/index.ts";

/** Finished calls being recorded at once, per slot: recording overlaps the next call, within bounds. */
const RECORDING_PER_SLOT = 4;
/** Calls that may wait for a slot, per slot, unless VESPID_RUNNER_QUEUE says otherwise. */
export const DIRECT_QUEUE_PER_SLOT = 32;

export interface AssignmentService {
  /** Calls whose engine run is under way: the slots in use. */
  readonly inflight: number;
  /** Calls waiting for a slot. */
  readonly queued: number;
  /** Every activation held (running or being recorded), for the heartbeat. */
  held(): string[];
  /** Takes no more work, waits up to `graceMs` for what it holds, then hands the rest back; resolves to the ids handed back. */
  close(graceMs: number): Promise<string[]>;
}

export interface AssignmentOptions {
  runnerId: string;
  capacity: number;
  /** Calls that may wait for a slot (default DIRECT_QUEUE_PER_SLOT per slot); 0 also means no direct calls are offered. */
  queueLimit?: number;
  /** `ran` is called once the engine is done with the call, before its record is written. */
  run: (event: InvocationEvent, ran: () => void) => Promise<AssignmentReply>;
  /** Why no work is taken now (unhealthy), or undefined. */
  unhealthy: () => string | undefined;
  /** The heartbeat count at this moment (AssignmentAck.seq). */
  heartbeatSeq: () => number;
  logger: Logger;
}

interface Held {
  /** Holds a slot: the engine runs it (or is about to). */
  running: boolean;
  /** Waits in the queue for a slot; `start` takes one. */
  waiting?: { start: () => void };
  /**
   * Subjects to tell how it goes: schedulers' (every notice), and gateways' for direct calls
   * (`failuresOnly`: a gateway hears of success from the record itself).
   */
  watchers: Map<string, { failuresOnly: boolean }>;
  done: Promise<void>;
  /** Set when the runner hands the call back at shutdown: nothing more is said about it. */
  handedBack: boolean;
}

export function serveAssignments(nc: NatsConnection, opts: AssignmentOptions): AssignmentService {
  const held = new Map<string, Held>();
  /** Calls waiting for a slot, oldest first. */
  const queue: Held[] = [];
  const queueLimit = opts.queueLimit ?? opts.capacity * DIRECT_QUEUE_PER_SLOT;
  let running = 0;
  let closing = false;

  const notify = (activationId: string, entry: Held, notice: Omit<AssignmentNotice, "runnerId" | "activationId">) => {
    const data = JSON.stringify({ runnerId: opts.runnerId, activationId, ...notice } satisfies AssignmentNotice);
    const failure = notice.phase === "ended" && !notice.ok;
    for (const [subject, { failuresOnly }] of entry.watchers) {
      if (failuresOnly && !failure) continue;
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

  /** Starts queued calls while slots are free. */
  const drain = () => {
    while (!closing && running < opts.capacity && queue.length > 0) queue.shift()!.waiting!.start();
  };

  const accept = (msg: Msg, direct: boolean) => {
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
      already.watchers.set(doneTo, { failuresOnly: direct });
      return respond(msg, { accepted: true, seq: opts.heartbeatSeq() });
    }
    const refused = queueRefusal();
    if (refused) return respond(msg, doneTo ? { accepted: false, error: refused, retry: true } : { ok: false, error: refused, retry: true });

    const entry: Held = { running: false, watchers: new Map(doneTo ? [[doneTo, { failuresOnly: direct }]] : []), done: Promise.resolve(), handedBack: false };
    const ran = () => {
      if (!entry.running) return;
      entry.running = false;
      running--;
      if (!entry.handedBack) notify(activationId, entry, { phase: "ran" });
      drain();
    };
    const start = () => {
      entry.waiting = undefined;
      entry.running = true;
      running++;
      return opts.run(event, ran);
    };
    let started: Promise<AssignmentReply>;
    if (running < opts.capacity) started = start();
    else {
      // The queue had room (queueRefusal): it runs when a slot frees, after those before it.
      started = new Promise((resolve) => (entry.waiting = { start: () => resolve(start()) }));
      queue.push(entry);
    }
    entry.done = started
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

  /** A call waits for a slot while the queue has room; refused otherwise (placed elsewhere, or later). */
  const queueRefusal = (): string | undefined => {
    const refused = refusal();
    if (refused !== "runner is full") return refused;
    if (queue.length >= queueLimit || held.size >= opts.capacity * (1 + RECORDING_PER_SLOT) + queueLimit) return refused;
    return undefined;
  };

  const subscriptions = [
    nc.subscribe(runnerAssignSubject(opts.runnerId), {
      callback: (err, msg) => (err ? opts.logger.error({ err }, "assignment subscription failed") : accept(msg, false)),
    }),
    nc.subscribe(runnerRunSubject(opts.runnerId), {
      callback: (err, msg) => (err ? opts.logger.error({ err }, "direct call subscription failed") : accept(msg, true)),
    }),
  ];

  return {
    get inflight() {
      return running;
    },
    get queued() {
      return queue.length;
    },
    held: () => [...held.keys()],
    async close(graceMs) {
      closing = true;
      for (const subscription of subscriptions) {
        try {
          subscription.unsubscribe();
        } catch {
          // The connection is closed already, and the subscription with it.
        }
      }
      // Calls still waiting for a slot never started: handed back at once, to run elsewhere.
      const neverStarted: string[] = [];
      for (const entry of queue.splice(0)) {
        const activationId = [...held].find(([, e]) => e === entry)?.[0];
        if (activationId === undefined) continue;
        notify(activationId, entry, { phase: "ended", ok: false, retry: true, error: "the runner shut down before the call started" });
        entry.handedBack = true;
        held.delete(activationId);
        neverStarted.push(activationId);
      }
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<"over">((resolve) => (timer = setTimeout(() => resolve("over"), graceMs)));
      const finished = await Promise.race([Promise.allSettled([...held.values()].map((h) => h.done)), graceOver]);
      clearTimeout(timer);
      if (finished !== "over") return neverStarted;
      // What still runs is given back, so another runner takes it now, not after an ack wait. If it
      // does finish here after all, its record is a create-if-absent, and the other run's record
      // and this one cannot both stand.
      const handedBack = neverStarted;
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

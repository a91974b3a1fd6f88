// Finished activations for this gateway's blocking callers. One wildcard subscription serves every
// waiting request; a request only adds an entry to a map, so a burst of blocking invocations costs
// no subscription churn on the server.
//
// A record sent while this gateway was reconnecting (core NATS: nobody subscribed, dropped) would
// leave its caller waiting out the whole wait: after a reconnect, and every SWEEP_MS for callers
// waiting longer than that, the stored records of waiting calls are looked up (`lookup`).
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Activation, decodeMessage, RESULT_SUBJECT_PREFIX, resultSubject } from "../contracts/index.ts";

export interface PendingResult {
  /** The activation, or undefined when it did not arrive within the wait. */
  result: Promise<Activation | undefined>;
  /** Stops waiting (e.g. when the invocation could not be queued). */
  cancel(): void;
}

/** How often, and after how long, waiting callers' records are looked up in KV (ms). */
const SWEEP_MS = 5_000;
/** Records looked up per sweep at most: a slow action's many callers cost a bounded read rate. */
const SWEEP_MAX = 200;

interface Waiter {
  settle: (activation: Activation | undefined) => void;
  namespace?: string;
  since: number;
}

export class ResultInbox {
  private readonly waiting = new Map<string, Waiter>();
  private readonly sweeper: NodeJS.Timeout | undefined;
  /** Called once when an activation ends (or its lease runs out): the namespace limits' release. */
  private readonly onEnd = new Map<string, { callback: () => void; lease: NodeJS.Timeout }>();
  private readonly subscription: Subscription;

  constructor(
    nc: NatsConnection,
    private readonly gatewayId: string,
    private readonly logger: Logger,
    /** The stored record of an activation as JSON bytes, or undefined; enables the look-ups above. */
    private readonly lookup?: (namespace: string, activationId: string) => Promise<Uint8Array | undefined>,
  ) {
    if (lookup) {
      this.sweeper = setInterval(() => this.sweep(Date.now() - SWEEP_MS, SWEEP_MAX), SWEEP_MS);
      this.sweeper.unref();
      void (async () => {
        for await (const status of nc.status()) if (status.type === "reconnect") this.sweep(Infinity, Infinity);
      })().catch(() => undefined);
    }
    this.subscription = nc.subscribe(`${RESULT_SUBJECT_PREFIX}.${gatewayId}.>`, {
      callback: (err, msg) => {
        if (err) return this.logger.error({ err }, "result subscription failed");
        // The subject names the activation. Records come back for every admitted call (the
        // namespace limits' release), and parsing one with a flood of log lines takes tens of ms
        // on the event loop: only a blocking caller's record is parsed.
        const activationId = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
        const waiter = this.waiting.get(activationId);
        if (waiter && !this.deliver(activationId, msg.data)) {
          this.logger.warn({ subject: msg.subject }, "ignoring a malformed result");
          return;
        }
        this.finished(activationId);
      },
    });
  }

  /** Blocking callers waiting right now (the invoker bounds them). */
  get waitingCount(): number {
    return this.waiting.size;
  }

  replySubject(activationId: string): string {
    return resultSubject(this.gatewayId, activationId);
  }

  /**
   * Call before publishing the invocation, so that even an instant result finds its waiter.
   * `namespace` lets a lost result be found in the bucket (see above).
   */
  expect(activationId: string, timeoutMs: number, namespace?: string): PendingResult {
    let settle!: (activation: Activation | undefined) => void;
    const result = new Promise<Activation | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      settle = (activation) => {
        clearTimeout(timer);
        this.waiting.delete(activationId);
        resolve(activation);
      };
    });
    this.waiting.set(activationId, { settle, namespace, since: Date.now() });
    return { result, cancel: () => settle(undefined) };
  }

  /** Runs `callback` when the activation's record arrives, or after `leaseMs` if it never does. */
  onFinished(activationId: string, callback: () => void, leaseMs: number): void {
    const lease = setTimeout(() => this.finished(activationId), leaseMs);
    lease.unref();
    this.onEnd.set(activationId, { callback, lease });
  }

  /** The activation ended (or will never start): runs and forgets its onFinished callback. */
  finished(activationId: string): void {
    const end = this.onEnd.get(activationId);
    if (!end) return;
    this.onEnd.delete(activationId);
    clearTimeout(end.lease);
    end.callback();
  }

  /** Hands a record's bytes to the activation's waiter; false when they are not its record. */
  private deliver(activationId: string, data: Uint8Array): boolean {
    const waiter = this.waiting.get(activationId);
    if (!waiter) return true;
    const parsed = decodeMessage(Activation, data);
    if (!parsed.success || parsed.data.activationId !== activationId) return false;
    waiter.settle(parsed.data);
    return true;
  }

  /** Looks up the stored records of callers waiting since before `olderThan`, `max` at most. */
  private sweep(olderThan: number, max: number): void {
    const lookup = this.lookup;
    if (!lookup) return;
    let looked = 0;
    for (const [activationId, { namespace, since }] of this.waiting) {
      if (looked >= max) break;
      if (namespace === undefined || since > olderThan) continue;
      looked++;
      lookup(namespace, activationId).then(
        (data) => {
          if (data && this.waiting.has(activationId) && this.deliver(activationId, data)) this.finished(activationId);
        },
        () => undefined, // NATS away: the next sweep or reconnect tries again
      );
    }
  }

  /** Releases every waiter (their callers answer 202) and the subscription. */
  close(): void {
    this.subscription.unsubscribe();
    clearInterval(this.sweeper);
    for (const { settle } of [...this.waiting.values()]) settle(undefined);
    for (const activationId of [...this.onEnd.keys()]) this.finished(activationId);
  }
}

// Finished activations for this gateway's blocking callers. One wildcard subscription serves every
// waiting request; a request only adds an entry to a map, so a burst of blocking invocations costs
// no subscription churn on the server.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Activation, decodeMessage, RESULT_SUBJECT_PREFIX, resultSubject } from "../contracts/index.ts";

export interface PendingResult {
  /** The activation, or undefined when it did not arrive within the wait. */
  result: Promise<Activation | undefined>;
  /** Stops waiting (e.g. when the invocation could not be queued). */
  cancel(): void;
}

export class ResultInbox {
  private readonly waiting = new Map<string, (activation: Activation | undefined) => void>();
  /** Called once when an activation ends (or its lease runs out): the namespace limits' release. */
  private readonly onEnd = new Map<string, { callback: () => void; lease: NodeJS.Timeout }>();
  private readonly subscription: Subscription;

  constructor(
    nc: NatsConnection,
    private readonly gatewayId: string,
    private readonly logger: Logger,
  ) {
    this.subscription = nc.subscribe(`${RESULT_SUBJECT_PREFIX}.${gatewayId}.>`, {
      callback: (err, msg) => {
        if (err) return this.logger.error({ err }, "result subscription failed");
        // The subject names the activation. Records come back for every admitted call (the
        // namespace limits' release), and parsing one with a flood of log lines takes tens of ms
        // on the event loop: only a blocking caller's record is parsed.
        const activationId = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
        const waiter = this.waiting.get(activationId);
        if (waiter) {
          const parsed = decodeMessage(Activation, msg.data);
          if (!parsed.success || parsed.data.activationId !== activationId) {
            this.logger.warn({ subject: msg.subject }, "ignoring a malformed result");
            return;
          }
          waiter(parsed.data);
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

  /** Call before publishing the invocation, so that even an instant result finds its waiter. */
  expect(activationId: string, timeoutMs: number): PendingResult {
    let settle!: (activation: Activation | undefined) => void;
    const result = new Promise<Activation | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      settle = (activation) => {
        clearTimeout(timer);
        this.waiting.delete(activationId);
        resolve(activation);
      };
    });
    this.waiting.set(activationId, settle);
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

  /** Releases every waiter (their callers answer 202) and the subscription. */
  close(): void {
    this.subscription.unsubscribe();
    for (const settle of [...this.waiting.values()]) settle(undefined);
    for (const activationId of [...this.onEnd.keys()]) this.finished(activationId);
  }
}

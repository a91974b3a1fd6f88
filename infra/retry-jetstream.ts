// JetStream writes and API calls that ride out a leader election or a reconnect.
//
// In a cluster, a stream (or the JetStream meta group) has no leader for a few seconds after the
// node that led it dies: requests then time out, find no responders, or are answered "temporarily
// unavailable" / "no suitable peers". None of that means the request was wrong, so it is tried
// again, with growing pauses, until a leader answers or the deadline passes. Anything else (a bad
// configuration, "wrong last sequence", a missing stream) is thrown at once.
//
// Used by infra/provision.ts. Other components may wrap their own writes in it (a gateway's
// publish, a runner's record write, a scheduler's ack); when the caller is waiting, give it a
// deadline it can afford.
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";

/** How long an election may take before retryDuringElection gives up, ms: elections take seconds. */
export const DEFAULT_ELECTION_DEADLINE_MS = 30_000;
/** First pause between tries, ms; each later one doubles, up to MAX_PAUSE_MS, with jitter. */
const FIRST_PAUSE_MS = 100;
const MAX_PAUSE_MS = 2_000;

/**
 * JetStream API error codes that say "no leader (yet)", not "no": 10004 cluster incomplete,
 * 10005 no suitable peers (a replica's node is away), 10008 JetStream temporarily unavailable (no
 * meta leader), 10009 not the leader, 10040 peer not a member (yet).
 */
const ELECTION_CODES = new Set([10004, 10005, 10008, 10009, 10040]);

/** Whether an error is one a leader election or a reconnect causes, so trying again may succeed. */
export function isElectionError(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return ELECTION_CODES.has(err.code) || err.status === 503 || /offline|leader/i.test(err.message);
  // A JetStream request no server answered: the API's responders are being elected or restarted.
  if (err instanceof errors.TimeoutError || err instanceof errors.NoRespondersError) return true;
  // nats.js reports "JetStream not enabled" when the API request finds no responders (its class is
  // not exported, hence the name).
  if (err instanceof Error && err.name === "JetStreamNotEnabled") return true;
  if (err instanceof errors.RequestError) return isElectionError(err.cause) || /no responders|timeout|disconnect/i.test(err.message);
  if (err instanceof errors.ConnectionError) return true;
  return false;
}

export interface RetryOptions {
  /** Give up after this long, ms (default DEFAULT_ELECTION_DEADLINE_MS): the last error is thrown. */
  deadlineMs?: number;
  /** Told of each retry, e.g. to log it. */
  onRetry?: (err: unknown, attempt: number) => void;
  /** Stops the retries (the last error is thrown). */
  signal?: AbortSignal;
  /** Which errors are worth another try (default isElectionError). */
  retryIf?: (err: unknown) => boolean;
}

/** Runs `fn` until it succeeds, fails with an error that is not an election's, or the deadline passes. */
export async function retryDuringElection<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.deadlineMs ?? DEFAULT_ELECTION_DEADLINE_MS);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const pause = Math.min(MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      if (!(opts.retryIf ?? isElectionError)(err) || opts.signal?.aborted || Date.now() + pause > deadline) throw err;
      opts.onRetry?.(err, attempt);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

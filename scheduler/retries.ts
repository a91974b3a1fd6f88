// How often, and how soon, an invocation is tried again after a failure on the platform's side (a
// runner that died or shut down mid-call, a record that could not be written, an assignment lost
// with its runner). Application and developer errors are never retried: their record is final.
//
// The count is the event's JetStream delivery count: deliveries beyond the first are retries (an
// event whose scheduler died comes back after the ack wait, which counts as one too). Refusals by a
// full or unhealthy runner cost nothing: the event is placed again without going back to JetStream.

/** Retries when VESPID_MAX_RETRIES is not set. */
export const DEFAULT_MAX_RETRIES = 4;
/** Pause before the first retry, ms; each later one doubles, up to RETRY_MAX_DELAY_MS. */
export const RETRY_BASE_DELAY_MS = 100;
export const RETRY_MAX_DELAY_MS = 5_000;

/** VESPID_MAX_RETRIES as a number, or the default; throws naming the variable when it is no whole number 0–100. */
export function maxRetriesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.VESPID_MAX_RETRIES?.trim();
  if (raw === undefined || raw === "") return DEFAULT_MAX_RETRIES;
  if (!/^\d+$/.test(raw) || Number(raw) > 100) throw new Error(`VESPID_MAX_RETRIES must be a whole number from 0 to 100, not "${raw}"`);
  return Number(raw);
}

/** Delay before retry number `retry` (1 = the first), ms. */
export function retryDelayMs(retry: number): number {
  return Math.min(RETRY_MAX_DELAY_MS, RETRY_BASE_DELAY_MS * 2 ** Math.max(0, retry - 1));
}

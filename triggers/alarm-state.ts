// Per-alarm counters in ALARM_STATE_BUCKET (key entityKey(namespace, trigger)): how often the
// registration fired (maxTriggers), its last tick (where a restarted service resumes, and what it
// counts as missed) and whether it finished. Written by whichever alarms service claimed a tick,
// with compare-and-set, so services on several machines keep one count.
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import type { FeedRegistration } from "../contracts/index.ts";
import { ifUnchanged } from "../gateway/kv-entities.ts";

export const AlarmState = z.object({
  /** The registration's `created`: a later registration of the same trigger starts again at 0. */
  created: z.number().int(),
  fired: z.number().int().nonnegative(),
  /** Epoch ms of the latest tick fired. */
  lastTick: z.number().int().optional(),
  /** Set when no tick is left; holds for the registration version (`updated`) it was decided on. */
  finished: z.object({ reason: z.string(), at: z.number().int(), updated: z.number().int() }).optional(),
});
export type AlarmState = z.infer<typeof AlarmState>;

/** Whether `state` says `registration`, as it is now, has finished (an UPDATE revives it). */
export const isFinished = (state: AlarmState, registration: FeedRegistration): boolean =>
  state.created === registration.created && state.finished?.updated === registration.updated;

/** Conflicts tolerated before an update gives up (a write per tick per alarm: rare). */
const MAX_ATTEMPTS = 20;

export async function readAlarmState(kv: KV, key: string, registration: FeedRegistration): Promise<AlarmState | undefined> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== "PUT") return undefined;
  const parsed = AlarmState.safeParse(entry.json());
  return parsed.success && parsed.data.created === registration.created ? parsed.data : undefined;
}

/**
 * Applies `change` to the registration's state (a fresh one when none is stored or it belongs to
 * an older registration) with compare-and-set, retrying on conflicts. `change` returns the new
 * state, or undefined to write nothing; the result is what was written (or found).
 */
export async function updateAlarmState(
  kv: KV,
  key: string,
  registration: FeedRegistration,
  change: (current: AlarmState) => AlarmState | undefined,
): Promise<{ state: AlarmState; written: boolean }> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const entry = await kv.get(key);
    const stored = entry?.operation === "PUT" ? AlarmState.safeParse(entry.json()) : undefined;
    const current: AlarmState = stored?.success && stored.data.created === registration.created ? stored.data : { created: registration.created, fired: 0 };
    const next = change(current);
    if (!next) return { state: current, written: false };
    const ok = entry
      ? await ifUnchanged(() => kv.update(key, JSON.stringify(next), entry.revision))
      : await ifUnchanged(() => kv.create(key, JSON.stringify(next)));
    if (ok) return { state: next, written: true };
  }
  throw new Error(`the alarm state ${key} kept changing under ${MAX_ATTEMPTS} attempts to update it`);
}

// The last word on an invocation no runner could take: a "whisk internal error" record, so that
// its caller and `GET activations/{id}` learn what happened. No runner ran it, so the record has
// no `isolation` annotation. Written create-if-absent like every record (runner/recorder.ts): if a
// runner did record the event after all (its answer was lost), that record stands, and the caller
// is sent it instead.
import type { InvocationEvent } from "../contracts/index.ts";
import { buildActivation, internalError } from "../runner/activation.ts";
import type { ActivationRecorder } from "../runner/recorder.ts";

/** Why, when not given: every delivery of the event failed to be placed. */
export const NOT_PLACED = "The invocation could not be placed on a runner.";

export type Abandon = (event: InvocationEvent, reason?: string) => Promise<void>;

export function createAbandon(recorder: ActivationRecorder): Abandon {
  return async function abandon(event, reason = NOT_PLACED) {
    const now = Date.now();
    await recorder.record(buildActivation({ event, start: now, end: now, verdict: internalError(reason) }), event.replyTo);
  };
}

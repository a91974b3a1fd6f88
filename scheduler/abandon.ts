// The last word on an invocation no runner could take after every delivery: a "whisk internal
// error" record, so that its caller and `GET activations/{id}` learn what happened.
import type { InvocationEvent } from "../contracts/index.ts";
import { buildActivation, internalError } from "../runner/activation.ts";
import type { ActivationRecorder } from "../runner/recorder.ts";

export type Abandon = (event: InvocationEvent) => Promise<void>;

export function createAbandon(recorder: ActivationRecorder): Abandon {
  return async function abandon(event) {
    const now = Date.now();
    const verdict = internalError("The invocation could not be placed on a runner.");
    await recorder.record(buildActivation({ event, start: now, end: now, verdict }), event.replyTo);
  };
}

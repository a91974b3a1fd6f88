// One invocation on this runner: load the action, get its image, run it in a virtine, record the
// activation. Every failure ends in a record; nothing here may throw at the caller.
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { Action, actionKey, type Activation, type AssignmentReply, type InvocationEvent } from "../contracts/index.ts";
import { buildActivation, developerError, internalError, verdictOf } from "./activation.ts";
import type { Engine } from "./engine.ts";
import type { ImageStore } from "./images.ts";
import { formatLogs } from "./logs-format.ts";
import type { ActivationRecorder } from "./recorder.ts";

export interface InvocationDeps {
  actions: KV;
  images: ImageStore;
  engine: Engine;
  recorder: ActivationRecorder;
  logger: Logger;
}

const NO_INIT = new Uint8Array(0);

export async function runInvocation(event: InvocationEvent, deps: InvocationDeps): Promise<AssignmentReply> {
  const start = Date.now();
  let activation: Activation;
  try {
    activation = await execute(event, start, deps);
  } catch (err) {
    deps.logger.error({ err, activationId: event.activationId }, "invocation failed inside the runner");
    activation = buildActivation({ event, start, end: Date.now(), verdict: internalError("The runner failed to run the action.") });
  }
  const stored = await deps.recorder.record(activation, event.replyTo);
  // Not worth a retry: the action ran, and running it again would repeat its side effects.
  return stored
    ? { ok: true, activationId: event.activationId }
    : { ok: false, error: "the activation record could not be stored", retry: false };
}

async function execute(event: InvocationEvent, start: number, deps: InvocationDeps): Promise<Activation> {
  const entry = await deps.actions.get(actionKey(event.namespace, event.name));
  // The gateway checked that the action existed; it was deleted while the invocation was queued.
  if (!entry || entry.operation !== "PUT") {
    return buildActivation({ event, start, end: Date.now(), verdict: internalError("action no longer exists") });
  }
  const action = Action.parse(entry.json());

  // Cached by code hash: only the first invocation on this runner after a change compiles.
  const image = await deps.images.build(action.exec.kind, action.exec.code);
  if (!image.ok) {
    return buildActivation({ event, action, start, end: Date.now(), verdict: developerError(image.error) });
  }

  const outcome = await deps.engine.run({
    image: image.image,
    // The JS interpreter image reads the action's source at init; a C image has it compiled in.
    init: action.exec.kind === "nodejs" ? new TextEncoder().encode(action.exec.code) : NO_INIT,
    params: JSON.stringify(event.params),
    memoryMb: action.limits.memory,
    timeoutMs: action.limits.timeout,
    // The code hash names the image and init bytes exactly, so calls of this version share a
    // snapshot (the engine keys it by memory size as well).
    snapshotKey: image.codeHash,
  });
  const end = Date.now();
  return buildActivation({
    event,
    action,
    start,
    end,
    verdict: verdictOf(outcome, action.limits),
    logs: formatLogs(outcome.logs, outcome.logsTruncated, end),
  });
}

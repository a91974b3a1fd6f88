// One invocation on this runner: load the action, get its image, run it in a virtine, record the
// activation. Every failure ends in a record; nothing here may throw at the caller.
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { annotatedIsolation, runtimeOf, satisfiesIsolation, strongestIsolation, type Activation, type AssignmentReply, type InvocationEvent } from "../contracts/index.ts";
import { buildActivation, developerError, internalError, verdictOf, type RunnerActivation } from "./activation.ts";
import type { Engine } from "./engine.ts";
import type { ImageStore } from "./images.ts";
import { loadAction } from "./load-action.ts";
import { formatLogs, LOG_GRACE_MS, logLimitBytes } from "./logs-format.ts";
import type { ActivationRecorder } from "./recorder.ts";
import { runSequence } from "./sequence.ts";

export interface InvocationDeps {
  actions: KV;
  /** ACTION_VERSIONS_BUCKET, for invocations of a pinned version. */
  versions?: KV;
  images: ImageStore;
  engine: Engine;
  recorder: ActivationRecorder;
  logger: Logger;
}

const NO_INIT = new Uint8Array(0);

export async function runInvocation(event: InvocationEvent, deps: InvocationDeps): Promise<AssignmentReply> {
  const start = Date.now();
  let activation: RunnerActivation;
  try {
    activation = await execute(event, start, deps);
  } catch (err) {
    deps.logger.error({ err, activationId: event.activationId }, "invocation failed inside the runner");
    activation = buildActivation({ event, start, end: Date.now(), verdict: internalError("The runner failed to run the action."), isolation: deps.engine.isolation });
  }
  const stored = await deps.recorder.record(activation, event.replyTo);
  // Not worth a retry: the action ran, and running it again would repeat its side effects.
  return stored
    ? { ok: true, activationId: event.activationId }
    : { ok: false, error: "the activation record could not be stored", retry: false };
}

/** Runs one primitive action (or, for a sequence, its components) and builds its record. */
export async function execute(
  event: InvocationEvent,
  start: number,
  deps: InvocationDeps,
  extraAnnotations?: Activation["annotations"],
): Promise<RunnerActivation> {
  const { isolation } = deps.engine;
  const action = await loadAction(event, deps);
  // The gateway checked that the action existed; it was deleted while the invocation was queued.
  if (!action) {
    return buildActivation({ event, start, end: Date.now(), verdict: internalError("action no longer exists"), isolation });
  }
  // Schedulers place by the event's requirement; the action's own annotation is checked again
  // here, as it may have been set after the event was queued, or by a scheduler older than tiers.
  const required = strongestIsolation(event.isolation, annotatedIsolation(action.annotations));
  if (!satisfiesIsolation(isolation, required)) {
    const verdict = internalError(`the action requires isolation ${required}, and this runner runs ${isolation}`);
    return buildActivation({ event, action, start, end: Date.now(), verdict, extraAnnotations, isolation });
  }
  if (event.sequence) return runSequence(event, action, start, deps, execute);
  if (action.exec.kind === "sequence") {
    return buildActivation({ event, action, start, end: Date.now(), verdict: internalError("the sequence came without its components"), isolation });
  }

  // Cached by code hash: only the first invocation on this runner after a change compiles.
  const runtime = runtimeOf(action.exec.kind);
  const image = await deps.images.build(runtime, action.exec.code);
  if (!image.ok) {
    // A compiler error is the developer's; a runner that cannot build at all is ours.
    const verdict = image.fault === "host" ? internalError(image.error) : developerError(image.error);
    return buildActivation({ event, action, start, end: Date.now(), verdict, extraAnnotations, isolation });
  }

  // limits.logs is in MB, capped at what one activation record can carry (see logLimitBytes).
  const logLimit = logLimitBytes(action.limits.logs, deps.recorder.maxPayload);
  const runStart = Date.now();
  const outcome = await deps.engine.run({
    image: image.image,
    // The JS interpreter image reads the action's source at init; a C image has it compiled in.
    init: runtime === "nodejs" ? new TextEncoder().encode(action.exec.code) : NO_INIT,
    params: JSON.stringify(event.params),
    memoryMb: action.limits.memory,
    timeoutMs: action.limits.timeout,
    // The code hash names the image and init bytes exactly, so calls of this version share a
    // snapshot (the engine keys it by memory size as well).
    snapshotKey: image.codeHash,
    logLimit,
  });
  const end = Date.now();
  return buildActivation({
    event,
    action,
    start,
    end,
    verdict: verdictOf(outcome, action.limits),
    // 0 means no logs at all, not even the truncation marker (OpenWhisk's behaviour).
    logs: logLimit === 0 ? [] : await formatLogs(outcome.logs, {
      truncated: outcome.logsTruncated,
      limitBytes: logLimit,
      end,
      maxBytes: deps.recorder.maxRecordBytes,
      deadline: runStart + action.limits.timeout + LOG_GRACE_MS,
      timeoutMs: action.limits.timeout,
    }),
    // No separate init phase to time: a cold call's engine time (boot + init + run) stands for it.
    initTime: outcome.coldStart ? Math.max(1, Math.round(outcome.micros / 1000)) : undefined,
    extraAnnotations,
    isolation,
  });
}

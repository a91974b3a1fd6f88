// One invocation on this runner: load the action, get its image, run it in a virtine, record the
// activation. Every failure ends in a record; nothing here may throw at the caller.
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import type { KvReadCache } from "../infra/kv-cache.ts";
import { annotatedIsolation, runtimeOf, satisfiesIsolation, strongestIsolation, type Activation, type AssignmentReply, type InvocationEvent } from "../contracts/index.ts";
import { buildActivation, developerError, internalError, verdictOf, type RunnerActivation } from "./activation.ts";
import type { Engine } from "./engine.ts";
import type { ImageStore } from "./images.ts";
import { loadAction } from "./load-action.ts";
import { formatLogs, LOG_GRACE_MS, logLimitBytes } from "./logs-format.ts";
import type { ActivationRecorder } from "./recorder.ts";
import { runSequence } from "./sequence.ts";
import { isBuiltinExec, runBuiltin } from "./builtin.ts";
import type { FeedStores } from "../catalog/feeds/lifecycle.ts";
import { callIds } from "../infra/logger.ts";

export interface InvocationDeps {
  actions: KV;
  /** Reads of `actions` from memory, kept current by a watch (infra/kv-cache.ts). */
  actionsCache?: KvReadCache;
  /** ACTION_VERSIONS_BUCKET, for invocations of a pinned version. */
  versions?: KV;
  images: ImageStore;
  engine: Engine;
  recorder: ActivationRecorder;
  logger: Logger;
  /** Feed registrations and what they touch, for builtin actions (runner/builtin.ts). */
  feedStores?: FeedStores;
}

const NO_INIT = new Uint8Array(0);

/** `ran` is called once nothing more runs in the engine for this call: its slot is free while the record is written. */
export async function runInvocation(event: InvocationEvent, deps: InvocationDeps, ran?: () => void): Promise<AssignmentReply> {
  // A redelivered event may have run already (its ack was lost, its scheduler or runner died
  // after the record was written): its record stands and the call is not run again. First
  // deliveries skip the read; their record write is a create-if-absent anyway.
  if (event.redelivered) {
    let existing: Uint8Array | undefined;
    try {
      existing = await deps.recorder.existing(event.namespace, event.activationId);
    } catch (err) {
      deps.logger.warn({ err, ...callIds(event) }, "could not look for the record of a redelivered invocation");
      return { ok: false, error: "could not look for an earlier record of the redelivered invocation", retry: true };
    }
    if (existing) {
      deps.logger.info(callIds(event), "a redelivered invocation has its record already; not run again");
      deps.recorder.reply(event.replyTo, existing, event.activationId);
      return { ok: true, activationId: event.activationId };
    }
  }
  const start = Date.now();
  deps.logger.debug(callIds(event), "running an invocation");
  let activation: RunnerActivation;
  try {
    activation = await execute(event, start, deps);
  } catch (err) {
    // The platform failed, not the action: typically NATS went away while the action was loaded
    // (a KV read timing out). Recorded now, the call would end as a whisk internal error the user
    // can do nothing about; handed back, the scheduler retries it with backoff, and only after
    // VESPID_MAX_RETRIES does it end in a failed record (and a dead letter).
    ran?.();
    deps.logger.error({ err, ...callIds(event) }, "invocation failed inside the runner; handing it back to be retried");
    return { ok: false, error: `the runner could not run the invocation: ${(err as Error)?.message ?? String(err)}`, retry: true };
  }
  ran?.();
  const { outcome } = await deps.recorder.record(activation, event.replyTo);
  // The guest's own output stays in the record (activation.logs); the platform's log only says how it ended.
  deps.logger.debug({ ...callIds(event), status: activation.response.status, record: outcome }, "invocation ended");
  if (outcome !== "failed") return { ok: true, activationId: event.activationId };
  // The recorder tried for seconds. Acked now, the call would have no record at all; redelivered,
  // it may run again (at least once), and its record then says how.
  return { ok: false, error: "the activation record could not be stored", retry: true };
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
  if (isBuiltinExec(action.exec)) return runBuiltin(event, action, action.exec, start, deps.feedStores, extraAnnotations);
  if (action.exec.kind === "sequence") {
    return buildActivation({ event, action, start, end: Date.now(), verdict: internalError("the sequence came without its components"), isolation });
  }

  // Cached by code hash: only the first invocation on this runner after a change compiles.
  const runtime = runtimeOf(action.exec.kind);
  const image = await deps.images.build(runtime, action.exec.code, { binary: action.exec.binary, main: action.exec.main });
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
    // The JS interpreter image reads the action's source (or a zip's modules) at init; a C image
    // has it compiled in.
    init: image.init ?? (runtime === "nodejs" ? new TextEncoder().encode(action.exec.code) : NO_INIT),
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
    logs: logLimit === 0 ? [] : await formatLogs(outcome.logRecords, {
      truncated: outcome.logsTruncated,
      limitBytes: logLimit,
      end,
      maxBytes: deps.recorder.maxRecordBytes,
      deadline: runStart + action.limits.timeout + LOG_GRACE_MS,
      timeoutMs: action.limits.timeout,
    }),
    // No separate init phase to time: a cold call's engine time (boot + init + run) stands for it.
    initTime: outcome.coldStart ? Math.max(1, Math.round(outcome.micros / 1000)) : undefined,
    figures: {
      runTime: outcome.micros / 1000,
      ...(outcome.cpuMicros !== undefined && { cpuTime: outcome.cpuMicros / 1000 }),
      ...(outcome.memoryPeak !== undefined && { memoryPeak: outcome.memoryPeak }),
      warm: outcome.warm ?? !outcome.coldStart,
    },
    extraAnnotations,
    isolation,
  });
}

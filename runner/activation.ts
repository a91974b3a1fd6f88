// Activation records: how an engine outcome reads to OpenWhisk clients. Pure functions, shared
// with the scheduler for the invocations it has to give up on.
import { ISOLATION_ANNOTATION, type Action, type Activation, type ActivationStatus, type InvocationEvent, type Isolation } from "../contracts/index.ts";
import type { EngineOutcome } from "./engine.ts";

const STATUS_CODES: Record<ActivationStatus, number> = {
  success: 0,
  "application error": 1,
  "action developer error": 2,
  "whisk internal error": 3,
};

/** OpenWhisk's message for a guest that ended without a usable answer. */
const ABNORMAL_RUN = "The action did not produce a valid response and exited unexpectedly.";

export interface Verdict {
  status: ActivationStatus;
  result: Record<string, unknown>;
}

export const developerError = (error: string): Verdict => ({ status: "action developer error", result: { error } });
export const internalError = (error: string): Verdict => ({ status: "whisk internal error", result: { error } });

export function verdictOf(outcome: EngineOutcome, limits: Action["limits"]): Verdict {
  switch (outcome.status) {
    case "ok": {
      const parsed = parseResult(outcome.result);
      // OpenWhisk's rule: a returned object with an `error` field is an application error.
      if (parsed.kind === "object")
        return { status: "error" in parsed.value ? "application error" : "success", result: parsed.value };
      return developerError(
        parsed.kind === "invalid"
          ? `The action did not produce a valid JSON response: ${outcome.result ?? ""}`
          : "The action did not return a dictionary.",
      );
    }
    case "timeout":
      // OpenWhisk's exact text ("limits", plural), which clients and docs quote.
      return developerError(`The action exceeded its time limits of ${limits.timeout} milliseconds.`);
    case "oom":
      return developerError(outcome.error ?? `The action exhausted its memory limit of ${limits.memory} MB.`);
    case "dev_error":
    case "crash":
      return developerError(outcome.error ?? ABNORMAL_RUN);
    case "internal":
      return internalError(outcome.error ?? "The runner could not run the action.");
  }
}

type ParsedResult = { kind: "object"; value: Record<string, unknown> } | { kind: "not_object" } | { kind: "invalid" };

function parseResult(text: string | undefined): ParsedResult {
  let value: unknown;
  try {
    value = JSON.parse(text ?? "");
  } catch {
    return { kind: "invalid" };
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? { kind: "object", value: value as Record<string, unknown> }
    : { kind: "not_object" };
}

export interface ActivationInput {
  event: InvocationEvent;
  /** The action as run; absent when it could not be loaded. */
  action?: Action;
  start: number;
  end: number;
  verdict: Verdict;
  logs?: string[];
  /**
   * Set on a cold start (the engine booted the guest and took its snapshot): ms spent in that
   * call, boot and init included. Recorded as OpenWhisk's `initTime` annotation.
   */
  initTime?: number;
  /** Further annotations appended after the standard ones (e.g. `causedBy`, `topmost` for sequences). */
  extraAnnotations?: Activation["annotations"];
  /**
   * The tier of the runner that ran (or tried to run) it, recorded as the `isolation` annotation;
   * absent for a record no runner wrote (the scheduler giving up on it).
   */
  isolation?: Isolation;
}

export function buildActivation({ event, action, start, end, verdict, logs = [], initTime, extraAnnotations = [], isolation }: ActivationInput): Activation {
  return {
    activationId: event.activationId,
    namespace: event.namespace,
    name: event.name,
    version: action?.version ?? "0.0.0",
    subject: event.namespace,
    start,
    end,
    duration: end - start,
    response: {
      status: verdict.status,
      statusCode: STATUS_CODES[verdict.status],
      success: verdict.status === "success",
      result: verdict.result,
    },
    logs,
    annotations: [
      ...(action
        ? [
            { key: "kind", value: action.exec.kind },
            { key: "limits", value: { timeout: action.limits.timeout, memory: action.limits.memory, logs: action.limits.logs } },
          ]
        : []),
      // The action that ran, as OpenWhisk's: through a binding or another namespace's published
      // package, that is the action where it lives, not the name the caller used.
      { key: "path", value: event.target ? `${event.target.namespace}/${event.target.name}` : `${event.namespace}/${event.name}` },
      ...(event.binding ? [{ key: "binding", value: event.binding }] : []),
      { key: "waitTime", value: Math.max(0, start - event.published) },
      ...(initTime !== undefined ? [{ key: "initTime", value: initTime }] : []),
      ...(isolation ? [{ key: ISOLATION_ANNOTATION, value: isolation }] : []),
      ...extraAnnotations,
    ],
  };
}

/**
 * The record, shrunk to fit `maxBytes` of JSON: first without its logs, then with the result
 * replaced by OpenWhisk's "response too long" error, so an oversized answer still gets a record.
 */
export function fitActivation(activation: Activation, maxBytes: number): Activation {
  const size = (a: Activation) => Buffer.byteLength(JSON.stringify(a));
  const fullSize = size(activation);
  if (fullSize <= maxBytes) return activation;
  const withoutLogs = { ...activation, logs: [`The logs were dropped: the activation record exceeded ${maxBytes} bytes.`] };
  if (size(withoutLogs) <= maxBytes) return withoutLogs;
  const verdict = developerError(
    `The action produced a response that exceeded the allowed length: ${fullSize} > ${maxBytes} bytes.`,
  );
  return {
    ...withoutLogs,
    response: { ...withoutLogs.response, status: verdict.status, statusCode: STATUS_CODES[verdict.status], success: false, result: verdict.result },
  };
}

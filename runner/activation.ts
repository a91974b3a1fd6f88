// Activation records: how an engine outcome reads to OpenWhisk clients. Pure functions, shared
// with the scheduler for the invocations it has to give up on.
import { ISOLATION_ANNOTATION, jsonTextTooDeepAt, MAX_JSON_DEPTH, type Action, type Activation, type ActivationStatus, type InvocationEvent, type Isolation } from "../contracts/index.ts";
import type { EngineOutcome } from "./engine.ts";
import { EncodedLogs, recordFullMarker, timestamp } from "./logs-format.ts";
import { COPY_SLICE, Slicer } from "./slices.ts";

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

/** Characters of guest-made text (an error, output that is not JSON) an error message quotes. */
export const MAX_ERROR_CHARS = 2_048;

export function verdictOf(outcome: EngineOutcome, limits: Action["limits"]): Verdict {
  switch (outcome.status) {
    case "ok": {
      // Checked on the text, before anything recurses over it: JSON.stringify overflows the stack
      // a few thousand levels down, which lost the record of a deep result.
      if (jsonTextTooDeepAt(outcome.result ?? "", MAX_JSON_DEPTH) >= 0)
        return developerError(`The action produced a response that nests arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels.`);
      const parsed = parseResult(outcome.result);
      // OpenWhisk's rule: a returned object with an `error` field is an application error.
      if (parsed.kind === "object")
        return { status: "error" in parsed.value ? "application error" : "success", result: parsed.value };
      return developerError(
        parsed.kind === "invalid"
          ? `The action did not produce a valid JSON response: ${excerpt(outcome.result ?? "")}`
          : "The action did not return a dictionary.",
      );
    }
    case "timeout":
      // OpenWhisk's exact text ("limits", plural), which clients and docs quote.
      return developerError(`The action exceeded its time limits of ${limits.timeout} milliseconds.`);
    case "oom":
      return developerError(outcome.error ? excerpt(outcome.error) : `The action exhausted its memory limit of ${limits.memory} MB.`);
    case "dev_error":
    case "crash":
      return developerError(outcome.error ? excerpt(outcome.error) : ABNORMAL_RUN);
    case "internal":
      return internalError(outcome.error ? excerpt(outcome.error) : "The runner could not run the action.");
  }
}

/**
 * Guest text quoted in a message, cut to MAX_ERROR_CHARS: up to 1 MiB of it could otherwise become
 * a multi-MB error (each control character is six in JSON).
 */
export function excerpt(text: string): string {
  if (text.length <= MAX_ERROR_CHARS) return text;
  return `${text.slice(0, MAX_ERROR_CHARS)}… (cut at ${MAX_ERROR_CHARS} of ${text.length} characters)`;
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
  /** Plain strings, or entries formatLogs encoded already. */
  logs?: string[] | EncodedLogs;
  /**
   * Set on a cold start (the engine booted the guest and took its snapshot): ms spent in that
   * call, boot and init included. Recorded as OpenWhisk's `initTime` annotation.
   */
  initTime?: number;
  /** What the engine measured of the call (runTime, cpuTime, memoryPeak, warm annotations); absent when it never ran. */
  figures?: RunFigures;
  /** Further annotations appended after the standard ones (e.g. `causedBy`, `topmost` for sequences). */
  extraAnnotations?: Activation["annotations"];
  /**
   * The tier of the runner that ran (or tried to run) it, recorded as the `isolation` annotation;
   * absent for a record no runner wrote (the scheduler giving up on it).
   */
  isolation?: Isolation;
}

/** Per-call figures from the engine, recorded as annotations (docs/telemetry.md). */
export interface RunFigures {
  /** Wall time inside the engine, ms (µs precision). */
  runTime: number;
  /** CPU time the call consumed, ms (µs precision). */
  cpuTime?: number;
  /** Peak guest memory, bytes. */
  memoryPeak?: number;
  /** Started from a warm snapshot VM: no boot, no init. */
  warm: boolean;
}

/**
 * An activation as the runner holds it until it is stored: its logs may be JSON already (see
 * EncodedLogs), which the recorder writes as they are.
 */
export type RunnerActivation = Omit<Activation, "logs"> & { logs: string[] | EncodedLogs };

export function buildActivation(input: ActivationInput & { logs?: string[] }): Activation;
export function buildActivation(input: ActivationInput): RunnerActivation;
export function buildActivation({ event, action, start, end, verdict, logs = [], initTime, figures, extraAnnotations = [], isolation }: ActivationInput): RunnerActivation {
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
      ...(figures
        ? [
            { key: "runTime", value: figures.runTime },
            ...(figures.cpuTime !== undefined ? [{ key: "cpuTime", value: figures.cpuTime }] : []),
            ...(figures.memoryPeak !== undefined ? [{ key: "memoryPeak", value: figures.memoryPeak }] : []),
            { key: "warm", value: figures.warm },
          ]
        : []),
      ...(isolation ? [{ key: ISOLATION_ANNOTATION, value: isolation }] : []),
      ...extraAnnotations,
    ],
  };
}

/** The record with its response replaced by `verdict`'s, and these logs. */
export function withVerdict<A extends RunnerActivation>(activation: A, verdict: Verdict, logs: A["logs"]): A {
  const { status, result } = verdict;
  return { ...activation, response: { status, statusCode: STATUS_CODES[status], success: status === "success", result }, logs };
}

/** Log entries encoded at once when fitting a record of plain strings: one slice of work. */
const ENCODE_BATCH = 512;
/** Bytes kept free for the marker line when logs are cut. */
const MARKER_ROOM = 512;

interface Fitted {
  /**
   * The record as stored: `activation` itself when it fit as it was. Made only when asked for
   * (encodeActivation needs only the JSON): cut logs are a copy of up to MiBs.
   */
  activation(): RunnerActivation;
  /** Its JSON, in pieces. */
  json: Buffer[];
}

/** Plain log entries as EncodedLogs, a batch per step. */
function* encodeEntries(logs: readonly string[]): Generator<void, EncodedLogs> {
  const pieces: Buffer[] = [];
  const ends = new Uint32Array(logs.length);
  let pos = 0;
  for (let i = 0; i < logs.length; i++) {
    const piece = Buffer.from(JSON.stringify(logs[i]));
    if (i > 0) pieces.push(COMMA);
    pieces.push(piece);
    pos += (i > 0 ? 1 : 0) + piece.length;
    ends[i] = pos;
    if ((i + 1) % ENCODE_BATCH === 0) yield;
  }
  return new EncodedLogs(Buffer.concat(pieces, pos), ends);
}

/**
 * The record, shrunk to fit `maxBytes` of JSON: first its logs are cut to the lines that fit, with
 * a marker line saying so, then, if even the rest is too big, the result is replaced by OpenWhisk's
 * "response too long" error, so an oversized answer still gets a record. A generator that yields
 * between slices of work (encodeActivation runs it on the event loop). Logs that come encoded
 * (formatLogs) are cut at an entry boundary, without decoding them.
 */
function* fit(activation: RunnerActivation, maxBytes: number): Generator<void, Fitted> {
  const { logs } = activation;
  const encoded = logs instanceof EncodedLogs ? logs : yield* encodeEntries(logs);
  const [head, tail] = encodeAround(activation);
  const fixed = head.length + tail.length;
  if (fixed + encoded.json.length <= maxBytes) return { activation: () => activation, json: [head, encoded.json, tail] };
  const marker = (keptNone: boolean) => `${timestamp(activation.end)} stderr: ${recordFullMarker(maxBytes, keptNone)}`;
  if (fixed + (encoded.count > 0 ? MARKER_ROOM : 0) > maxBytes) {
    const verdict = developerError(`The action produced a response that exceeded the allowed length: ${fixed + encoded.json.length} > ${maxBytes} bytes.`);
    const fitted = withVerdict(activation, verdict, encoded.count > 0 ? [marker(true)] : []);
    return { activation: () => fitted, json: [Buffer.from(JSON.stringify(fitted))] };
  }
  // The most entries that fit, and the marker.
  const room = maxBytes - fixed - MARKER_ROOM;
  let lo = 0;
  let hi = encoded.count;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (encoded.ends[mid - 1]! <= room) lo = mid;
    else hi = mid - 1;
  }
  const kept = lo;
  const line = marker(kept === 0);
  const keptJson = encoded.json.subarray(0, kept > 0 ? encoded.ends[kept - 1] : 0);
  const markerJson = Buffer.from(`${kept > 0 ? "," : ""}${JSON.stringify(line)}`);
  const cutLogs = () => Array.isArray(logs)
    ? [...logs.slice(0, kept), line]
    : new EncodedLogs(keptJson, encoded.ends.subarray(0, kept)).withLast(Buffer.from(JSON.stringify(line)));
  return { activation: () => ({ ...activation, logs: cutLogs() }), json: [head, keptJson, markerJson, tail] };
}

const COMMA = Buffer.from(",");

/**
 * The record's JSON around its logs: everything before them up to `"logs":[`, and from `]` to the
 * end, in the record's own key order. Bytes (UTF-8), as the limit is.
 */
function encodeAround(activation: RunnerActivation): [Buffer, Buffer] {
  const entries = Object.entries(activation);
  let at = entries.findIndex(([key]) => key === "logs");
  if (at < 0) at = entries.length;
  const before = JSON.stringify(Object.fromEntries(entries.slice(0, at)));
  const after = JSON.stringify(Object.fromEntries(entries.slice(at + 1)));
  return [
    Buffer.from(`${before.slice(0, -1)}${at > 0 ? "," : ""}"logs":[`),
    Buffer.from(`]${after === "{}" ? "}" : `,${after.slice(1)}`}`),
  ];
}

/** fitActivation's record as it is stored: JSON bytes, made in slices that give way to the loop. */
export async function encodeActivation(activation: RunnerActivation, maxBytes: number): Promise<Buffer> {
  const steps = fit(activation, maxBytes);
  const slicer = new Slicer();
  for (;;) {
    const step = steps.next();
    if (step.done) return concatInSlices(step.value.json, slicer);
    if (slicer.due()) await slicer.pause();
  }
}

/** Buffer.concat(pieces), giving way to the loop between slices of COPY_SLICE bytes. */
async function concatInSlices(pieces: readonly Buffer[], slicer: Slicer): Promise<Buffer> {
  const out = Buffer.allocUnsafe(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const piece of pieces) {
    for (let from = 0; from < piece.length; from += COPY_SLICE) {
      at += piece.copy(out, at, from, Math.min(piece.length, from + COPY_SLICE));
      if (slicer.due()) await slicer.pause();
    }
  }
  return out;
}

/** The record, shrunk to fit `maxBytes` of JSON (see fit): the same object when it fits as is. */
export function fitActivation(activation: Activation, maxBytes: number): Activation {
  const steps = fit(activation, maxBytes);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value.activation() as Activation;
  }
}

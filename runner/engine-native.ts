// The Engine over native/build/libvespid.so. Invocations run on the engine's own threads; Node
// makes only short synchronous calls (submit, collect) and is told of finished jobs through a
// koffi callback that the engine may call from any thread.
import koffi from "koffi";
import type * as Koffi from "koffi";
import path from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { LOG_RECORD_HEADER, type Engine, type EngineOutcome, type EngineRequest, type EngineStats, type EngineStatus, type Isolation, type LogLine } from "./engine.ts";
import { COPY_SLICE } from "./slices.ts";

export const NATIVE_LIBRARY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../native/build/libvespid.so");
/** Largest result a function may return, in bytes (OpenWhisk's 1 MiB). */
export const DEFAULT_RESULT_LIMIT = 1024 * 1024;
/** Log bytes kept per invocation (OpenWhisk's default is 10 MB). */
export const DEFAULT_LOG_LIMIT = 10 * 1000 * 1000;

// Mirrors enum vsp_status in native/src/vespid_engine.h.
const STATUS: Record<number, EngineStatus> = { 0: "ok", 1: "dev_error", 2: "timeout", 3: "crash", 4: "oom", 5: "internal" };
const FLAG_INIT_ONLY = 1; // VSP_FLAG_INIT_ONLY
/** struct vsp_outcome's fields read by vsp_collect_fields (VSP_OUTCOME_FIELDS). */
const OUTCOME_FIELDS = 10;
// Mirrors enum vsp_tier.
const TIER: Record<Isolation, number> = { kvm: 0, process: 1 };

interface Native {
  workersStart(threads: number, done: unknown): number;
  submit(job: number, image: string, init: Uint8Array, initLen: number, params: Uint8Array, paramsLen: number,
    memoryMb: number, timeoutMs: number, flags: number, snapshotKey: string, resultCap: number, logsCap: number, tier: number): number;
  collect(job: number, result: Uint8Array, resultCap: number, logs: Uint8Array, logsCap: number, outcome: BigInt64Array, fields: number): number;
  counters(out: BigInt64Array): void;
  setBudget(bytes: number): void;
  tierAvailable(tier: number, why: Uint8Array, whyCap: number): number;
}

let native: { fns: Native; doneType: Koffi.TypeObject } | undefined;
function loadNative(): { fns: Native; doneType: Koffi.TypeObject } {
  if (native) return native;
  const lib = koffi.load(NATIVE_LIBRARY);
  const doneType = koffi.proto("void vsp_done_fn(uint64_t job)");
  native = {
    doneType,
    fns: {
      workersStart: lib.func("int vsp_workers_start(uint32_t threads, vsp_done_fn *done)"),
      submit: lib.func("int vsp_submit(uint64_t job, const char *image, const uint8_t *init, uint64_t init_len, const uint8_t *params, uint64_t params_len, uint32_t memory_mb, uint32_t timeout_ms, uint32_t flags, const char *snapshot_key, uint64_t result_cap, uint64_t logs_cap, uint32_t tier)"),
      collect: lib.func("int vsp_collect_fields(uint64_t job, _Out_ uint8_t *result, uint64_t result_cap, _Out_ uint8_t *logs, uint64_t logs_cap, _Out_ int64_t *outcome, uint32_t fields)"),
      counters: lib.func("void vsp_pool_counters(_Out_ int64_t *out)"),
      setBudget: lib.func("void vsp_set_pool_budget(uint64_t bytes)"),
      tierAvailable: lib.func("int vsp_tier_available(uint32_t tier, _Out_ uint8_t *why, uint64_t why_cap)"),
    },
  };
  return native;
}

/** Whether this host can run `tier`, and if not, why (e.g. "/dev/kvm: No such file or directory"). */
export function isolationAvailable(tier: Isolation): { ok: true } | { ok: false; why: string } {
  const why = Buffer.alloc(512);
  if (loadNative().fns.tierAvailable(TIER[tier], why, why.length)) return { ok: true };
  return { ok: false, why: why.subarray(0, Math.max(0, why.indexOf(0))).toString("utf8") || "unavailable" };
}

/**
 * The tier a runner asked for `requested` gets: `auto` takes the strongest the host offers (kvm,
 * else process); a named tier is taken only if available. `reason` says why, for the start log
 * ("isolation: process (/dev/kvm: No such file or directory)"). Throws, with the reason, when the
 * requested tier (or, for auto, every tier) is unavailable.
 */
export function chooseIsolation(requested: Isolation | "auto"): { isolation: Isolation; reason: string } {
  const kvm = isolationAvailable("kvm");
  if (requested === "kvm" || (requested === "auto" && kvm.ok)) {
    if (!kvm.ok) throw new Error(`isolation kvm is not available: ${kvm.why}`);
    return { isolation: "kvm", reason: requested === "auto" ? "/dev/kvm is usable" : "requested" };
  }
  const proc = isolationAvailable("process");
  if (!proc.ok) {
    throw new Error(requested === "auto"
      ? `no isolation tier is available: kvm (${kvm.ok ? "" : kvm.why}), process (${proc.why})`
      : `isolation process is not available: ${proc.why}`);
  }
  return { isolation: "process", reason: requested === "auto" ? (kvm.ok ? "" : kvm.why) : "requested" };
}

export interface NativeEngineOptions {
  /** The tier this engine's calls run on (default: the strongest available, see chooseIsolation). */
  isolation?: Isolation;
  /**
   * Worker threads running virtines (default: one per CPU). A guest that sleeps holds its thread,
   * so a runner asks for at least its capacity. Process-wide: the largest request wins.
   */
  threads?: number;
  /** Memory for snapshots and idle VMs, bytes (default 2 GiB); process-wide, the last setting wins. */
  poolBudget?: number;
  resultLimit?: number;
  /** Log bytes kept per call that does not set its own EngineRequest.logLimit. */
  logLimit?: number;
}

/**
 * Opens the engine. The worker threads and the done callback are process-wide (the native library
 * keeps one pool), so every Engine opened in a process shares them.
 */
export function openNativeEngine(opts: NativeEngineOptions = {}): Engine {
  const { fns, doneType } = loadNative();
  const resultLimit = opts.resultLimit ?? DEFAULT_RESULT_LIMIT;
  const defaultLogLimit = opts.logLimit ?? DEFAULT_LOG_LIMIT;
  const isolation = opts.isolation ?? chooseIsolation("auto").isolation;
  const pending = sharedPending;
  sharedCallback ??= koffi.register((job: number) => completeJob(fns, job), koffi.pointer(doneType));
  const r = fns.workersStart(Math.max(opts.threads ?? 0, defaultThreads()), sharedCallback);
  if (r < 0) throw new Error(`the virtine engine could not start its threads (errno ${-r})`);
  if (opts.poolBudget !== undefined) fns.setBudget(opts.poolBudget);
  let closed = false;

  return {
    isolation,
    run(req: EngineRequest): Promise<EngineOutcome> {
      if (closed) return Promise.reject(new Error("engine closed"));
      const job = nextJob++;
      const params = Buffer.from(req.params, "utf8");
      const logLimit = req.logLimit ?? defaultLogLimit;
      return new Promise<EngineOutcome>((resolve, reject) => {
        pending.set(job, { resolve, reject, resultLimit, logLimit });
        // The result buffer holds the result plus the NUL the engine's error path may write.
        const r = fns.submit(job, req.image, req.init, req.init.length, params, params.length,
          req.memoryMb, req.timeoutMs, req.initOnly ? FLAG_INIT_ONLY : 0, req.snapshotKey ?? "", resultLimit + 1, logLimit, TIER[isolation]);
        if (r < 0) {
          pending.delete(job);
          reject(new Error(`the virtine engine refused the invocation (errno ${-r})`));
        } else keepAlive();
      });
    },
    stats(): EngineStats {
      const c = new BigInt64Array(8);
      fns.counters(c);
      const [hits, misses, coldStarts, evictions, snapshots, bytes, idleVms, snapshotBytes] = Array.from(c, Number) as number[];
      return { hits: hits!, misses: misses!, coldStarts: coldStarts!, evictions: evictions!, snapshots: snapshots!, bytes: bytes!, idleVms: idleVms!, snapshotBytes: snapshotBytes! };
    },
    close() {
      closed = true;
    },
  };
}

interface Waiter {
  resolve(o: EngineOutcome): void;
  reject(e: Error): void;
  resultLimit: number;
  logLimit: number;
}

const sharedPending = new Map<number, Waiter>();
let sharedCallback: unknown | undefined;
let nextJob = 1; // koffi hands uint64 to JS as a number; ids stay far below 2^53
// Calls from engine threads reach the event loop asynchronously; an interval keeps Node alive
// while any invocation is outstanding (nothing else may be holding the loop open).
let aliveTimer: NodeJS.Timeout | undefined;
function keepAlive() {
  aliveTimer ??= setInterval(() => {}, 60_000);
}

/**
 * Buffers vsp_collect copies into, reused by every job: they are read (or copied) before the
 * next job is collected (see collectJob), and a fresh multi-MiB buffer per call halved the engine's throughput once
 * the log limit could be 4 MiB. Each grows to the largest size asked for and stays.
 */
const scratchBuffers = { result: Buffer.alloc(0), logs: Buffer.alloc(0) };
function scratch(which: keyof typeof scratchBuffers, size: number): Buffer {
  if (scratchBuffers[which].length < size) scratchBuffers[which] = Buffer.allocUnsafe(size);
  return scratchBuffers[which].subarray(0, size);
}

/**
 * Finished jobs waiting to be collected, in the order the engine reported them. They are collected
 * one at a time: each is copied out of the shared scratch buffers (over several turns of the
 * loop when its logs are large) before the next is collected into them.
 */
const collectQueue: number[] = [];
let collecting = false;

function completeJob(fns: Native, job: number): void {
  collectQueue.push(job);
  if (collecting) return;
  collecting = true;
  void (async () => {
    try {
      for (let next = collectQueue.shift(); next !== undefined; next = collectQueue.shift()) await collectJob(fns, next);
    } finally {
      collecting = false;
    }
  })();
}

async function collectJob(fns: Native, job: number): Promise<void> {
  const w = sharedPending.get(job);
  if (!w) return;
  sharedPending.delete(job);
  if (sharedPending.size === 0 && aliveTimer) {
    clearInterval(aliveTimer);
    aliveTimer = undefined;
  }
  try {
    const result = scratch("result", w.resultLimit + 1);
    const logs = scratch("logs", w.logLimit);
    const o = new BigInt64Array(OUTCOME_FIELDS);
    const r = fns.collect(job, result, result.length, logs, logs.length, o, OUTCOME_FIELDS);
    if (r < 0) return w.reject(new Error(`the virtine engine lost job ${job} (errno ${-r})`));
    const status = STATUS[Number(o[0])] ?? "internal";
    const text = result.subarray(0, Number(o[2])).toString("utf8");
    // Into fresh memory, so large logs take several turns of the loop (see COPY_SLICE).
    const logRecords = Buffer.allocUnsafe(Number(o[3]));
    for (let at = 0; at < logRecords.length; at += COPY_SLICE) {
      if (at > 0) await nextTurn();
      logs.copy(logRecords, at, at, Math.min(logRecords.length, at + COPY_SLICE));
    }
    let lines: LogLine[] | undefined;
    w.resolve({
      status,
      ...(status === "ok" ? { result: text } : { error: text }),
      logRecords,
      get logs() {
        return (lines ??= parseLogs(logRecords));
      },
      logsTruncated: o[1] !== 0n,
      micros: Number(o[4]),
      coldStart: o[6] !== 0n,
      cpuMicros: Number(o[7]),
      memoryPeak: Number(o[8]),
      warm: o[9] !== 0n,
    });
  } catch (err) {
    w.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * The engine's log records as lines (EngineOutcome.logs; the runner itself never makes these, see
 * formatLogs). Records are raw writes: a line may span several and one record may hold several
 * lines; each line carries the time of the write that began it. The lines a write completes (all
 * but the one it finishes and the one it leaves open) share its time, so they stay together as
 * one LogLine whose text holds them separated by "\n". The two streams are merged by time, ties in
 * the order the lines were finished.
 */
export function parseLogs(buf: Buffer): LogLine[] {
  const STREAMS = ["stdout", "stderr"] as const;
  // Per stream (0 stdout, 1 stderr): lines in time order, the order they were finished in, and
  // the line still open.
  const lines: [LogLine[], LogLine[]] = [[], []];
  const order: [number[], number[]] = [[], []];
  const open: [LogLine | undefined, LogLine | undefined] = [undefined, undefined];
  let seq = 0;
  const push = (s: 0 | 1, time: number, text: string) => {
    lines[s].push({ time, stream: STREAMS[s], text });
    order[s].push(seq++);
  };
  for (let off = 0; off + LOG_RECORD_HEADER <= buf.length;) {
    const time = (buf.readUInt32LE(off + 4) * 0x1_0000_0000 + buf.readUInt32LE(off)) / 1e6;
    const len = buf.readUInt32LE(off + 8);
    const s = buf[off + 12] === 2 ? 1 : 0;
    const text = buf.toString("utf8", off + LOG_RECORD_HEADER, Math.min(buf.length, off + LOG_RECORD_HEADER + len));
    off += LOG_RECORD_HEADER + len;
    const pending = open[s];
    const first = text.indexOf("\n");
    if (first < 0) {
      if (pending) pending.text += text;
      else if (text !== "") open[s] = { time, stream: STREAMS[s], text };
      continue;
    }
    push(s, pending?.time ?? time, (pending?.text ?? "") + text.slice(0, first));
    const last = text.lastIndexOf("\n");
    if (last > first) push(s, time, text.slice(first + 1, last));
    const rest = text.slice(last + 1);
    open[s] = rest === "" ? undefined : { time, stream: STREAMS[s], text: rest };
  }
  for (const s of [0, 1] as const) {
    const pending = open[s];
    if (pending) push(s, pending.time, pending.text);
  }
  const [a, b] = lines;
  const merged: LogLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x.time < y.time || (x.time === y.time && order[0][i]! < order[1][j]!)) (merged.push(x), i++);
    else (merged.push(y), j++);
  }
  while (i < a.length) merged.push(a[i++]!);
  while (j < b.length) merged.push(b[j++]!);
  return merged;
}

function defaultThreads(): number {
  return Math.max(1, Math.min(64, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 2));
}

// The runner's view of the native engine (native/). One call = one invocation in a fresh virtine
// or sandbox. Implemented over koffi; the blocking work happens on native threads, never on the event loop.
import { Isolation } from "../contracts/index.ts";

export interface EngineRequest {
  /** Path of the guest image (static ELF) to boot. */
  image: string;
  /** Bytes the guest reads in its init phase (for JS: the action's source). Empty for C. */
  init: Uint8Array;
  /** The invocation's parameters as JSON text. */
  params: string;
  memoryMb: number;
  timeoutMs: number;
  /** Only boot and load the code; ends with status ok and result "{}" once the guest is ready. */
  initOnly?: boolean;
  /**
   * Lets the call start from (or create) the snapshot of this name: the same name must always
   * mean the same image, init bytes and code (the runner uses the code hash). Absent: a fresh boot.
   */
  snapshotKey?: string;
  /** Log bytes to keep for this call (the action's limit); the engine's own default when absent. */
  logLimit?: number;
}

/** How the guest ended. `ok` carries a result; the rest carry `error`. */
export type EngineStatus =
  | "ok" /* main returned a value (one with an `error` field is an application error) */
  | "dev_error" /* main threw / returned nothing usable */
  | "timeout" /* killed at the deadline */
  | "crash" /* guest fault: page fault, invalid opcode, triple fault… */
  | "oom" /* guest ran out of memory */
  | "internal"; /* the host could not run the guest */

/**
 * Bytes before each write's data in EngineOutcome.logRecords (mirrors VSP_LOG_HEADER in
 * native/src/vespid_engine.h): u64 unix time in ns | u32 length | u8 stream (1 stdout, 2 stderr),
 * little-endian.
 */
export const LOG_RECORD_HEADER = 13;

export interface LogLine {
  /** Epoch ms at which the guest wrote it. */
  time: number;
  stream: "stdout" | "stderr";
  text: string;
}

export interface EngineOutcome {
  status: EngineStatus;
  /** JSON text returned by the function (status ok). */
  result?: string;
  /** Human-readable error for the other statuses. */
  error?: string;
  /**
   * The guest's output as the engine recorded it, one record per write, back to back (see
   * LOG_RECORD_HEADER). The runner encodes these bytes straight to the record's JSON (formatLogs):
   * a flood of tiny writes would otherwise be an object per write on the event loop's heap.
   */
  logRecords: Buffer;
  /** The same output as lines, parsed from logRecords when first read (tests and tools). */
  readonly logs: LogLine[];
  /** True when the logs were cut at the log limit. */
  logsTruncated: boolean;
  /** Wall time inside the engine, µs. */
  micros: number;
  /** True when this call booted the guest and took its snapshot (OpenWhisk's cold start). */
  coldStart: boolean;
  /** CPU time the call consumed, µs (the vCPU thread's; in the process tier plus the sandbox's own). */
  cpuMicros?: number;
  /** Peak guest memory of the call, bytes: image, heap and mmap'd pages at their largest. */
  memoryPeak?: number;
  /** True when the call started from a VM of its snapshot (idle or built from it): no boot, no init. */
  warm?: boolean;
}

/** Counters of the engine's snapshot pool, since the process started. */
export interface EngineStats {
  /** Calls that found an idle VM of their snapshot. */
  hits: number;
  /** Calls that built a VM from an existing snapshot. */
  misses: number;
  /** Calls that booted the guest and took its snapshot. */
  coldStarts: number;
  /** Snapshots dropped to stay within the memory budget. */
  evictions: number;
  snapshots: number;
  /** Memory held by snapshots and idle VMs, estimated. */
  bytes: number;
  idleVms: number;
  /** Of `bytes`, what the snapshots themselves hold (pages that differ from zero and the image). */
  snapshotBytes: number;
}

/**
 * Where invocations run (contracts' Isolation): `kvm`, a virtine on /dev/kvm (the strongest), or
 * `process`, a sandboxed process (namespaces, empty root, seccomp) for hosts without KVM. Same
 * images, same semantics.
 */
export type { Isolation };
export const ISOLATIONS: readonly Isolation[] = Isolation.options;

export interface Engine {
  /** The tier every call of this engine runs on. */
  readonly isolation: Isolation;
  run(req: EngineRequest): Promise<EngineOutcome>;
  stats(): EngineStats;
  close(): void;
}

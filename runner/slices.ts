// Long loops over guest output (logs, records) run on the event loop in slices, giving way between
// them: the loop also carries the runner's heartbeats, and a runner silent for RUNNER_EXPIRY_MS is
// declared dead and its calls run again elsewhere. A slice is a few ms, so the cost of a loop in
// other calls' latency is bounded whatever the guest wrote.
import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";

/** Longest a loop keeps the event loop before giving way, ms. */
export const SLICE_MS = 3;

/**
 * Bytes copied at once into a new buffer. Fresh memory is slow the first time it is touched (a
 * page fault per 4 KiB: ~10 ms for 8 MiB in a virtual machine), so multi-MiB copies (a call's
 * logs out of the engine, a record put together) take several slices.
 */
export const COPY_SLICE = 512 * 1024;

export class Slicer {
  private until = performance.now() + SLICE_MS;

  /** Call often (it is cheap): gives way to the event loop once the slice is used up. */
  due(): boolean {
    return performance.now() >= this.until;
  }

  async pause(): Promise<void> {
    await nextTurn();
    this.until = performance.now() + SLICE_MS;
  }
}

// Guest images: the ELF a virtine boots for an action. JS actions share one prebuilt interpreter
// image; C actions are compiled with static musl against the guest runtime, cached by content hash.
import type { ActionKind } from "../contracts/index.ts";

export type BuildResult =
  | { ok: true; codeHash: string; image: string }
  /**
   * `fault: "host"`: the runner could not build or check the code at all (a missing toolchain or
   * guest image, an engine that cannot start): not the code's fault, and not to be reported as if
   * it were. Absent: the code's (a compiler error, code that fails to load).
   */
  | { ok: false; error: string; fault?: "host" };

export interface ImageStore {
  /** Compiles (or finds in the cache) the image for this code. Compiler errors come back verbatim. */
  build(kind: ActionKind, code: string): Promise<BuildResult>;
}

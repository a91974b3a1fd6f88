// Guest images: the ELF a virtine boots for an action. JS actions share one prebuilt interpreter
// image; C actions are compiled with static musl against the guest runtime, cached by content hash.
import type { ActionKind } from "../contracts/index.ts";

export type BuildResult =
  | { ok: true; codeHash: string; image: string }
  /**
   * `fault: "host"`: the runner could not build or check the code at all (a missing toolchain or
   * guest image, an engine that cannot start): not the code's fault, and not to be reported as if
   * it were. `fault: "busy"`: this runner has as many builds under way and waiting as it takes
   * (the error names the bound); the code was not looked at, and a retry may succeed. Absent: the
   * code's (a compiler error, code that fails to load, a compile that broke a build limit).
   */
  | { ok: false; error: string; fault?: "host" | "busy" };

export interface ImageStore {
  /** Compiles (or finds in the cache) the image for this code. Compiler errors come back verbatim. */
  build(kind: ActionKind, code: string): Promise<BuildResult>;
}

// Guest images: the ELF a virtine boots for an action. JS actions share one prebuilt interpreter
// image; C actions are compiled with static musl against the guest runtime, cached by content hash.
import type { ActionKind } from "../contracts/index.ts";
import type { JsSource } from "./js-init.ts";

export type BuildResult =
  /** `init`: the bytes the guest reads at init (a JS action's source or module map); absent for C. */
  | { ok: true; codeHash: string; image: string; init?: Uint8Array }
  /**
   * `fault: "host"`: the runner could not build or check the code at all (a missing toolchain or
   * guest image, an engine that cannot start): not the code's fault, and not to be reported as if
   * it were. `fault: "busy"`: this runner has as many builds under way and waiting as it takes
   * (the error names the bound); the code was not looked at, and a retry may succeed. Absent: the
   * code's (a compiler error, code that fails to load, a compile that broke a build limit).
   */
  | { ok: false; error: string; fault?: "host" | "busy" };

export interface ImageStore {
  /**
   * Compiles (or finds in the cache) the image for this code. Compiler errors come back verbatim.
   * `source` says how JS code is given (a base64 zip, another main); C ignores it.
   */
  build(kind: ActionKind, code: string, source?: JsSource): Promise<BuildResult>;
}

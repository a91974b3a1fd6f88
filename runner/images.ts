// Guest images: the ELF a virtine boots for an action. JS actions share one prebuilt interpreter
// image; C actions are compiled with static musl against the guest runtime, cached by content hash.
import type { ActionKind } from "../contracts/index.ts";

export type BuildResult =
  | { ok: true; codeHash: string; image: string }
  | { ok: false; error: string };

export interface ImageStore {
  /** Compiles (or finds in the cache) the image for this code. Compiler errors come back verbatim. */
  build(kind: ActionKind, code: string): Promise<BuildResult>;
}

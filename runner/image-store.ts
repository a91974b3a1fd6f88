// Guest images on disk. JavaScript actions all boot the prebuilt QuickJS image and are checked by
// loading their code in a virtine; C actions are compiled with static musl against the guest
// runtime inside a bubblewrap sandbox (the code is untrusted: it must not `#include` or `.incbin`
// host files), and cached under <dataDir>/images by content hash.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type pino from "pino";
import type { ActionKind } from "../contracts/index.ts";
import type { Engine } from "./engine.ts";
import type { BuildResult, ImageStore } from "./images.ts";

const NATIVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../native");
export const JS_IMAGE = path.join(NATIVE, "build/guest/js.elf");
const GUEST_LIB = path.join(NATIVE, "build/guest/libvespid-guest.a");
const GUEST_INCLUDE = path.join(NATIVE, "include");

/** Wall-clock limit of one C compilation, ms. */
export const DEFAULT_COMPILE_TIMEOUT_MS = 60_000;
/** Limits of the virtine that checks a JS action loads: its top-level code runs there. */
const CHECK_MEMORY_MB = 128;
const CHECK_TIMEOUT_MS = 10_000;
/** Successful builds remembered in memory, so an invocation costs no hashing of files or re-check. */
const MAX_REMEMBERED = 10_000;
/** Compiler output kept for the user, bytes. */
const MAX_DIAGNOSTICS = 64 * 1024;

export interface ImageStoreOptions {
  dataDir: string;
  logger: pino.Logger;
  /**
   * Runs the load check of JS actions, so it must be the engine (and tier) the runner runs them
   * on; defaults to the native engine on the strongest tier available.
   */
  engine?: Engine;
  compileTimeoutMs?: number;
  /** The QuickJS guest image (default JS_IMAGE); another path stands for a damaged install. */
  jsImage?: string;
}

export function createImageStore(opts: ImageStoreOptions): ImageStore {
  const dir = path.join(opts.dataDir, "images");
  const inflight = new Map<string, Promise<BuildResult>>();
  const ready = new Map<string, BuildResult>(); // insertion order doubles as LRU order
  let engine = opts.engine;
  let guestLibHash: Promise<string> | undefined;

  const jsImage = opts.jsImage ?? JS_IMAGE;

  async function checkJs(code: string, codeHash: string): Promise<BuildResult> {
    engine ??= (await import("./engine-native.ts")).openNativeEngine();
    const outcome = await engine.run({
      image: jsImage, init: Buffer.from(code, "utf8"), params: "{}", initOnly: true,
      memoryMb: CHECK_MEMORY_MB, timeoutMs: CHECK_TIMEOUT_MS,
    });
    if (outcome.status === "ok") return { ok: true, codeHash, image: jsImage };
    // dev_error, crash, timeout and oom are the code's doing at load; internal is the host's.
    if (outcome.status === "internal") {
      return { ok: false, fault: "host", error: `the ${engine.isolation} engine could not check the code: ${outcome.error ?? "internal error"}` };
    }
    return { ok: false, error: outcome.error ?? `the code could not be loaded (${outcome.status})` };
  }

  async function compileC(code: string, codeHash: string): Promise<BuildResult> {
    const image = path.join(dir, `${codeHash}.elf`);
    if (await exists(image)) return { ok: true, codeHash, image };
    await mkdir(dir, { recursive: true });
    const work = await mkdtemp(path.join(dir, "build-"));
    try {
      await writeFile(path.join(work, "action.c"), code);
      const { failed, output, fault } = await run(sandboxed(work), opts.compileTimeoutMs ?? DEFAULT_COMPILE_TIMEOUT_MS);
      if (failed) return { ok: false, error: output.slice(0, MAX_DIAGNOSTICS) || "compilation failed", ...(fault && { fault }) };
      await rename(path.join(work, "action.elf"), image); // atomic: readers never see half a file
      opts.logger.debug({ codeHash }, "compiled C action");
      return { ok: true, codeHash, image };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  return {
    async build(kind: ActionKind, code: string): Promise<BuildResult> {
      guestLibHash ??= readFile(GUEST_LIB).then((b) => sha256(b));
      // The runtime's own hash is part of the key, so a rebuilt runtime never reuses stale images.
      const codeHash = sha256(`${kind}\0${kind === "c" ? await guestLibHash : ""}\0${code}`);
      const known = ready.get(codeHash);
      if (known) {
        ready.delete(codeHash);
        ready.set(codeHash, known);
        return known;
      }
      let p = inflight.get(codeHash); // concurrent builds of the same code share one compiler run
      if (!p) {
        p = (kind === "c" ? compileC(code, codeHash) : checkJs(code, codeHash))
          // A file system or engine that fails us is this host's problem, never the code's.
          .catch((err: unknown): BuildResult => ({ ok: false, fault: "host", error: `could not build the image: ${(err as Error).message}` }))
          .then((built) => {
            if (built.ok) {
              ready.set(codeHash, built);
              if (ready.size > MAX_REMEMBERED) ready.delete(ready.keys().next().value!);
            }
            return built;
          })
          .finally(() => inflight.delete(codeHash));
        inflight.set(codeHash, p);
      }
      return p;
    },
  };
}

/** musl-gcc in a bubblewrap sandbox that sees /usr, the runtime and the build folder only. */
function sandboxed(work: string): string[] {
  return [
    "bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/bin", "/bin", "--ro-bind", GUEST_INCLUDE, "/vespid/include",
    "--ro-bind", GUEST_LIB, "/vespid/libvespid-guest.a", "--bind", work, "/build", "--chdir", "/build",
    "--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
    "--clearenv", "--setenv", "PATH", "/usr/bin",
    "musl-gcc", "-std=gnu11", "-O2", "-static", "-no-pie", "-Wl,-Ttext-segment=0x200000",
    "-fdiagnostics-color=never", "-I/vespid/include", "action.c", "/vespid/libvespid-guest.a", "-o", "action.elf",
  ];
}

function run(argv: string[], timeoutMs: number): Promise<{ failed: boolean; output: string; fault?: "host" }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 4 * MAX_DIAGNOSTICS, killSignal: "SIGKILL" },
      (err, stdout, stderr) => {
        const output = `${stderr}${stdout}`.trim();
        if (err && (err as NodeJS.ErrnoException).code === "ENOENT")
          resolve({ failed: true, fault: "host", output: "the C toolchain sandbox (bwrap) is not installed on this runner" });
        else if (err?.killed) resolve({ failed: true, output: `compilation took longer than ${timeoutMs} ms` });
        // bwrap speaks only of its own setup, before the compiler starts: a host problem.
        else if (err && output.startsWith("bwrap:")) resolve({ failed: true, fault: "host", output: `the C toolchain sandbox could not start: ${output}` });
        else resolve({ failed: !!err, output });
      });
  });
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const exists = (p: string) => stat(p).then(() => true, () => false);

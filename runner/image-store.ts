// Guest images on disk. JavaScript actions all boot the prebuilt QuickJS image and are checked by
// loading their code in a virtine (a zip action's modules are unpacked first, runner/js-init.ts,
// and handed to the guest as its init input); C actions are compiled with static musl against the
// guest runtime inside a bubblewrap sandbox (the code is untrusted: it must not `#include` or
// `.incbin` host files, nor make the compiler eat the runner), and cached under <dataDir>/images
// by content hash.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type pino from "pino";
import type { ActionKind } from "../contracts/index.ts";
import type { Engine } from "./engine.ts";
import type { BuildResult, ImageStore } from "./images.ts";
import { jsInit, jsVariant, type JsSource } from "./js-init.ts";
import { ZipError } from "./zip-archive.ts";

const NATIVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../native");
export const JS_IMAGE = path.join(NATIVE, "build/guest/js.elf");
const GUEST_LIB = path.join(NATIVE, "build/guest/libvespid-guest.a");
const GUEST_INCLUDE = path.join(NATIVE, "include");

/**
 * The largest image the engine loads, file and memory alike (MAX_IMAGE_SIZE in native/src/elf.c):
 * every segment, zero-initialised data included, must end below it, counted from address 0.
 */
export const MAX_IMAGE_BYTES = 64 * 1024 * 1024;
/** Where the engine loads images (VSP_IMAGE_BASE in native/include/vespid_abi.h). */
const IMAGE_BASE = 0x200000;

/**
 * Limits of one C build. The compiler is the user's program too: code can make it allocate without
 * end (macro or `#include` recursion), loop (assembler `.rept`), or write without end (a huge
 * initialised array, `.fill`). Each is a bound with its own error. A normal action builds in ~0.1 s
 * and a few MiB; the defaults were measured to still build 600 KB of dense functions at -O2
 * (~25 s of CPU, ~330 MiB resident), and to stop a memory bomb within seconds.
 */
export interface BuildLimits {
  /** Address space of each compiler process (RLIMIT_AS), MiB. */
  memoryMb: number;
  /** CPU time of each compiler process (RLIMIT_CPU, SIGXCPU), s. */
  cpuSeconds: number;
  /** Wall clock of the whole build, ms; the compiler's processes are killed at it. */
  wallMs: number;
  /**
   * Largest file the compiler may write (RLIMIT_FSIZE, SIGXFSZ), bytes: the image and every
   * temporary file (the object file in the sandbox's tmpfs). It is also the largest image the
   * engine loads, so the default is that.
   */
  outputBytes: number;
  /** C builds running at once on this runner; more wait their turn. */
  concurrent: number;
  /**
   * C builds waiting for a turn; more are refused at once as busy (the gateway's 503). A waiting
   * build holds only its request (no folder, no process), and a deploy script PUTs dozens at once.
   */
  queued: number;
  /**
   * How long a build waits for a turn before it is refused as busy, ms. With wallMs it stays
   * below the gateway's build timeout (120 s), so the caller hears why rather than a timeout.
   */
  queueWaitMs: number;
}

export const DEFAULT_BUILD_LIMITS: Readonly<BuildLimits> = Object.freeze({
  memoryMb: 1024,
  cpuSeconds: 40,
  wallMs: 60_000,
  outputBytes: MAX_IMAGE_BYTES,
  concurrent: 2,
  queued: 64,
  queueWaitMs: 45_000,
});

/** Limits of the virtine that checks a JS action loads: its top-level code runs there. */
const CHECK_MEMORY_MB = 128;
const CHECK_TIMEOUT_MS = 10_000;
/** Zip actions' module maps kept in memory, bytes; one not kept is unpacked again at a cold start. */
const MAX_KEPT_INIT_BYTES = 256 * 1024 * 1024;
/** Successful builds remembered in memory, so an invocation costs no hashing of files or re-check. */
const MAX_REMEMBERED = 10_000;
/** Compiler output kept for the user, bytes. */
const MAX_DIAGNOSTICS = 64 * 1024;
/** Build folders older than this were left by a runner that died mid-build (no build lives this long). */
const STALE_BUILD_MS = 10 * 60_000;

export interface ImageStoreOptions {
  dataDir: string;
  logger: pino.Logger;
  /**
   * Runs the load check of JS actions, so it must be the engine (and tier) the runner runs them
   * on; defaults to the native engine on the strongest tier available.
   */
  engine?: Engine;
  /** Limits of C builds; each one not given is DEFAULT_BUILD_LIMITS'. */
  buildLimits?: Partial<BuildLimits>;
  /** The QuickJS guest image (default JS_IMAGE); another path stands for a damaged install. */
  jsImage?: string;
}

export function createImageStore(opts: ImageStoreOptions): ImageStore {
  const dir = path.join(opts.dataDir, "images");
  const limits: BuildLimits = { ...DEFAULT_BUILD_LIMITS, ...opts.buildLimits };
  const inflight = new Map<string, Promise<BuildResult>>();
  const ready = new Map<string, BuildResult>(); // insertion order doubles as LRU order
  const turns = createTurns(limits);
  let engine = opts.engine;
  let guestLibHash: Promise<string> | undefined;
  let swept: Promise<void> | undefined;

  const jsImage = opts.jsImage ?? JS_IMAGE;

  /**
   * The INIT bytes of JS code: plain code's are its text; a zip's module map is kept in memory up
   * to a bound (MAX_KEPT_INIT_BYTES) and otherwise unpacked again, which only a cold start needs.
   */
  const inits = new Map<string, Uint8Array>(); // insertion order doubles as LRU order
  let initBytes = 0;
  function initOf(code: string, codeHash: string, source: JsSource): Uint8Array {
    if (jsVariant(source) === undefined) return jsInit(code, source);
    const kept = inits.get(codeHash);
    if (kept) {
      inits.delete(codeHash);
      inits.set(codeHash, kept);
      return kept;
    }
    const init = jsInit(code, source); // throws ZipError for an unusable zip
    if (init.length <= MAX_KEPT_INIT_BYTES) {
      inits.set(codeHash, init);
      initBytes += init.length;
      for (const [hash, old] of inits) {
        if (initBytes <= MAX_KEPT_INIT_BYTES) break;
        inits.delete(hash);
        initBytes -= old.length;
      }
    }
    return init;
  }

  async function checkJs(code: string, codeHash: string, source: JsSource): Promise<BuildResult> {
    let init: Uint8Array;
    try {
      init = initOf(code, codeHash, source);
    } catch (err) {
      if (err instanceof ZipError) return { ok: false, error: err.message };
      throw err;
    }
    engine ??= (await import("./engine-native.ts")).openNativeEngine();
    const outcome = await engine.run({
      image: jsImage, init, params: "{}", initOnly: true,
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
    const refused = await turns.acquire();
    if (refused) return { ok: false, fault: "busy", error: refused };
    try {
      if (await exists(image)) return { ok: true, codeHash, image }; // built by another store meanwhile
      await mkdir(dir, { recursive: true });
      swept ??= sweepStale(dir, opts.logger);
      const work = await mkdtemp(path.join(dir, "build-"));
      try {
        await writeFile(path.join(work, "action.c"), code);
        const { failed, output, fault } = await compile(work, limits);
        if (failed) return { ok: false, error: output.slice(0, MAX_DIAGNOSTICS) || "compilation failed", ...(fault && { fault }) };
        const tooBig = await checkImageSize(path.join(work, "action.elf"));
        if (tooBig) return { ok: false, error: tooBig };
        await rename(path.join(work, "action.elf"), image); // atomic: readers never see half a file
        opts.logger.debug({ codeHash }, "compiled C action");
        return { ok: true, codeHash, image };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    } finally {
      turns.release();
    }
  }

  return {
    async build(kind: ActionKind, code: string, source: JsSource = {}): Promise<BuildResult> {
      guestLibHash ??= readFile(GUEST_LIB).then((b) => sha256(b));
      // The runtime's own hash and the compiler's command line are part of the key, so a rebuilt
      // runtime or new flags (stack-clash protection) never reuse images built without them. A JS
      // zip or another main changes the init, so it changes the key (and the snapshot it names).
      const variant = kind === "nodejs" ? jsVariant(source) : undefined;
      const codeHash = sha256(`${variant === undefined ? kind : `${kind}:${variant}`}\0${kind === "c" ? `${await guestLibHash}\0${sandboxed("").join(" ")}` : ""}\0${code}`);
      const withInit = (built: BuildResult): BuildResult => {
        if (!built.ok || kind !== "nodejs") return built;
        try {
          return { ...built, init: initOf(code, codeHash, source) };
        } catch (err) {
          if (err instanceof ZipError) return { ok: false, error: err.message };
          throw err;
        }
      };
      const known = ready.get(codeHash);
      if (known) {
        ready.delete(codeHash);
        ready.set(codeHash, known);
        return withInit(known);
      }
      let p = inflight.get(codeHash); // concurrent builds of the same code share one compiler run
      if (!p) {
        p = (kind === "c" ? compileC(code, codeHash) : checkJs(code, codeHash, source))
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
      return p.then(withInit);
    },
  };
}

/**
 * The per-runner bound on C builds at once: a compiler may hold a core and `memoryMb` per process
 * for up to `wallMs`, so builds beyond `concurrent` wait in order, and beyond `queued` (or past
 * `queueWaitMs`) are refused as busy: another runner, or a retry, can take them.
 */
function createTurns(limits: BuildLimits) {
  let running = 0;
  const waiting: Array<() => void> = [];
  const busy = (why: string) =>
    `too many C builds on this runner: ${why} (at most ${limits.concurrent} at once and ${limits.queued} waiting, ` +
    `for at most ${limits.queueWaitMs} ms); try again shortly`;
  return {
    /** Resolves with undefined once the caller may build, or with why it may not. */
    acquire(): Promise<string | undefined> {
      if (running < limits.concurrent) {
        running++;
        return Promise.resolve(undefined);
      }
      if (waiting.length >= limits.queued) return Promise.resolve(busy(`${running} running and ${waiting.length} waiting`));
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(turn), 1);
          resolve(busy(`this one waited ${limits.queueWaitMs} ms without a turn`));
        }, limits.queueWaitMs);
        const turn = () => {
          clearTimeout(timer);
          resolve(undefined);
        };
        waiting.push(turn);
      });
    },
    release() {
      const next = waiting.shift();
      if (next) next(); // the turn passes straight on: `running` stays
      else running--;
    },
  };
}

/**
 * The compiler, sandboxed (see `sandboxed`) and bounded: rlimits set by prlimit on bwrap are
 * inherited by everything in the sandbox, per process, and the wall clock kills the process
 * group (bwrap's own children die with it: --die-with-parent, and its PID namespace).
 */
function compile(work: string, limits: BuildLimits): Promise<{ failed: boolean; output: string; fault?: "host" }> {
  const cpu = limits.cpuSeconds;
  const argv = [
    "prlimit", `--as=${limits.memoryMb * 1024 * 1024}`,
    // SIGXCPU at the soft limit (the driver reports it by name); SIGKILL at the hard one if caught.
    `--cpu=${cpu}:${cpu + 5}`, `--fsize=${limits.outputBytes}`, "--core=0", "--",
    ...sandboxed(work),
  ];
  return new Promise((resolve) => {
    // fd 3: bwrap's --info-fd, which names the sandbox's PID 1 (outside our process group: setsid).
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe", "pipe"], detached: true });
    let output = "";
    const collect = (chunk: Buffer) => {
      // A flood of diagnostics is bounded by the CPU and wall limits; keep what the user can read.
      if (output.length < 4 * MAX_DIAGNOSTICS) output += chunk.toString("utf8");
    };
    child.stdout!.on("data", collect);
    child.stderr!.on("data", collect);
    let info = "";
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (chunk: Buffer) => (info += chunk.toString("utf8")));
    const sandboxPid = () => Number(/"child-pid"\s*:\s*(\d+)/.exec(info)?.[1]) || undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      kill(-child.pid!);
      const pid = sandboxPid();
      if (pid) kill(pid); // its PID namespace dies with it
    }, limits.wallMs);
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === "ENOENT"
        ? { failed: true, fault: "host", output: "the C toolchain sandbox (prlimit, bwrap) is not installed on this runner" }
        : { failed: true, fault: "host", output: `the C toolchain sandbox could not start: ${err.message}` });
    });
    child.on("close", async (code, signal) => {
      clearTimeout(timer);
      const text = output.trim();
      if (timedOut) {
        // Nothing of the build may outlive its answer, nor write into the folder being removed.
        await gone(sandboxPid());
        return resolve({ failed: true, output: `the compiler exceeded its wall-clock limit of ${limits.wallMs / 1000} s` });
      }
      const limit = limitHit(text, limits);
      if (limit) return resolve({ failed: true, output: limit });
      // bwrap speaks only of its own setup, before the compiler starts: a host problem.
      if (text.startsWith("bwrap:") || text.startsWith("prlimit:")) return resolve({ failed: true, fault: "host", output: `the C toolchain sandbox could not start: ${text}` });
      if (signal) return resolve({ failed: true, output: `the compiler was killed by ${signal}` });
      resolve({ failed: code !== 0, output: text });
    });
  });
}

function kill(pid: number) {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Waits (up to 5 s) until a killed sandbox's PID 1 has exited: the kernel reaps its namespace first. */
async function gone(pid: number | undefined) {
  for (let i = 0; pid && i < 500; i++) {
    const state = await readFile(`/proc/${pid}/stat`, "utf8").then((s) => /\) (\S)/.exec(s)?.[1], () => undefined);
    if (!state || state === "Z") return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** How the toolchain's programs name themselves at the start of a message. */
const TOOL = String.raw`(?:\S*gcc|cc1|collect2|(?:/usr/bin/)?(?:x86_64-linux-gnu-)?(?:as|ld(?:\.bfd)?))`;

/**
 * Which limit stopped the compiler, from what the gcc driver and the tools print when one does.
 * Only lines that start with a tool's name count: the code's own text (an `#error`, a string in a
 * warning) is always printed after a source location, so it cannot pass for a limit.
 */
function limitHit(output: string, limits: BuildLimits): string | undefined {
  const signalled = (what: string) => new RegExp(String.raw`^\S*gcc: (?:fatal|internal compiler) error: ${what} signal terminated program \S+$`, "m").test(output);
  if (signalled("CPU time limit exceeded")) return `the compiler exceeded its CPU time limit of ${limits.cpuSeconds} s`;
  if (signalled("File size limit exceeded") || new RegExp(String.raw`^${TOOL}: .*File too large$`, "m").test(output)) {
    return `the build exceeded its output size limit of ${mib(limits.outputBytes)} (for any file it writes, the image included)`;
  }
  if (new RegExp(String.raw`^(?:${TOOL}: )?(?:out of memory allocating \d+ bytes|virtual memory exhausted)`, "m").test(output)) {
    return `the compiler exceeded its memory limit of ${limits.memoryMb} MiB`;
  }
  return undefined;
}
/**
 * Refuses an image the engine would refuse at every call ("not a valid guest image"): a file, or
 * segments in memory (zero-initialised data included), past MAX_IMAGE_BYTES. Returns why, or
 * undefined when it fits.
 */
async function checkImageSize(file: string): Promise<string | undefined> {
  const limit = `the engine loads images of at most ${mib(MAX_IMAGE_BYTES)}`;
  const f = await open(file, "r");
  try {
    const { size } = await f.stat();
    if (size > MAX_IMAGE_BYTES) return `the compiled image is ${mib(size)}: ${limit}`;
    const header = Buffer.alloc(64);
    await f.read(header, 0, 64, 0);
    // musl-gcc makes ELF64 little-endian; anything else the engine refuses with its own message.
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return undefined;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    if (phentsize < 56 || phnum === 0 || phoff + phnum * phentsize > size) return undefined;
    const table = Buffer.alloc(phnum * phentsize);
    await f.read(table, 0, table.length, phoff);
    let end = 0;
    for (let i = 0; i < phnum; i++) {
      const ph = table.subarray(i * phentsize);
      if (ph.readUInt32LE(0) !== 1) continue; // PT_LOAD
      end = Math.max(end, Number(ph.readBigUInt64LE(16) + ph.readBigUInt64LE(40))); // p_vaddr + p_memsz
    }
    if (end > MAX_IMAGE_BYTES) {
      return `the compiled program's code and static data (zero-initialised arrays included) need ${mib(end - IMAGE_BASE)} ` +
        `from its load address 0x${IMAGE_BASE.toString(16)}: ${limit}, so at most ${mib(MAX_IMAGE_BYTES - IMAGE_BASE)} of them; ` +
        "allocate large buffers with malloc instead";
    }
    return undefined;
  } finally {
    await f.close();
  }
}

/** Removes build folders a runner that died mid-build left behind (a live build never gets this old). */
async function sweepStale(dir: string, logger: pino.Logger): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith("build-")) continue;
    const at = path.join(dir, name);
    const st = await stat(at).catch(() => undefined);
    if (st && now - st.mtimeMs > STALE_BUILD_MS) {
      await rm(at, { recursive: true, force: true }).catch((err: unknown) => logger.warn({ err, at }, "could not remove a stale build folder"));
    }
  }
}

/**
 * musl-gcc in a bubblewrap sandbox that sees /usr, the runtime and the build folder only: no /proc
 * and a /dev of /dev/null alone, so `#include "/dev/zero"`, `"/dev/stdin"` or `"/proc/self/fd/1"`
 * and `.incbin` of them find nothing. `-pipe` keeps the assembly text (several times the image) out
 * of files, so a large but legal table is bounded by the size of the object, not of its text.
 */
function sandboxed(work: string): string[] {
  return [
    "bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/bin", "/bin", "--ro-bind", GUEST_INCLUDE, "/vespid/include",
    "--ro-bind", GUEST_LIB, "/vespid/libvespid-guest.a", "--bind", work, "/build", "--chdir", "/build",
    "--unshare-all", "--die-with-parent", "--new-session", "--info-fd", "3", "--tmpfs", "/dev", "--dev-bind", "/dev/null", "/dev/null",
    "--tmpfs", "/tmp", "--clearenv", "--setenv", "PATH", "/usr/bin",
    "musl-gcc", "-std=gnu11", "-O2", "-pipe", "-static", "-no-pie", "-Wl,-Ttext-segment=0x200000",
    // A large alloca or VLA must touch the stack guard rather than jump over it.
    "-fstack-clash-protection",
    "-fdiagnostics-color=never", "-I/vespid/include", "action.c", "/vespid/libvespid-guest.a", "-o", "action.elf",
  ];
}

const mib = (bytes: number) => `${Number.isInteger(bytes / 1048576) ? bytes / 1048576 : (bytes / 1048576).toFixed(1)} MiB`;
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const exists = (p: string) => stat(p).then(() => true, () => false);

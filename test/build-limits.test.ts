// Compile bombs against the C build's limits (issue 8, findings 6 and 7): real musl-gcc in its
// real sandbox. Each bomb must fail fast with an error naming the limit it hit and leave nothing
// behind: no build folder, no image, no compiler process. Before these limits, a memory bomb ran to
// the 60 s wall clock unbounded in memory, and a 600 MiB image (or a 100 MiB `.bss`) was built,
// stored, and refused by the engine at every call.
import test, { type ExecutionContext } from "ava";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { ApiError } from "../gateway/errors.ts";
import { createBuilder } from "../gateway/build.ts";
import { serveBuilds } from "../runner/build-service.ts";
import { isolationAvailable, openNativeEngine } from "../runner/engine-native.ts";
import { ISOLATIONS } from "../runner/engine.ts";
import { createImageStore, DEFAULT_BUILD_LIMITS, MAX_IMAGE_BYTES, type BuildLimits } from "../runner/image-store.ts";
import type { BuildResult } from "../runner/images.ts";
import { startLocalNats, findNatsServer } from "../infra/nats-server.ts";
import { loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";

const logger = pino({ level: "silent" });
let root: string;
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "vespid-build-limits-"));
});
test.after.always(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

let stores = 0;
/** A fresh image store (its own data directory) with these limits over the defaults. */
async function store(limits: Partial<BuildLimits> = {}) {
  const dataDir = await mkdtemp(join(root, `store-${stores++}-`));
  return { dataDir, images: createImageStore({ dataDir, logger, buildLimits: limits }) };
}

const MAIN = "#include <vespid.h>\nconst char *vespid_main(const char *p) { return p; }\n";

/** Each macro doubles the one before: A40 is 2^42 tokens, which cc1 tries to hold. */
const MACRO_BOMB = [
  "#define A0 x+x+x+x",
  ...Array.from({ length: 40 }, (_, i) => `#define A${i + 1} A${i}+A${i}`),
  "int f(int x) { return A40; }",
  MAIN,
].join("\n");

/** The file includes itself twice at every level: 2^40 inclusions, its line maps grow without end. */
const INCLUDE_BOMB = `#if __INCLUDE_LEVEL__ < 40
#include __FILE__
#include __FILE__
#endif
#if __INCLUDE_LEVEL__ == 0
${MAIN}#endif
`;

/**
 * 2.5e9 assembler macro calls that emit nothing: CPU for ever in a few MiB (gas re-reads the
 * 100 KB inner body 50000 times rather than holding it), so only the CPU or wall limit stops it.
 */
const CPU_BOMB = `${MAIN}__asm__(".macro m a,b,c\\n.endm\\n.rept 50000\\n.rept 50000\\nm\\n.endr\\n.endr\\n");\n`;

/** A compile that must fail with `error`, within `withinMs`, leaving nothing in the store's folder. */
async function failsFast(t: ExecutionContext, s: Awaited<ReturnType<typeof store>>, code: string, error: string | RegExp, withinMs: number) {
  const started = Date.now();
  const built = await s.images.build("c", code);
  const took = Date.now() - started;
  t.false(built.ok, "the bomb built");
  if (built.ok) return built;
  if (typeof error === "string") t.is(built.error, error);
  else t.regex(built.error, error);
  t.is(built.fault, undefined, "the code's fault, not the host's");
  t.true(took < withinMs, `took ${took} ms (limit ${withinMs})`);
  t.deepEqual(await leftovers(s.dataDir), [], "a failed build leaves nothing behind");
  return built;
}

async function leftovers(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, "images")).catch(() => []);
}

/** Live (non-zombie) processes descending from this one: the compiler and its sandbox. */
async function descendants(): Promise<Map<number, string>> {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
    if (m && m[2] !== "Z") {
      parent.set(Number(name), Number(m[3]));
      comm.set(Number(name), m[1]!);
    }
  }
  const found = new Map<number, string>();
  for (const pid of parent.keys()) {
    for (let p = parent.get(pid); p && p > 1; p = parent.get(p)) {
      if (p === process.pid) found.set(pid, comm.get(pid)!);
    }
  }
  return found;
}

test.serial("the default limits are the ones the README states", (t) => {
  t.deepEqual({ ...DEFAULT_BUILD_LIMITS }, {
    memoryMb: 1024, cpuSeconds: 40, wallMs: 60_000, outputBytes: 64 * 1024 * 1024, concurrent: 2, queued: 64, queueWaitMs: 45_000,
  });
  t.is(MAX_IMAGE_BYTES, 64 * 1024 * 1024, "MAX_IMAGE_SIZE in native/src/elf.c");
  // A queued build still answers before the gateway gives up on it (gateway/build.ts: 120 s).
  t.true(DEFAULT_BUILD_LIMITS.queueWaitMs + DEFAULT_BUILD_LIMITS.wallMs < 120_000);
});

test.serial("a normal C action builds under the default limits, fast", async (t) => {
  const s = await store();
  const started = Date.now();
  const built = await s.images.build("c", `#include <vespid.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
static char out[64];
const char *vespid_main(const char *p) { snprintf(out, sizeof out, "{\\"r\\":%.3f}", sqrt((double)strlen(p))); return out; }
`);
  t.true(built.ok, built.ok ? "" : built.error);
  t.true(Date.now() - started < 15_000);
  t.deepEqual((await leftovers(s.dataDir)).filter((f) => !f.endsWith(".elf")), [], "no build folder left");
});

test.serial("a macro-expansion memory bomb stops at the memory limit", async (t) => {
  const s = await store(); // the defaults: 1 GiB per process
  await failsFast(t, s, MACRO_BOMB, `the compiler exceeded its memory limit of ${DEFAULT_BUILD_LIMITS.memoryMb} MiB`, 40_000);
});

test.serial("an #include recursion bomb stops at the memory limit", async (t) => {
  const s = await store({ memoryMb: 256 });
  await failsFast(t, s, INCLUDE_BOMB, "the compiler exceeded its memory limit of 256 MiB", 30_000);
});

test.serial("an endless compile stops at the CPU time limit", async (t) => {
  const s = await store({ cpuSeconds: 2 });
  await failsFast(t, s, CPU_BOMB, "the compiler exceeded its CPU time limit of 2 s", 20_000);
});

test.serial("the wall-clock limit kills every process of the build", async (t) => {
  const s = await store({ cpuSeconds: 600, wallMs: 2500 });
  const before = new Set((await descendants()).keys());
  const pending = s.images.build("c", `${CPU_BOMB}/* wall */\n`);
  // Wait for the assembler to be running, so the check below is about processes that existed.
  let during = new Map<number, string>();
  for (let i = 0; i < 200 && ![...during.values()].includes("as"); i++) {
    await new Promise((r) => setTimeout(r, 10));
    during = new Map([...(await descendants())].filter(([pid]) => !before.has(pid)));
  }
  t.true([...during.values()].includes("as"), `the assembler never ran: ${[...during.values()].join(", ")}`);
  const built = await pending;
  t.false(built.ok);
  if (!built.ok) t.is(built.error, "the compiler exceeded its wall-clock limit of 2.5 s");
  const alive = await descendants();
  t.deepEqual([...during].filter(([pid]) => alive.has(pid)), [], "compiler processes outlived the build");
  t.deepEqual(await leftovers(s.dataDir), []);
});

test.serial("a 600 MiB initialised array stops at the output size limit", async (t) => {
  const s = await store();
  await failsFast(t, s, `#include <vespid.h>
char big[600 << 20] = {1};
const char *vespid_main(const char *p) { return big[(unsigned char)p[0]] ? p : "{}"; }
`, "the build exceeded its output size limit of 64 MiB (for any file it writes, the image included)", 20_000);
});

test.serial("assembler output floods stop at the output size or memory limit, whichever they meet first", async (t) => {
  const s = await store();
  // `.fill` is written as it goes: the object file meets RLIMIT_FSIZE.
  await failsFast(t, s, `${MAIN}__asm__(".section .data\\n.fill 0x40000000, 1, 1\\n.text\\n");\n`,
    "the build exceeded its output size limit of 64 MiB (for any file it writes, the image included)", 20_000);
  // A host file `.incbin`'d 100000 times (12 GB) is held by the assembler before it writes anything.
  await failsFast(t, s, `${MAIN}__asm__(".section .data\\n.rept 100000\\n.incbin \\"/usr/bin/bash\\"\\n.endr\\n.text\\n");\n`,
    `the compiler exceeded its memory limit of ${DEFAULT_BUILD_LIMITS.memoryMb} MiB`, 20_000);
});

test.serial("static data beyond what the engine loads is refused before it is stored", async (t) => {
  const s = await store();
  await failsFast(t, s, `#include <vespid.h>
char big[100 << 20];
const char *vespid_main(const char *p) { big[(unsigned char)p[0]] = 1; return p; }
`, /^the compiled program's code and static data \(zero-initialised arrays included\) need 100\.\d MiB from its load address 0x200000: the engine loads images of at most 64 MiB, so at most 62 MiB of them/, 20_000);
});

// The check must agree with the engine: just under its bound builds and runs on every tier here.
for (const isolation of ISOLATIONS) {
  const available = isolationAvailable(isolation);
  (available.ok ? test.serial : test.skip)(`${isolation} › static data just under the engine's bound builds and runs${available.ok ? "" : ` — skipped: ${available.why}`}`, async (t) => {
    const s = await store();
    const built = await s.images.build("c", `#include <vespid.h>
char big[61 << 20];
const char *vespid_main(const char *p) { big[sizeof big - 1] = 1; return big[sizeof big - 1] ? p : "{}"; }
/* ${isolation} */
`);
    if (!built.ok) return t.fail(built.error);
    const o = await openNativeEngine({ isolation }).run({ image: built.image, init: new Uint8Array(), params: "{\"a\":1}", memoryMb: 128, timeoutMs: 10_000 });
    t.is(o.status, "ok", o.error);
    t.is(o.result, "{\"a\":1}");
  });
}

test.serial("#include and .incbin of devices and /proc find nothing, at once", async (t) => {
  const s = await store();
  for (const file of ["/dev/zero", "/dev/stdin", "/dev/urandom", "/dev/tty", "/proc/self/fd/0", "/proc/self/mem", "/proc/kmsg"]) {
    await failsFast(t, s, `#include "${file}"\n${MAIN}`, new RegExp(`^action\\.c:1:10: fatal error: ${file}: No such file or directory`), 10_000);
    await failsFast(t, s, `${MAIN}__asm__(".section .data\\n.incbin \\"${file}\\"\\n.text\\n");\n`, new RegExp(`Error: file not found: ${file}$`, "m"), 10_000);
  }
});

test.serial("the code's own text cannot pass for a limit", async (t) => {
  const s = await store();
  for (const text of ["virtual memory exhausted", "out of memory allocating 5 bytes", "gcc: fatal error: CPU time limit exceeded signal terminated program cc1"]) {
    const built = await s.images.build("c", `#error ${text}\n`);
    t.false(built.ok);
    if (!built.ok) t.regex(built.error, /^action\.c:1:2: error: #error /);
  }
});

/** Resolves when `p` settles, or with "pending" after `ms`. */
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<"pending">((r) => setTimeout(() => r("pending"), ms))]);

test.serial("builds beyond the concurrent bound wait their turn; beyond the queue they are refused as busy", async (t) => {
  const s = await store({ concurrent: 1, queued: 1, cpuSeconds: 600, wallMs: 3000, queueWaitMs: 60_000 });
  const first = s.images.build("c", `${CPU_BOMB}/* 1 */\n`);
  await new Promise((r) => setTimeout(r, 200));
  const second = s.images.build("c", MAIN); // a normal action, behind the bomb
  await new Promise((r) => setTimeout(r, 200));
  const third = await within(s.images.build("c", `${MAIN}/* 3 */\n`), 1000);
  t.not(third, "pending", "the refusal is immediate");
  t.like(third as BuildResult, {
    ok: false, fault: "busy",
    error: "too many C builds on this runner: 1 running and 1 waiting (at most 1 at once and 1 waiting, for at most 60000 ms); try again shortly",
  });
  t.is(await within(second, 500), "pending", "the second waits for the first");
  t.like(await first, { ok: false, error: "the compiler exceeded its wall-clock limit of 3 s" });
  const built = await second;
  t.true(built.ok, built.ok ? "" : built.error);
  // Every turn was given back.
  t.true((await s.images.build("c", `${MAIN}/* after */\n`)).ok);
});

test.serial("a build that waits longer than the queue bound is refused as busy", async (t) => {
  const s = await store({ concurrent: 1, queued: 4, cpuSeconds: 600, wallMs: 3000, queueWaitMs: 500 });
  const first = s.images.build("c", `${CPU_BOMB}/* q */\n`);
  await new Promise((r) => setTimeout(r, 100));
  t.like(await s.images.build("c", MAIN), {
    ok: false, fault: "busy",
    error: "too many C builds on this runner: this one waited 500 ms without a turn (at most 1 at once and 4 waiting, for at most 500 ms); try again shortly",
  });
  await first;
  t.true((await s.images.build("c", MAIN)).ok);
});

test.serial("through NATS, a busy runner is the gateway's 503 with Retry-After and a limit is the code's error", async (t) => {
  const dataDir = await mkdtemp(join(root, "nats-"));
  const nats = await startLocalNats({ dataDir: join(dataDir, "nats"), natsServer: await findNatsServer(loadConfig().dataDir) });
  t.teardown(() => nats.stop());
  const nc = await connectNats(nats.url, "build-limits");
  t.teardown(() => nc.close());
  const images = createImageStore({ dataDir, logger, buildLimits: { concurrent: 1, queued: 0, memoryMb: 128, cpuSeconds: 600, wallMs: 8000 } });
  const service = serveBuilds(nc, images, logger, { isolation: "process", runnerId: "r-test" });
  t.teardown(() => service.close());
  const build = createBuilder(nc);

  t.deepEqual(await build({ kind: "c", code: MACRO_BOMB }), { ok: false, fault: "code", error: "the compiler exceeded its memory limit of 128 MiB" });
  const bomb = build({ kind: "c", code: `${CPU_BOMB}/* nats */\n` });
  await new Promise((r) => setTimeout(r, 300));
  const refused = await build({ kind: "c", code: MAIN }).then(() => undefined, (err: unknown) => err);
  t.true(refused instanceof ApiError, String(refused));
  const e = refused as ApiError;
  t.is(e.status, 503);
  t.is(e.message, "the action could not be checked: runner r-test (isolation process): too many C builds on this runner: "
    + "1 running and 0 waiting (at most 1 at once and 0 waiting, for at most 45000 ms); try again shortly");
  t.truthy(e.headers?.["Retry-After"]);
  t.like(await bomb, { ok: false, fault: "code", error: "the compiler exceeded its wall-clock limit of 8 s" });
});

// Stack clash: an 8 MiB alloca is below the 2 MiB stack guard; with -fstack-clash-protection the
// compiler probes every page on the way down, so the guard is met and the call ends as a stack
// overflow instead of writing wherever the far end lands.
for (const isolation of ISOLATIONS) {
  const available = isolationAvailable(isolation);
  (available.ok ? test.serial : test.skip)(`${isolation} › an alloca larger than the stack guard meets the guard${available.ok ? "" : ` — skipped: ${available.why}`}`, async (t) => {
    const s = await store();
    const built = await s.images.build("c", `#include <vespid.h>
#include <alloca.h>
const char *vespid_main(const char *p) {
  volatile char *far = alloca((8 << 20) + (p[0] == '{' ? 0 : 1));
  far[0] = 1;
  return p;
}
/* ${isolation} */
`);
    if (!built.ok) return t.fail(built.error);
    const o = await openNativeEngine({ isolation }).run({ image: built.image, init: new Uint8Array(), params: "{}", memoryMb: 64, timeoutMs: 10_000 });
    t.is(o.status, "crash", `${o.status}: ${o.error} ${o.result ?? ""}`);
    t.regex(o.error ?? "", /stack overflow/);
  });
}

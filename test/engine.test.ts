// The virtine engine itself, through the same binding the runner uses: snapshots and the isolation
// between calls that start from one, entropy, limits, and hostile guests. Real KVM, real compilers.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { openNativeEngine } from "../runner/engine-native.ts";
import type { EngineOutcome, EngineRequest } from "../runner/engine.ts";
import { createImageStore } from "../runner/image-store.ts";
import type { ImageStore } from "../runner/images.ts";

const engine = openNativeEngine();
let dir: string;
let images: ImageStore;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "vespid-engine-"));
  images = createImageStore({ dataDir: dir, logger: pino({ level: "silent" }) });
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Builds `code` and returns a function running it from a snapshot (or fresh with snapshot: false). */
async function action(kind: "c" | "nodejs", code: string, limits: Partial<Pick<EngineRequest, "memoryMb" | "timeoutMs">> = {}) {
  const built = await images.build(kind, code);
  if (!built.ok) throw new Error(built.error);
  const init = kind === "nodejs" ? Buffer.from(code) : new Uint8Array();
  return (params: unknown, opts: { snapshot?: boolean } = {}): Promise<EngineOutcome> =>
    engine.run({
      image: built.image, init, params: JSON.stringify(params),
      memoryMb: limits.memoryMb ?? 64, timeoutMs: limits.timeoutMs ?? 5000,
      ...(opts.snapshot === false ? {} : { snapshotKey: `${built.codeHash}` }),
    });
}
const json = (o: EngineOutcome) => {
  if (o.status !== "ok") throw new Error(`${o.status}: ${o.error}`);
  return JSON.parse(o.result!);
};

// Phase "write" leaves secrets in a static, the heap, the stack and registers (general purpose and
// SSE); phase "read" looks at the same places before writing anything. From a snapshot, "read"
// must see what the snapshot had, never what the previous call left.
const C_LEAKY = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vespid.h>

static char secret_static[32];
static int counter;

#define MARK 0x5ec7e75ec7e7ull
static __attribute__((noinline)) void stack_write(void) { volatile unsigned long long buf[64]; for (int i = 0; i < 64; i++) buf[i] = MARK; }
static __attribute__((noinline)) int stack_read(void) { volatile unsigned long long buf[64]; int n = 0; for (int i = 0; i < 64; i++) n += buf[i] == MARK; return n; }

const char *vespid_main(const char *params) {
    static char out[512];
    unsigned long r15, xmm_lo;
    unsigned int mxcsr;
    unsigned short fpu_cw;
    __asm__ volatile("mov %%r15, %0" : "=r"(r15));
    __asm__ volatile("movq %%xmm7, %0" : "=r"(xmm_lo));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpu_cw));
    char *heap = malloc(64);
    int heap_secret = memcmp(heap, "HEAPSECRET", 10) == 0;
    int static_secret = strcmp(secret_static, "STATICSECRET") == 0;
    int stack_secret = stack_read();
    counter++;
    snprintf(out, sizeof out, "{\\"counter\\": %d, \\"heap\\": %d, \\"static\\": %d, \\"stack\\": %d, \\"r15\\": %lu, \\"xmm7\\": %lu, \\"mxcsr\\": %u, \\"fpu_cw\\": %u}",
             counter, heap_secret, static_secret, stack_secret, r15, xmm_lo, mxcsr, fpu_cw);
    if (strstr(params, "write")) {
        strcpy(heap, "HEAPSECRET");
        strcpy(secret_static, "STATICSECRET");
        stack_write();
        size_t n = strlen(out);
        /* Left in the registers at the end of the call: the result path never returns here, so
         * nothing needs them intact (hence no clobbers declared). */
        unsigned long marker = 0x5ec7e75ec7e7ull;
        unsigned int round_down = (mxcsr & ~0x6000u) | 0x2000u; /* SSE rounding toward -inf */
        unsigned short x87_round_up = (unsigned short)((fpu_cw & ~0x0c00u) | 0x0800u);
        __asm__ volatile("ldmxcsr %0; fldcw %1" :: "m"(round_down), "m"(x87_round_up));
        __asm__ volatile("mov %0, %%r15; movq %0, %%xmm7" :: "r"(marker));
        vespid_return(out, n);
    }
    return out;
}`;

test("C: statics, heap, stack and registers of one call are gone in the next, from a snapshot", async (t) => {
  const run = await action("c", C_LEAKY);
  const first = json(await run("write"));
  t.is(first.counter, 1);
  for (let i = 0; i < 5; i++) {
    const r = json(await run(i % 2 ? "write" : "read"));
    t.is(r.counter, 1, "statics start from their initial value");
    t.is(r.heap, 0, "no heap secret");
    t.is(r.static, 0, "no static secret");
    t.is(r.stack, 0, "no stack secret");
    t.not(r.r15, 0x5ec7e75ec7e7, "no register left over");
    t.not(r.xmm7, 0x5ec7e75ec7e7, "no SSE register left over");
    t.is(r.r15, first.r15, "registers as in the snapshot");
    t.is(r.xmm7, first.xmm7, "SSE state as in the snapshot");
    t.is(r.mxcsr, first.mxcsr, "SSE control (rounding mode) as in the snapshot");
    t.is(r.fpu_cw, first.fpu_cw, "x87 control word as in the snapshot");
  }
});

test("JS: globals, closures and the heap start fresh on every call from a snapshot", async (t) => {
  const run = await action("nodejs", `let calls = 0; const cache = [];
function main(p) { calls++; globalThis.leak = (globalThis.leak || 0) + 1; cache.push(p.v);
  return { calls, leak: globalThis.leak, cache, proto: typeof Object.prototype.evil }; }
Object.prototype.evil = undefined; delete Object.prototype.evil;`);
  for (let i = 0; i < 4; i++) {
    const r = json(await run({ v: i }));
    t.deepEqual(r, { calls: 1, leak: 1, cache: [i], proto: "undefined" });
  }
  const polluter = await action("nodejs", "function main() { Object.prototype.evil = 1; Array.prototype.push = null; return {}; }");
  await run({ v: 0 });
  json(await polluter({}));
  const after = json(await run({ v: 9 }));
  t.deepEqual(after, { calls: 1, leak: 1, cache: [9], proto: "undefined" });
});

test("entropy: Math.random and getrandom differ on every call from the same snapshot", async (t) => {
  const js = await action("nodejs", "function main() { return { r: Math.random() }; }");
  const c = await action("c", `#include <stdio.h>
#include <sys/random.h>
#include <vespid.h>
const char *vespid_main(const char *p) {
    static char out[64]; unsigned long long v = 0;
    getrandom(&v, sizeof v, 0);
    snprintf(out, sizeof out, "{\\"r\\": \\"%llx\\"}", v);
    return out;
}`);
  const js_values = new Set<number>(), c_values = new Set<string>();
  for (let i = 0; i < 10; i++) {
    js_values.add(json(await js({})).r);
    c_values.add(json(await c({})).r);
  }
  t.is(js_values.size, 10);
  t.is(c_values.size, 10);
});

test.serial("cold starts, hits and misses: the first call boots and snapshots, the next ones reuse", async (t) => {
  const run = await action("nodejs", "function main(p) { return p; }");
  const first = await run({ a: 1 });
  t.true(first.coldStart);
  const before = engine.stats();
  const again = await run({ a: 2 });
  t.false(again.coldStart);
  t.deepEqual(json(again), { a: 2 });
  const after = engine.stats();
  t.true(after.hits + after.misses > before.hits + before.misses);
  t.is(after.coldStarts, before.coldStarts);
  t.true(after.snapshots >= 1);
  const fresh = await run({ a: 3 }, { snapshot: false });
  t.false(fresh.coldStart);
  t.deepEqual(json(fresh), { a: 3 });
});

test("a call that crashes, times out or runs out of memory does not spoil the next one", async (t) => {
  const run = await action("c", `#include <string.h>
#include <stdlib.h>
#include <vespid.h>
const char *vespid_main(const char *p) {
    if (strstr(p, "crash")) { volatile int *x = 0; *x = 1; }
    if (strstr(p, "loop")) for (;;) __asm__ volatile("");
    if (strstr(p, "oom")) for (;;) { char *m = malloc(1 << 20); if (!m) abort(); memset(m, 1, 1 << 20); }
    return "{\\"ok\\": true}";
}`, { timeoutMs: 300, memoryMb: 32 });
  t.deepEqual(json(await run("ok")), { ok: true });
  for (const bad of ["crash", "loop", "oom"]) {
    const o = await run(bad);
    t.not(o.status, "ok", bad);
    t.deepEqual(json(await run("ok")), { ok: true }, `after ${bad}`);
  }
  const loop = await run("loop");
  t.is(loop.status, "timeout");
  const oom = await run("oom");
  t.is(oom.status, "oom");
  t.regex(oom.error!, /out of memory/);
});

// The timer itself fires within microseconds (bench/engine.ts prints the overshoot); the bound here
// leaves room for a CI machine whose two cores are busy with other test files.
test("the deadline stops a spinning guest promptly", async (t) => {
  const run = await action("nodejs", "function main() { for (;;) {} }", { timeoutMs: 200 });
  const o = await run({});
  t.is(o.status, "timeout");
  t.true(o.micros >= 200_000 && o.micros < 260_000, `stopped after ${o.micros} µs`);
});

test("results over 1 MiB are refused; logs beyond the limit are cut and flagged", async (t) => {
  const big = await action("nodejs", "function main() { return { s: 'x'.repeat(1100000) }; }");
  const o = await big({});
  t.is(o.status, "dev_error");
  t.regex(o.error!, /exceeded the allowed length/);
  const chatty = await action("nodejs", "function main() { for (let i = 0; i < 20000; i++) console.log('line ' + i + ' ' + 'y'.repeat(600)); return {}; }", { timeoutMs: 20000 });
  const c = await chatty({});
  t.is(c.status, "ok");
  t.true(c.logsTruncated);
  t.true(c.logs.length > 100);
});

test("the C action API reads parameters and builds results as JSON", async (t) => {
  const run = await action("c", String.raw`#include <string.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    char name[16], small[4];
    double n = 0;
    int flag = -1;
    size_t raw_len = 0;
    struct vespid_json *out = vespid_json_new();
    vespid_json_int(out, "name_len", vespid_get_string(params, "name", name, sizeof name));
    vespid_json_string(out, "name", name);
    vespid_json_int(out, "small", vespid_get_string(params, "name", small, sizeof small));
    vespid_json_int(out, "missing", vespid_get_string(params, "nope", name, sizeof name));
    vespid_json_int(out, "wrong_type", vespid_get_string(params, "n", name, sizeof name));
    vespid_json_int(out, "n_ok", vespid_get_number(params, "n", &n));
    vespid_json_number(out, "n", n);
    vespid_json_int(out, "flag_ok", vespid_get_bool(params, "flag", &flag));
    vespid_json_bool(out, "flag", flag);
    const char *raw = vespid_get_raw(params, "nested", &raw_len);
    char copy[128] = "";
    if (raw && raw_len < sizeof copy) memcpy(copy, raw, raw_len);
    vespid_json_raw(out, "nested", copy);
    vespid_json_string(out, "quote\"d", "line\nbreak \"q\" \\ \x01");
    vespid_json_null(out, "nothing");
    vespid_log("built %d fields", 11);
    return vespid_json_finish(out);
}`);
  const o = await run({ nested: { a: [1, "}", { b: "\"" }] }, n: -12.5e1, flag: true, name: "Zo\u00e9 \ud83d\udc1d" });
  t.is(o.status, "ok", o.error);
  const r = JSON.parse(o.result!);
  t.deepEqual(r, {
    name_len: Buffer.byteLength("Zo\u00e9 \ud83d\udc1d"), name: "Zo\u00e9 \ud83d\udc1d", small: -2, missing: -1, wrong_type: -1,
    n_ok: 0, n: -125, flag_ok: 0, flag: true, nested: { a: [1, "}", { b: "\"" }] },
    'quote"d': 'line\nbreak "q" \\ \u0001', nothing: null,
  });
  t.is(o.logs.map((l) => l.text).join("|"), "built 11 fields");
});

test.serial("snapshots beyond the pool's memory budget are evicted, least recently used first", async (t) => {
  const small = openNativeEngine({ poolBudget: 8 << 20 });
  try {
    const before = small.stats();
    const runs = [];
    for (let i = 0; i < 12; i++) runs.push(await action("nodejs", `function main(p) { return { i: ${i}, p }; }`));
    for (const [i, run] of runs.entries()) t.deepEqual(json(await run({ i })), { i, p: { i } });
    const after = small.stats();
    t.true(after.evictions > before.evictions, "something was evicted");
    t.true(after.bytes <= 8 << 20, `${after.bytes} bytes kept`);
    const again = await runs[0]!({ again: true });
    t.true(again.coldStart, "the oldest snapshot was evicted and is taken again");
    t.deepEqual(json(again), { i: 0, p: { again: true } });
  } finally {
    openNativeEngine({ poolBudget: 0 }); // back to the default for the other tests
  }
});

test("a call that reloads a segment register does not break the next one", async (t) => {
  // Loading %fs with a selector resets its base, which musl's thread pointer lives in: the next
  // call's first TLS access (errno) would fault if the segment state were not put back.
  const run = await action("c", String.raw`#include <errno.h>
#include <string.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    errno = 7;
    if (strstr(params, "clobber")) {
        unsigned short zero = 0;
        __asm__ volatile("mov %0, %%fs" :: "r"(zero));
        vespid_return("{\"clobbered\": true}", 19);
    }
    return "{\"ok\": true}";
}`);
  t.deepEqual(json(await run("first")), { ok: true });
  t.deepEqual(json(await run("clobber")), { clobbered: true });
  t.deepEqual(json(await run("after")), { ok: true });
});

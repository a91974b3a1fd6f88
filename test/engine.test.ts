// The engine itself, through the same binding the runner uses, on every isolation tier (see
// engine-tiers.ts): snapshots and the isolation between calls that start from one, entropy, limits
// and the pool. Hostile guests are in engine-hostile.test.ts. Real engines, real compilers.
import { openNativeEngine } from "../runner/engine-native.ts";
import { engineTiers, json, someTierRuns } from "./engine-tiers.ts";

const tiers = engineTiers();
someTierRuns(tiers);

// Phase "write" leaves secrets in a static, the heap, an mmap'd region, the stack and registers
// (general purpose, SSE, the x87 stack and both control words); phase "read" looks at the same
// places before writing anything. From a snapshot, "read" must see what the snapshot had, never
// what the previous call left.
const C_LEAKY = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <vespid.h>

static char secret_static[32];
static int counter, constructor_runs;
__attribute__((constructor)) static void init(void) { constructor_runs++; }

#define MARK 0x5ec7e75ec7e7ull
static __attribute__((noinline)) void stack_write(void) { volatile unsigned long long buf[64]; for (int i = 0; i < 64; i++) buf[i] = MARK; }
static __attribute__((noinline)) int stack_read(void) { volatile unsigned long long buf[64]; int n = 0; for (int i = 0; i < 64; i++) n += buf[i] == MARK; return n; }

const char *vespid_main(const char *params) {
    static char out[512];
    unsigned long r15, xmm_lo;
    unsigned int mxcsr;
    unsigned short fpu_cw, fpu_sw;
    __asm__ volatile("mov %%r15, %0" : "=r"(r15));
    __asm__ volatile("movq %%xmm7, %0" : "=r"(xmm_lo));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpu_cw));
    __asm__ volatile("fnstsw %0" : "=m"(fpu_sw)); /* bits 11-13: the x87 stack top */
    char *heap = malloc(64);
    int heap_secret = memcmp(heap, "HEAPSECRET", 10) == 0;
    int static_secret = strcmp(secret_static, "STATICSECRET") == 0;
    int stack_secret = stack_read();
    /* A fresh anonymous mapping reads as zero, whatever an earlier call left in its own. */
    unsigned char *map = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int map_nonzero = 0;
    if (map != MAP_FAILED) for (int i = 0; i < 1 << 20; i += 512) map_nonzero += map[i] != 0;
    counter++;
    snprintf(out, sizeof out, "{\\"counter\\": %d, \\"constructor_runs\\": %d, \\"heap\\": %d, \\"static\\": %d, \\"stack\\": %d, \\"mapped\\": %d, \\"map_nonzero\\": %d, \\"r15\\": %lu, \\"xmm7\\": %lu, \\"mxcsr\\": %u, \\"fpu_cw\\": %u, \\"fpu_top\\": %u}",
             counter, constructor_runs, heap_secret, static_secret, stack_secret, map != MAP_FAILED, map_nonzero, r15, xmm_lo, mxcsr, fpu_cw, (fpu_sw >> 11) & 7u);
    if (strstr(params, "write")) {
        strcpy(heap, "HEAPSECRET");
        strcpy(secret_static, "STATICSECRET");
        if (map != MAP_FAILED) memset(map, 0x5e, 1 << 20); /* and not unmapped */
        stack_write();
        size_t n = strlen(out);
        /* Left in the registers at the end of the call: the result path never returns here, so
         * nothing needs them intact (hence no clobbers declared). */
        unsigned long marker = 0x5ec7e75ec7e7ull;
        unsigned int round_down = (mxcsr & ~0x6000u) | 0x2000u; /* SSE rounding toward -inf */
        unsigned short x87_round_up = (unsigned short)((fpu_cw & ~0x0c00u) | 0x0800u);
        __asm__ volatile("ldmxcsr %0; fldcw %1" :: "m"(round_down), "m"(x87_round_up));
        __asm__ volatile("fld1; fldpi; fldl2e"); /* three values left on the x87 stack */
        __asm__ volatile("mov %0, %%r15; movq %0, %%xmm7" :: "r"(marker));
        vespid_return(out, n);
    }
    return out;
}`;

for (const tier of tiers) {
  tier.test("C: statics, heap, mmap, stack and registers of one call are gone in the next, from a snapshot", async (t) => {
    const run = await tier.action("c", C_LEAKY);
    const first = json(await run("write"));
    t.is(first.counter, 1);
    t.is(first.constructor_runs, 1);
    t.is(first.mapped, 1);
    t.is(first.map_nonzero, 0);
    for (let i = 0; i < 5; i++) {
      const r = json(await run(i % 2 ? "write" : "read"));
      t.is(r.counter, 1, "statics start from their initial value");
      t.is(r.constructor_runs, 1, "constructors ran once, before the snapshot");
      t.is(r.heap, 0, "no heap secret");
      t.is(r.static, 0, "no static secret");
      t.is(r.stack, 0, "no stack secret");
      t.is(r.map_nonzero, 0, "a new mapping reads as zero");
      t.not(r.r15, 0x5ec7e75ec7e7, "no register left over");
      t.not(r.xmm7, 0x5ec7e75ec7e7, "no SSE register left over");
      t.is(r.r15, first.r15, "registers as in the snapshot");
      t.is(r.xmm7, first.xmm7, "SSE state as in the snapshot");
      t.is(r.mxcsr, first.mxcsr, "SSE control (rounding mode) as in the snapshot");
      t.is(r.fpu_cw, first.fpu_cw, "x87 control word as in the snapshot");
      t.is(r.fpu_top, first.fpu_top, "x87 stack as in the snapshot");
    }
  });

  tier.test("JS: globals, closures and the heap start fresh on every call from a snapshot", async (t) => {
    const run = await tier.action("nodejs", `let calls = 0; const cache = [];
function main(p) { calls++; globalThis.leak = (globalThis.leak || 0) + 1; cache.push(p.v);
  return { calls, leak: globalThis.leak, cache, proto: typeof Object.prototype.evil }; }
Object.prototype.evil = undefined; delete Object.prototype.evil;`);
    for (let i = 0; i < 4; i++) {
      const r = json(await run({ v: i }));
      t.deepEqual(r, { calls: 1, leak: 1, cache: [i], proto: "undefined" });
    }
    const polluter = await tier.action("nodejs", "function main() { Object.prototype.evil = 1; Array.prototype.push = null; return {}; }");
    await run({ v: 0 });
    json(await polluter({}));
    const after = json(await run({ v: 9 }));
    t.deepEqual(after, { calls: 1, leak: 1, cache: [9], proto: "undefined" });
  });

  tier.test("JS: top-level code runs once, before the snapshot; every call starts from its state", async (t) => {
    const run = await tier.action("nodejs", `console.log('loading'); const loadedAt = Date.now(); let n = 0;
function main() { n++; return { loadedAt, n }; }`);
    const first = await run({});
    t.true(first.coldStart);
    const seen = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const o = await run({});
      t.false(o.coldStart);
      t.deepEqual(o.logs.map((l) => l.text), [], "the top-level code did not run again");
      const r = json(o);
      t.is(r.n, 1);
      seen.add(r.loadedAt);
    }
    t.is(seen.size, 1, "every call sees the state the snapshot took");
    t.is([...seen][0], json(first).loadedAt);
  });

  tier.test("entropy: Math.random, getrandom and RDRAND differ on every call from the same snapshot", async (t) => {
    const js = await tier.action("nodejs", "function main() { return { r: Math.random(), s: Math.random() }; }");
    const c = await tier.action("c", `#include <stdio.h>
#include <sys/random.h>
#include <vespid.h>
const char *vespid_main(const char *p) {
    static char out[128]; unsigned long long v[4] = {0}, hw = 0; unsigned char ok = 0;
    long n = getrandom(v, sizeof v, 0);
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if ((c >> 30) & 1) for (int i = 0; i < 10 && !ok; i++) __asm__ volatile("rdrand %0; setc %1" : "=r"(hw), "=qm"(ok));
    snprintf(out, sizeof out, "{\\"n\\": %ld, \\"r\\": \\"%llx%llx%llx%llx\\", \\"hw\\": \\"%llx\\", \\"hw_ok\\": %d}", n, v[0], v[1], v[2], v[3], hw, ok);
    return out;
}`);
    const jsValues = new Set<number>(), cValues = new Set<string>(), hwValues = new Set<string>();
    let hwCalls = 0;
    for (let i = 0; i < 10; i++) {
      const r = json(await js({}));
      t.not(r.r, r.s);
      jsValues.add(r.r).add(r.s);
      const c_ = json(await c({}));
      t.is(c_.n, 32, "getrandom filled the whole buffer");
      cValues.add(c_.r);
      if (c_.hw_ok) hwCalls++, hwValues.add(c_.hw);
    }
    t.is(jsValues.size, 20);
    t.is(cValues.size, 10);
    t.is(hwValues.size, hwCalls, "RDRAND, where the CPU has it");
  });

  tier.serial("cold starts, hits and misses: the first call boots and snapshots, the next ones reuse", async (t) => {
    const engine = tier.engine();
    const run = await tier.action("nodejs", "function main(p) { return p; }");
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

  // The timer itself fires within microseconds (bench/engine.ts prints the overshoot); the bound
  // here leaves room for a CI machine whose two cores are busy with other test files.
  tier.test("the deadline stops a spinning guest promptly", async (t) => {
    const run = await tier.action("nodejs", "function main() { for (;;) {} }", { timeoutMs: 200 });
    const o = await run({});
    t.is(o.status, "timeout");
    t.regex(o.error!, /exceeded its time limit of 200 milliseconds/);
    t.true(o.micros >= 200_000 && o.micros < 260_000, `stopped after ${o.micros} µs`);
  });

  tier.test("results over 1 MiB are refused; logs beyond the limit are cut and flagged", async (t) => {
    const big = await tier.action("nodejs", "function main() { return { s: 'x'.repeat(1100000) }; }");
    const o = await big({});
    t.is(o.status, "dev_error");
    t.regex(o.error!, /exceeded the allowed length/);
    const chatty = await tier.action("nodejs", "function main() { for (let i = 0; i < 20000; i++) console.log('line ' + i + ' ' + 'y'.repeat(600)); return {}; }", { timeoutMs: 20000 });
    const c = await chatty({});
    t.is(c.status, "ok");
    t.true(c.logsTruncated);
    t.true(c.logs.length > 100);
    t.true(c.logs.reduce((n, l) => n + l.text.length, 0) <= 10_000_000, "no more than the limit is kept");
    const small = await tier.action("nodejs", "function main() { for (let i = 0; i < 100; i++) console.log('z'.repeat(99)); return {}; }", { logLimit: 1000 });
    const s = await small({});
    t.is(s.status, "ok");
    t.true(s.logsTruncated);
    t.true(s.logs.reduce((n, l) => n + l.text.length + 1, 0) <= 1000, "the call's own log limit");
  });

  tier.test("the C action API reads parameters and builds results as JSON", async (t) => {
    const run = await tier.action("c", String.raw`#include <string.h>
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

  // The pool and its budget are process-wide (one native library): serial, and put back after.
  tier.serial("snapshots beyond the pool's memory budget are evicted, least recently used first", async (t) => {
    const small = openNativeEngine({ isolation: tier.isolation, poolBudget: 8 << 20 });
    try {
      const before = small.stats();
      const runs = [];
      for (let i = 0; i < 12; i++) runs.push(await tier.action("nodejs", `function main(p) { return { i: ${i}, tier: "${tier.isolation}", p }; }`));
      for (const [i, run] of runs.entries()) t.deepEqual(json(await run({ i })), { i, tier: tier.isolation, p: { i } });
      const after = small.stats();
      t.true(after.evictions > before.evictions, "something was evicted");
      t.true(after.bytes <= 8 << 20, `${after.bytes} bytes kept`);
      const again = await runs[0]!({ again: true });
      t.true(again.coldStart, "the oldest snapshot was evicted and is taken again");
      t.deepEqual(json(again), { i: 0, tier: tier.isolation, p: { again: true } });
    } finally {
      openNativeEngine({ isolation: tier.isolation, poolBudget: 0 }); // back to the default for the other tests
    }
  });
}

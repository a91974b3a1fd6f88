// The engine's host code under AddressSanitizer, LeakSanitizer and UBSan: native/build/asan/vsp-run
// is the whole engine compiled with the sanitizers; each scenario drives it through a good or a
// hostile guest and fails on any sanitizer report or unexpected outcome.
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { createImageStore, JS_IMAGE } from "../runner/image-store.ts";

const ASAN_RUN = join(import.meta.dirname, "../native/build/asan/vsp-run");
let dir: string;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "vespid-asan-"));
});
test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run { code: number | null; stdout: string; stderr: string }
function vspRun(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(ASAN_RUN, args, { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function js(name: string, code: string): Promise<string> {
  const file = join(dir, `${name}.js`);
  await writeFile(file, code);
  return file;
}

async function cImage(code: string): Promise<string> {
  const built = await createImageStore({ dataDir: dir, logger: pino({ level: "silent" }) }).build("c", code);
  if (!built.ok) throw new Error(built.error);
  return built.image;
}

const statuses = (r: Run) => [...r.stdout.matchAll(/^(?:call \d+: )?status=(\d+)/gm)].map((m) => Number(m[1]));

function clean(t: { is(a: unknown, b: unknown, m?: string): void; notRegex(s: string, r: RegExp, m?: string): void }, r: Run) {
  t.notRegex(r.stderr, /Sanitizer|runtime error/, r.stderr.slice(0, 2000));
  t.is(r.code, 0, r.stderr.slice(0, 2000));
}

test("JS from a snapshot, twenty calls: no sanitizer report", async (t) => {
  const r = await vspRun([JS_IMAGE, '{"n": 1}', await js("echo", "function main(p) { console.log(p); return p; }")], { VSP_KEY: "echo", VSP_REPEAT: "20" });
  clean(t, r);
  t.deepEqual(statuses(r), [...Array(20).fill(0), 0]);
});

test("JS that throws, runs out of memory, spins past its deadline, or answers too much", async (t) => {
  const cases: Array<[string, string, string[], number]> = [
    ["throws", "function main() { throw new Error('x'); }", [], 1],
    ["bomb", "function main() { const a = []; for (;;) a.push(new Array(1e5).fill(1)); }", ["32", "10000"], 4],
    ["spin", "function main() { for (;;) {} }", ["64", "200"], 2],
    ["huge", "function main() { return { s: 'x'.repeat(2 << 20) }; }", [], 1],
  ];
  for (const [name, code, limits, status] of cases) {
    const r = await vspRun([JS_IMAGE, "{}", await js(name, code), ...limits], { VSP_KEY: name, VSP_REPEAT: "2" });
    clean(t, r);
    t.deepEqual(statuses(r), [status, status, status], name);
  }
});

test("hostile C: NULL, a made-up doorbell, a read of the doorbell, a wild syscall storm", async (t) => {
  // The storm may well wreck the guest itself (getrandom over its own code, brk below its heap):
  // what matters is that the host stays clean and every call ends the same way.
  const cases: Array<[string, number[]]> = [
    ["volatile int *p = 0; *p = 1;", [3]],
    ["*(volatile char *)0x40000123 = 1;", [3]],
    ["(void)*(volatile char *)0x40000000;", [3]],
    [`for (long n = 0; n < 400; n++) if (n != 35 && n != 60 && n != 230 && n != 231) syscall(n, 0x200000, 1 << 30, 0x40000000, -1, 7, 0);`, [0, 3]],
  ];
  for (const [body, allowed] of cases) {
    const image = await cImage(`#define _GNU_SOURCE
#include <unistd.h>
#include <sys/syscall.h>
#include <vespid.h>
const char *vespid_main(const char *params) { ${body} return "{}"; }`);
    const r = await vspRun([image, "{}", "/dev/null"], { VSP_KEY: body, VSP_REPEAT: "2" });
    clean(t, r);
    const seen = statuses(r);
    t.is(seen.length, 3, body);
    t.true(seen.every((s) => s === seen[0] && allowed.includes(s)), `${body}: ${seen}`);
  }
});

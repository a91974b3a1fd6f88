// End to end over HTTP: gateway → JetStream → scheduler → runner → a real KVM virtine, for C and
// JavaScript actions, including the ways a function can fail and the ways a request can be wrong.
import test from "ava";
import { RUNNER_HEARTBEAT_SUBJECT, RunnerHeartbeat } from "../contracts/index.ts";
import { api, waitForActivation, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
});
test.after.always(async () => {
  await platform?.stop();
});

const put = (name: string, kind: string, code: string, extra: Record<string, unknown> = {}) =>
  platform.request("PUT", api(`actions/${name}`), { exec: { kind, code }, ...extra });
const invoke = (name: string, params: unknown = {}, query = "blocking=true") =>
  platform.request("POST", api(`actions/${name}?${query}`), params);

async function created(t: { is(a: unknown, b: unknown, m?: string): void }, name: string, kind: string, code: string, extra?: Record<string, unknown>) {
  const res = await put(name, kind, code, extra);
  t.is(res.status, 200, `PUT ${name}: ${JSON.stringify(res.body)}`);
}


const C_HELLO = `#include <stdio.h>
#include <vespid.h>

const char *vespid_main(const char *params) {
    static char out[4096];
    printf("C got %s\\n", params);
    snprintf(out, sizeof out, "{\\"echo\\": %s}", params);
    return out;
}
`;
const JS_HELLO = `function main(params) {
  console.log("JS got", params);
  console.error("to stderr");
  return { echo: params };
}`;

for (const [kind, code] of [["c", C_HELLO], ["nodejs", JS_HELLO]] as const) {
  test(`a ${kind} action: create, get, list, invoke blocking and not, fetch the activation, delete`, async (t) => {
    const name = `hello-${kind}`;
    const res = await put(name, kind, code);
    t.is(res.status, 200, JSON.stringify(res.body));
    t.like(res.body, { namespace: "guest", name, version: "0.0.1", exec: { kind, code } });

    const got = await platform.request("GET", api(`actions/${name}`));
    t.is(got.status, 200);
    t.is(got.body.exec.code, code);

    const list = await platform.request("GET", api("actions"));
    t.is(list.status, 200);
    t.true(list.body.some((a: { name: string }) => a.name === name));

    const blocking = await invoke(name, { who: "blocking" });
    t.is(blocking.status, 200, JSON.stringify(blocking.body));
    t.like(blocking.body, { name, namespace: "guest", response: { status: "success", success: true, result: { echo: { who: "blocking" } } } });
    t.regex(blocking.body.activationId, /^[0-9a-f]{32}$/);
    t.true(blocking.body.logs.some((l: string) => /^\d{4}-\d\d-\d\dT[\d:.]+Z stdout: (C|JS) got /.test(l)), blocking.body.logs.join("\n"));
    if (kind === "nodejs") t.true(blocking.body.logs.some((l: string) => l.endsWith("stderr: to stderr")));

    const resultOnly = await invoke(name, { who: "result" }, "blocking=true&result=true");
    t.is(resultOnly.status, 200);
    t.deepEqual(resultOnly.body, { echo: { who: "result" } });

    const queued = await invoke(name, { who: "async" }, "");
    t.is(queued.status, 202);
    t.regex(queued.body.activationId, /^[0-9a-f]{32}$/);
    const record = await waitForActivation(platform, queued.body.activationId);
    t.like(record, { activationId: queued.body.activationId, name, response: { status: "success", result: { echo: { who: "async" } } } });

    const deleted = await platform.request("DELETE", api(`actions/${name}`));
    t.is(deleted.status, 200);
    t.is((await platform.request("GET", api(`actions/${name}`))).status, 404);
    t.is((await invoke(name)).status, 404);
  });
}

test("a global counter starts from its initial value on every call, in C and in JS", async (t) => {
  await created(t, "counter-c", "c", `#include <stdio.h>
#include <vespid.h>
static int counter;
const char *vespid_main(const char *params) {
    static char out[64];
    counter++;
    snprintf(out, sizeof out, "{\\"counter\\": %d}", counter);
    return out;
}`);
  await created(t, "counter-js", "nodejs", `let counter = 0;
globalThis.seen = globalThis.seen || [];
function main() { counter++; globalThis.seen.push(1); return { counter, seen: globalThis.seen.length }; }`);
  for (let i = 0; i < 3; i++) {
    t.deepEqual((await invoke("counter-c", {}, "blocking=true&result=true")).body, { counter: 1 });
    t.deepEqual((await invoke("counter-js", {}, "blocking=true&result=true")).body, { counter: 1, seen: 1 });
  }
});

test("modern JavaScript: async main, exports.main, classes, destructuring, template literals", async (t) => {
  await created(t, "modern-js", "nodejs", `class Box { #v; constructor(v) { this.#v = v } get v() { return this.#v } }
exports.main = async ({ a = 1, ...rest }) => {
  const b = await Promise.resolve(new Box(a * 2));
  return { doubled: b.v, rest, text: \`a=\${a}\`, big: String(2n ** 64n) };
};`);
  const res = await invoke("modern-js", { a: 21, z: true }, "blocking=true&result=true");
  t.deepEqual(res.body, { doubled: 42, rest: { z: true }, text: "a=21", big: "18446744073709551616" });
});

test("a C action that dereferences NULL ends its activation with an error; the next call succeeds", async (t) => {
  await created(t, "null-c", "c", `#include <vespid.h>
const char *vespid_main(const char *params) { volatile int *p = 0; return *p ? "{}" : "{}"; }`);
  await created(t, "ok-c", "c", C_HELLO);
  const res = await invoke("null-c");
  t.is(res.status, 502);
  t.like(res.body.response, { status: "action developer error", success: false });
  t.regex(res.body.response.result.error, /segmentation fault reading address 0x0/);
  t.is((await invoke("ok-c", { after: "crash" })).status, 200);
});

test("a JS action that throws gives the message and stack; an application error is told apart", async (t) => {
  await created(t, "throws-js", "nodejs", `function main() {\n  throw new TypeError("boom");\n}`);
  await created(t, "app-error-js", "nodejs", `function main() { return { error: "no such user" }; }`);
  const thrown = await invoke("throws-js");
  t.is(thrown.status, 502);
  t.is(thrown.body.response.status, "action developer error");
  t.regex(thrown.body.response.result.error, /^TypeError: boom\n\s+at main \(action\.js/);
  const appError = await invoke("app-error-js");
  t.is(appError.status, 502);
  t.like(appError.body.response, { status: "application error", statusCode: 1, result: { error: "no such user" } });
  t.is((await invoke("modern-js-after-throw-missing")).status, 404);
});

test("functions that loop forever are stopped at their time limit; the runner keeps serving", async (t) => {
  await created(t, "loop-js", "nodejs", "function main() { for (;;) {} }", { limits: { timeout: 500 } });
  await created(t, "loop-c", "c", `#include <vespid.h>
const char *vespid_main(const char *p) { for (volatile int i = 0;; i++) ; }`, { limits: { timeout: 300 } });
  await created(t, "ok-js", "nodejs", JS_HELLO);
  for (const [name, ms] of [["loop-js", 500], ["loop-c", 300]] as const) {
    const res = await invoke(name);
    t.is(res.status, 502);
    t.is(res.body.response.status, "action developer error");
    t.is(res.body.response.result.error, `The action exceeded its time limits of ${ms} milliseconds.`);
    t.true(res.body.duration >= ms && res.body.duration < ms + 1000, `duration ${res.body.duration}`);
  }
  const ok = await invoke("ok-js", { after: "loop" });
  t.is(ok.status, 200);
  t.deepEqual(ok.body.response.result, { echo: { after: "loop" } });
});

test("a memory bomb ends with an out-of-memory error inside its own limit", async (t) => {
  await created(t, "bomb-js", "nodejs", "function main() { const a = []; for (;;) a.push(new Array(1e5).fill(7)); }", { limits: { memory: 32 } });
  const res = await invoke("bomb-js");
  t.is(res.status, 502);
  t.regex(res.body.response.result.error, /out of memory/);
});

test("hostile C: no files, no sockets, no host memory, no made-up hypercalls", async (t) => {
  await created(t, "hostile-c", "c", `#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vespid.h>
const char *vespid_main(const char *p) {
    static char out[256];
    int fd = open("/etc/passwd", O_RDONLY); int open_errno = errno;
    int s = socket(AF_INET, SOCK_STREAM, 0); int socket_errno = errno;
    int pid = fork(); int fork_errno = errno;
    snprintf(out, sizeof out, "{\\"open\\": [%d, %d], \\"socket\\": [%d, %d], \\"fork\\": [%d, %d]}",
             fd, open_errno, s, socket_errno, pid, fork_errno);
    return out;
}`);
  const res = await invoke("hostile-c", {}, "blocking=true&result=true");
  t.deepEqual(res.body, { open: [-1, 2 /* ENOENT */], socket: [-1, 38 /* ENOSYS */], fork: [-1, 38] });

  await created(t, "doorbell-c", "c", `#include <vespid.h>
const char *vespid_main(const char *p) { *(volatile char *)0x40000100 = 1; return "{}"; }`);
  const bell = await invoke("doorbell-c");
  t.is(bell.status, 502);
  t.regex(bell.body.response.result.error, /bad hypercall/);

  await created(t, "privileged-c", "c", `#include <vespid.h>
const char *vespid_main(const char *p) { __asm__ volatile("cli; hlt"); return "{}"; }`);
  const priv = await invoke("privileged-c");
  t.regex(priv.body.response.result.error, /general protection fault/);
});

test("the C compiler cannot read host files", async (t) => {
  const res = await put("include-host-c", "c", '#include "/etc/hostname"\n');
  t.is(res.status, 400);
  t.regex(res.body.error, /\/etc\/hostname: No such file or directory/);
  const incbin = await put("incbin-c", "c", '__asm__(".incbin \\"/etc/passwd\\"");\nconst char *vespid_main(const char *p) { return "{}"; }\n');
  t.is(incbin.status, 400);
  t.regex(incbin.body.error, /passwd/);
});

test("bad input gets a clear error and stores nothing", async (t) => {
  const raw = (name: string, body: string) =>
    platform.request("PUT", api(`actions/${name}`), body, { "content-type": "application/json" });
  const cases: Array<[string, Promise<{ status: number; body: any }>, number, RegExp]> = [
    ["bad-json", raw("bad-json", "{ not json"), 400, /not valid JSON/],
    ["bad-kind", put("bad-kind", "cobol", "x"), 400, /exec\.kind/],
    ["bad-c", put("bad-c", "c", "#include <vespid.h>\nconst char *vespid_main(const char *p) {\n  return undefined_thing;\n}\n"), 400, /action\.c:3:\d+: error: .*undefined_thing/],
    ["bad-js", put("bad-js", "nodejs", "function main( {"), 400, /SyntaxError/],
    ["big", raw("big", JSON.stringify({ exec: { kind: "nodejs", code: "x".repeat(6 * 1024 * 1024) } })), 413, /./],
  ];
  for (const [name, pending, status, message] of cases) {
    const res = await pending;
    t.is(res.status, status, `${name}: ${JSON.stringify(res.body).slice(0, 300)}`);
    t.regex(res.body.error, message, name);
    t.is(typeof res.body.code, "string");
    t.is((await platform.request("GET", api(`actions/${name}`))).status, 404, `${name} must not be stored`);
  }
  const missing = await invoke("no-such-action");
  t.is(missing.status, 404);
  t.regex(missing.body.error, /not found|does not exist/i);
  t.is((await platform.request("GET", api("activations/0123456789abcdef0123456789abcdef"))).status, 404);
});

test("runners report their snapshot pool in their heartbeats: cold starts, then hits", async (t) => {
  await created(t, "pool-js", "nodejs", "function main(p) { return p; }");
  for (let i = 0; i < 3; i++) t.is((await invoke("pool-js", { i })).status, 200);
  const sub = platform.nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, { max: 1 });
  for await (const msg of sub) {
    const beat = RunnerHeartbeat.parse(msg.json());
    t.truthy(beat.engine);
    t.true(beat.engine!.coldStarts >= 1);
    t.true(beat.engine!.hits + beat.engine!.misses >= 2);
    t.true(beat.engine!.snapshots >= 1);
    t.true(beat.engine!.snapshotBytes > 0 && beat.engine!.bytes >= beat.engine!.snapshotBytes);
  }
});

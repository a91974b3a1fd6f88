// Isolation tiers on the platform: runners announce their tier, /health lists it, actions that
// require kvm (by annotation or by their namespace) are checked and run on kvm runners only and end
// with a clear record when none is live, every activation names the tier that ran it, and a host
// problem answers 503, never 400. Real runners (real engines on this host's tiers), scheduler,
// gateway and nats-server; each test starts the runners it needs. A test that needs a tier this
// host lacks is registered skipped, with the reason in its title.
import test, { type ExecutionContext } from "ava";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { Admin } from "../admin/namespaces.ts";
import { RUNNER_HEARTBEAT_SUBJECT, RunnerHeartbeat, type Isolation } from "../contracts/index.ts";
import { NO_RUNNER_REASON } from "../gateway/routes/health.ts";
import { isolationAvailable, openNativeEngine } from "../runner/engine-native.ts";
import { createImageStore } from "../runner/image-store.ts";
import { startRunner, type Runner } from "../runner/index.ts";
import { missingTierMessage, MISSING_TIER_WAIT_MS } from "../scheduler/dispatcher.ts";
import { annotation, api, startPlatform, type Platform } from "./harness.ts";

const logger = pino({ level: process.env.VESPID_LOG_LEVEL ?? "silent" });
const missing: Record<Isolation, string | undefined> = {
  kvm: whyMissing("kvm"),
  process: whyMissing("process"),
};
function whyMissing(tier: Isolation): string | undefined {
  const available = isolationAvailable(tier);
  return available.ok ? undefined : available.why;
}

/** `test.serial`, or its skipped twin naming the tiers this host lacks and why. */
function needing(tiers: Isolation[], title: string, impl: (t: ExecutionContext) => Promise<void>): void {
  const lacking = tiers.filter((tier) => missing[tier] !== undefined);
  if (lacking.length === 0) test.serial(title, impl);
  else test.serial.skip(`${title} — skipped: ${lacking.map((tier) => `${tier}: ${missing[tier]}`).join("; ")}`, impl);
}

const JS_ECHO = "function main(params) { return params; }";
const C_ECHO = `#include <vespid.h>
const char *vespid_main(const char *params) { return params; }
`;
const kvmOnly = [{ key: "isolation", value: "kvm" }];

let platform: Platform;
let admin: Admin;
/** Runners started by the tests, live or not; each test stops the ones it no longer wants. */
const runners = new Set<Runner>();
let runnerCount = 0;

test.before(async () => {
  // No runner of the harness's own: every test here decides which tiers are live.
  platform = await startPlatform({ runners: 0, blockingWaitMs: 30_000 });
  admin = await Admin.open(platform.nc);
});

test.after.always(async () => {
  for (const runner of runners) await runner.close();
  await platform?.stop();
});

/** Starts a runner on `isolation` and waits until the gateway has heard its heartbeat. */
async function startTierRunner(isolation: Isolation | "auto", opts: Partial<Parameters<typeof startRunner>[0]> = {}): Promise<Runner> {
  const dataDir = join(platform.dataDir, `runner-${runnerCount++}`);
  await mkdir(dataDir, { recursive: true });
  const runner = await startRunner({ nc: platform.nc, dataDir, capacity: 2, logger, isolation, ...opts });
  runners.add(runner);
  await healthUntil((body) => body.runners?.some((r: { runnerId: string }) => r.runnerId === runner.runnerId));
  return runner;
}

async function stopRunners(which: (runner: Runner) => boolean = () => true): Promise<void> {
  for (const runner of [...runners].filter(which)) {
    runners.delete(runner);
    await runner.close();
  }
}

/** Polls /health until `wanted` holds of its body (10 s at most); returns that body. */
async function healthUntil(wanted: (body: any) => boolean): Promise<any> {
  let body: any;
  for (let i = 0; i < 200; i++) {
    body = (await platform.request("GET", "/health", undefined, {}, { auth: false })).body;
    if (wanted(body)) return body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`/health never became what the test waits for: ${JSON.stringify(body)}`);
}

const put = (path: string, body: unknown, auth?: string) =>
  platform.request("PUT", api(`actions/${path}?overwrite=true`), body, {}, auth ? { auth } : {});
const invoke = (path: string, params: unknown = {}, auth?: string) =>
  platform.request("POST", api(`actions/${path}?blocking=true`), params, {}, auth ? { auth } : {});

async function created(t: ExecutionContext, path: string, body: unknown, auth?: string): Promise<void> {
  const res = await put(path, body, auth);
  t.is(res.status, 200, `PUT ${path}: ${JSON.stringify(res.body)}`);
}

// --- without runners ------------------------------------------------------------------------------

test.serial("without a runner: /health is degraded and says why; PUTs of code answer 503 with the reason", async (t) => {
  const health = await platform.request("GET", "/health", undefined, {}, { auth: false });
  t.is(health.status, 200, "the API still answers: degraded, not down");
  t.like(health.body, { status: "degraded", reason: NO_RUNNER_REASON });
  t.deepEqual(health.body.runners, []);

  const res = await put("nobody-checks", { exec: { kind: "nodejs", code: JS_ECHO } });
  t.is(res.status, 503, JSON.stringify(res.body));
  t.is(res.body.error, "no runner is available to check the action");
  t.is(res.headers["retry-after"], "1");
  const kvm = await put("nobody-checks", { exec: { kind: "nodejs", code: JS_ECHO }, annotations: kvmOnly });
  t.is(kvm.status, 503);
  t.is(kvm.body.error, "no runner with isolation kvm is available to check the action");
  t.is((await platform.request("GET", api("actions/nobody-checks"))).status, 404);
});

test.serial("an isolation annotation other than kvm or process is a 400 naming the field", async (t) => {
  for (const value of ["xen", "KVM", 1, null, { tier: "kvm" }]) {
    const res = await put("bad-isolation", {
      exec: { kind: "nodejs", code: JS_ECHO },
      annotations: [{ key: "description", value: "x" }, { key: "isolation", value }],
    });
    t.is(res.status, 400, JSON.stringify(value));
    t.is(res.body.error, `annotations.1.value: the "isolation" annotation must be "kvm" or "process", got ${JSON.stringify(value)}`);
  }
  t.is((await platform.request("GET", api("actions/bad-isolation"))).status, 404);
});

// --- tiers announced ------------------------------------------------------------------------------

test.serial("runners announce their tier in heartbeats; /health lists each live runner with it", async (t) => {
  const tiers = (["kvm", "process"] as const).filter((tier) => !missing[tier]);
  t.true(tiers.length > 0, "this host offers no tier at all");
  const started = [];
  for (const tier of tiers) started.push(await startTierRunner(tier));
  t.teardown(() => stopRunners());

  const beats = platform.nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, { max: 2 * started.length, timeout: 5_000 });
  const heard = new Map<string, Isolation | undefined>();
  for await (const msg of beats) {
    const beat = RunnerHeartbeat.parse(msg.json());
    heard.set(beat.runnerId, beat.isolation);
    if (started.every((r) => heard.has(r.runnerId))) break;
  }
  for (const runner of started) t.is(heard.get(runner.runnerId), runner.isolation);

  const health = await healthUntil((body) => body.runners?.length === started.length);
  t.is(health.status, "ok");
  t.deepEqual(
    health.runners,
    started
      .map((r) => ({ runnerId: r.runnerId, isolation: r.isolation, capacity: 2, inflight: 0 }))
      .sort((a, b) => a.runnerId.localeCompare(b.runnerId)),
  );
  t.deepEqual(started.map((r) => r.isolation), tiers, "a runner asked for a tier runs on it");
});

test.serial("every activation names the tier that ran it (auto: the strongest the host offers)", async (t) => {
  const runner = await startTierRunner("auto");
  t.teardown(() => stopRunners());
  t.is(runner.isolation, missing.kvm ? "process" : "kvm");
  t.is(runner.isolationReason, missing.kvm ?? "/dev/kvm is usable");
  await created(t, "named-js", { exec: { kind: "nodejs", code: JS_ECHO } });
  await created(t, "named-c", { exec: { kind: "c", code: C_ECHO } });
  await created(t, "named-seq", { exec: { kind: "sequence", components: ["/_/named-js", "/_/named-c"] } });
  for (const name of ["named-js", "named-c", "named-seq"]) {
    const res = await invoke(name, { n: 1 });
    t.is(res.status, 200, `${name}: ${JSON.stringify(res.body)}`);
    t.deepEqual(res.body.response.result, { n: 1 });
    t.is(annotation(res.body, "isolation"), runner.isolation, name);
    if (name === "named-seq") {
      for (const id of res.body.logs) {
        const component = await platform.request("GET", api(`activations/${id}`));
        t.is(annotation(component.body, "isolation"), runner.isolation, `component ${id}`);
      }
    }
  }
});

// --- placement by tier ----------------------------------------------------------------------------

needing(["kvm", "process"], "actions that require kvm, by annotation or by namespace, are checked and run on kvm runners only", async (t) => {
  const kvm = await startTierRunner("kvm");
  const proc = await startTierRunner("process");
  t.teardown(() => stopRunners());
  t.deepEqual([kvm.isolation, proc.isolation], ["kvm", "process"]);

  await created(t, "kvm-js", { exec: { kind: "nodejs", code: JS_ECHO }, annotations: kvmOnly });
  await created(t, "kvm-c", { exec: { kind: "c", code: C_ECHO }, annotations: kvmOnly });
  // A sequence runs on one runner: one component that requires kvm puts it all there.
  await created(t, "plain-js", { exec: { kind: "nodejs", code: JS_ECHO }, annotations: [{ key: "isolation", value: "process" }] });
  await created(t, "mixed-seq", { exec: { kind: "sequence", components: ["/_/plain-js", "/_/kvm-c"] } });
  const { apiKey: strict } = await admin.createNamespace("iso-strict");
  t.is(await admin.setIsolation("iso-strict", "kvm"), "kvm");
  await new Promise((r) => setTimeout(r, 300)); // the gateways' watch of the namespaces bucket
  await created(t, "unannotated", { exec: { kind: "nodejs", code: JS_ECHO } }, strict);

  // Two at a time, so that the process runner has room whenever the kvm one is busy: a
  // placement that ignored the tier would show up.
  const calls: Array<[string, string | undefined]> = [];
  for (let i = 0; i < 6; i++) calls.push(["kvm-js", undefined], ["kvm-c", undefined], ["mixed-seq", undefined], ["unannotated", strict]);
  for (let i = 0; i < calls.length; i += 2) {
    const results = await Promise.all(calls.slice(i, i + 2).map(([name, auth]) => invoke(name, { i }, auth)));
    for (const [j, res] of results.entries()) {
      const [name] = calls[i + j]!;
      t.is(res.status, 200, `${name}: ${JSON.stringify(res.body)}`);
      t.is(annotation(res.body, "isolation"), "kvm", `${name} ran on ${annotation(res.body, "isolation")}`);
    }
  }
  // Unrestricted work goes to either; with the kvm runner gone, to the process one.
  await stopRunners((r) => r === kvm);
  const res = await invoke("plain-js", { x: 1 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(annotation(res.body, "isolation"), "process");
});

test.serial("with no kvm runner live, what requires kvm ends promptly with a record naming the tier", async (t) => {
  // Whatever this host offers builds the actions; then every kvm runner goes, and a process
  // runner, where the host has that tier, stays live: it must not take the work.
  const builder = await startTierRunner("auto");
  const { apiKey: late } = await admin.createNamespace("iso-late");
  await created(t, "late", { exec: { kind: "nodejs", code: JS_ECHO } }, late);
  if (builder.isolation === "kvm") await created(t, "late-kvm", { exec: { kind: "c", code: C_ECHO }, annotations: kvmOnly });
  const proc = missing.process ? undefined : builder.isolation === "process" ? builder : await startTierRunner("process");
  t.teardown(() => stopRunners());
  await stopRunners((r) => r.isolation === "kvm");
  await admin.setIsolation("iso-late", "kvm");
  await new Promise((r) => setTimeout(r, 300)); // the gateways' watch of the namespaces bucket

  const expected = { status: "whisk internal error", statusCode: 3, success: false, result: { error: missingTierMessage("kvm") } };
  const cases: Array<[string, string | undefined]> = [["late", late]];
  if (builder.isolation === "kvm") cases.push(["late-kvm", undefined]);
  for (const [i, [name, auth]] of cases.entries()) {
    const started = Date.now();
    const res = await invoke(name, {}, auth);
    const took = Date.now() - started;
    t.is(res.status, 500, `${name}: ${JSON.stringify(res.body)}`);
    t.deepEqual(res.body.response, expected);
    // The first waits out the stopped kvm runner's last heartbeat (MISSING_TIER_WAIT_MS): a few
    // seconds, never the blocking wait (30 s here). Once the tier is known missing, at once.
    const bound = i === 0 ? 2 * MISSING_TIER_WAIT_MS : 2_000;
    t.true(took < bound, `${name} took ${took} ms (at most ${bound})`);
    t.is(annotation(res.body, "isolation"), undefined, "no runner ran it");
    const stored = await platform.request("GET", api(`activations/${res.body.activationId}`), undefined, {}, auth ? { auth } : {});
    t.deepEqual(stored.body, res.body);
  }
  // Nor can such code be created now: nothing of its tier can check it.
  const refused = await put("late-again", { exec: { kind: "nodejs", code: JS_ECHO }, annotations: kvmOnly });
  t.is(refused.status, 503);
  t.is(refused.body.error, "no runner with isolation kvm is available to check the action");
  t.is(refused.headers["retry-after"], "1");

  // Lifting the requirement lets the process runner (where there is one) run it.
  if (proc) {
    await admin.setIsolation("iso-late", "process");
    await new Promise((r) => setTimeout(r, 300));
    const res = await invoke("late", { ok: true }, late);
    t.is(res.status, 200, JSON.stringify(res.body));
    t.is(annotation(res.body, "isolation"), "process");
  }
});

// --- host problems --------------------------------------------------------------------------------

test.serial("a runner whose engine cannot run anything takes no work and says why: PUTs are 503s with its reason, calls wait for a working runner", async (t) => {
  // A healthy runner creates a C action (the broken one below cannot), then leaves.
  await startTierRunner("auto");
  await created(t, "host-c", { exec: { kind: "c", code: C_ECHO } });
  await stopRunners();

  // A damaged install: the JS guest image is missing, and the image directory cannot be made
  // (a file stands where it goes). The engine is real; it cannot start a guest without an image,
  // so the runner's probe call fails and it announces itself unhealthy (runner/health.ts).
  const dataDir = join(platform.dataDir, "broken");
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, "images"), "not a directory\n");
  const engine = openNativeEngine({ threads: 2 });
  const images = createImageStore({ dataDir, logger, engine, jsImage: join(dataDir, "no-such-js.elf") });
  const broken = await startTierRunner("auto", { dataDir, engine, images, runnerId: "broken-runner" });
  t.teardown(() => stopRunners());
  const health = await healthUntil((body) => body.runners?.some((r: any) => r.runnerId === "broken-runner" && r.unhealthy));
  const announced = health.runners.find((r: any) => r.runnerId === "broken-runner");
  t.is(announced.capacity, 0, "an unhealthy runner offers no capacity");
  t.regex(announced.unhealthy, /^the engine's probe call failed: /);
  const why = `runner broken-runner (isolation ${broken.isolation}) is unhealthy: ${announced.unhealthy}`;

  // It checks no code: a PUT is the platform's problem, with the runner's reason, never a 400.
  for (const [name, exec] of [["host-js", { kind: "nodejs", code: JS_ECHO }], ["host-c2", { kind: "c", code: C_ECHO }]] as const) {
    const res = await put(name, { exec });
    t.is(res.status, 503, JSON.stringify(res.body));
    t.is(res.headers["retry-after"], "5");
    t.is(res.body.error, `no runner is available to check the action: ${why}`);
    t.is((await platform.request("GET", api(`actions/${name}`))).status, 404, `${name} must not be stored`);
  }

  // It takes no calls either: one waits (no record, so none blames the user) ...
  const accepted = await platform.request("POST", api("actions/host-c"), { x: 1 });
  t.is(accepted.status, 202, JSON.stringify(accepted.body));
  const record = () => platform.request("GET", api(`activations/${accepted.body.activationId}`));
  await new Promise((r) => setTimeout(r, 3_000));
  t.is((await record()).status, 404, "the unhealthy runner must not run (and fail) the call");
  // ... until a working runner comes, which runs it.
  await startTierRunner("auto");
  let done = await record();
  for (let i = 0; i < 300 && done.status === 404; i++) {
    await new Promise((r) => setTimeout(r, 100));
    done = await record();
  }
  t.is(done.status, 200, JSON.stringify(done.body));
  t.deepEqual(done.body.response.result, { x: 1 });
});


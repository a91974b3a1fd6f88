// `vespid runner --isolation …` as users start it, in a child process against a real nats-server:
// the line saying which tier and why, the tier announced in heartbeats, and the refusal, with the
// reason and a non-zero exit, of a tier the host cannot give. A host without /dev/kvm is made real
// for the child with bubblewrap: the whole file system, but a /dev without kvm in it.
import test, { type ExecutionContext } from "ava";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { NatsConnection } from "@nats-io/transport-node";
import { RUNNER_HEARTBEAT_SUBJECT, RunnerHeartbeat, type Isolation } from "../contracts/index.ts";
import type { LocalNats } from "../infra/nats-server.ts";
import { isolationAvailable } from "../runner/engine-native.ts";
import { startProvisionedNats } from "./harness.ts";

const ROOT = resolve(fileURLToPath(import.meta.url), "../..");
const available = { kvm: isolationAvailable("kvm"), process: isolationAvailable("process") };
const why = (tier: Isolation) => {
  const a = available[tier];
  return a.ok ? undefined : a.why;
};
const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;
/** What a child sees where /dev/kvm is missing. */
const NO_KVM = "/dev/kvm: No such file or directory";

let nats: LocalNats;
let nc: NatsConnection;
let dataDir: string;

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "vespid-isolation-cli-"));
  ({ nats, nc } = await startProvisionedNats(dataDir, "isolation-cli-test"));
});

test.after.always(async () => {
  await nc?.drain();
  await nats?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

interface Outcome {
  /** Exit code, or undefined while it runs (it started and was stopped by us). */
  code: number | null | undefined;
  stdout: string;
  stderr: string;
  /** Its runner id, once it said it serves. */
  runnerId?: string;
  /** The tier its first heartbeat announced. */
  heartbeat?: Isolation;
}

/**
 * Runs `vespid runner <args>` until it exits or says it serves; then waits for its heartbeat and
 * stops it (SIGTERM), expecting a clean exit.
 */
async function runRunner(t: ExecutionContext, args: string[], opts: { withoutKvm?: boolean } = {}): Promise<Outcome> {
  const argv = [process.execPath, "--import=tsx", "bin/vespid.ts", "runner", "--nats", nats.url, ...args];
  // --die-with-parent: a test that fails midway leaves no runner behind.
  const command = opts.withoutKvm ? ["bwrap", "--dev-bind", "/", "/", "--dev", "/dev", "--die-with-parent", ...argv] : argv;
  const beats = nc.subscribe(RUNNER_HEARTBEAT_SUBJECT);
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, VESPID_DATA_DIR: join(dataDir, `runner-${Math.random().toString(36).slice(2)}`), VESPID_RUNNER_CAPACITY: "1", VESPID_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Outcome = { code: undefined, stdout: "", stderr: "" };
  child.stdout.on("data", (d) => (out.stdout += d));
  child.stderr.on("data", (d) => (out.stderr += d));
  const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
  t.teardown(() => {
    beats.unsubscribe();
    child.kill("SIGKILL");
  });

  const serving = new Promise<string>((done) => {
    child.stdout.on("data", () => {
      const m = /^Vespid runner (\S+) serving /m.exec(out.stdout);
      if (m) done(m[1]!);
    });
  });
  const first = await Promise.race([
    exited.then((code) => ({ code })),
    serving.then((runnerId) => ({ runnerId })),
    // unref'd: a pending timer must not keep this file's process alive once its tests are done
    new Promise<{ timeout: true }>((done) => setTimeout(() => done({ timeout: true }), 60_000).unref()),
  ]);
  if ("timeout" in first) throw new Error(`the runner neither started nor exited in 60 s:\n${out.stdout}\n${out.stderr}`);
  if ("code" in first) {
    out.code = first.code;
    return out;
  }
  out.runnerId = first.runnerId;
  for await (const msg of beats) {
    const beat = RunnerHeartbeat.parse(msg.json());
    if (beat.runnerId === out.runnerId) {
      out.heartbeat = beat.isolation;
      break;
    }
  }
  child.kill("SIGTERM");
  const code = await exited;
  // bwrap does not pass the signal on (the runner dies with it, --die-with-parent): only a
  // runner started directly can show its clean stop.
  if (!opts.withoutKvm) t.is(code, 0, `a clean stop: ${out.stderr}`);
  return out;
}

/** Checks a runner that asked for (or was given) `tier` started on it, said so and announces it. */
function assertStarted(t: ExecutionContext, out: Outcome, tier: Isolation, reason: string) {
  t.is(out.code, undefined, `it should have started: ${out.stderr}`);
  t.is(out.stdout.split("\n")[0], `isolation: ${tier} (${reason})`, "the first line says the tier and why");
  t.regex(out.stdout, new RegExp(`^Vespid runner \\S+ serving nats://\\S+, 1 at a time, isolation ${tier}$`, "m"));
  t.is(out.heartbeat, tier);
}

function assertRefused(t: ExecutionContext, out: Outcome, message: string) {
  t.is(out.code, 1, `it should have refused: ${out.stdout}`);
  t.is(out.stderr.split("\n")[0], `vespid: cannot start a runner: ${message}`);
  t.is(out.runnerId, undefined);
}

for (const tier of ["kvm", "process"] as const) {
  test.serial(`--isolation ${tier}: runs on ${tier} where the host has it, else refuses to start with the reason`, async (t) => {
    const out = await runRunner(t, ["--isolation", tier]);
    const missing = why(tier);
    if (missing === undefined) assertStarted(t, out, tier, "requested");
    else assertRefused(t, out, `isolation ${tier} is not available: ${missing}`);
  });
}

test.serial("VESPID_ISOLATION unset (auto): the strongest tier the host offers, and why", async (t) => {
  const out = await runRunner(t, []);
  if (available.kvm.ok) assertStarted(t, out, "kvm", "/dev/kvm is usable");
  else if (available.process.ok) assertStarted(t, out, "process", why("kvm")!);
  else assertRefused(t, out, `no isolation tier is available: kvm (${why("kvm")}), process (${why("process")})`);
});

const withoutKvm = hasBwrap ? test.serial : test.serial.skip;
const bwrapNote = hasBwrap ? "" : " — skipped: bubblewrap (bwrap) is not installed";

withoutKvm(`on a host without /dev/kvm: --isolation kvm refuses, naming /dev/kvm${bwrapNote}`, async (t) => {
  const out = await runRunner(t, ["--isolation", "kvm"], { withoutKvm: true });
  assertRefused(t, out, `isolation kvm is not available: ${NO_KVM}`);
  t.regex(out.stderr, /--isolation auto/, "and says how to run without KVM");
});

withoutKvm(`on a host without /dev/kvm: auto takes the process tier and says why${bwrapNote}`, async (t) => {
  const out = await runRunner(t, ["--isolation", "auto"], { withoutKvm: true });
  if (available.process.ok) assertStarted(t, out, "process", NO_KVM);
  else assertRefused(t, out, `no isolation tier is available: kvm (${NO_KVM}), process (${why("process")})`);
});

test.serial("--isolation is refused where no runner starts, and a bad tier is named", async (t) => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ["--import=tsx", "bin/vespid.ts", ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" });
  const gateway = run(["gateway", "--nats", nats.url, "--isolation", "kvm"]);
  t.is(gateway.status, 2);
  t.regex(gateway.stderr, /^vespid: --isolation is a runner's setting: it applies to "all" and "runner", not "gateway"/);
  const bad = run(["runner", "--nats", nats.url, "--isolation", "xen"]);
  t.is(bad.status, 2);
  t.regex(bad.stderr, /^vespid: invalid configuration: VESPID_ISOLATION \(--isolation\) must be one of auto, kvm, process, got "xen"/);
  const badEnv = run(["runner", "--nats", nats.url], { VESPID_ISOLATION: "vm" });
  t.is(badEnv.status, 2);
  t.regex(badEnv.stderr, /VESPID_ISOLATION \(--isolation\) must be one of auto, kvm, process, got "vm"/);
});

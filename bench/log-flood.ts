// How long log floods keep the event loop (issue 8). Two parts, each against an idle loop measured
// in the same run:
// 1. The runner's log path alone: the real engine runs a flooding guest, then its logs are
//    formatted and the record encoded as the runner does (runner/invocation.ts, recorder.ts), no
//    NATS; the event-loop delay of this process meanwhile (max stall, p99; and the max stall from
//    the outcome on, which leaves out the engine's seconds), and the time taken.
// 2. A whole platform in this process (gateway, scheduler, runner, real nats-server): the same,
//    from the invoke until the record is in the bucket, alone and while 8 echo calls run beside
//    it; also the longest gap between the runner's heartbeats (the scheduler takes a runner for
//    dead after RUNNER_EXPIRY_MS) and the slowest echo call beside the flood.
// The floods: one 4 MiB write of "x\n", 262144 separate writes of "x\n", and 4 MiB in lines of
// 256 KiB. Each case runs `rounds` times; the median and worst of the rounds are printed.
//   node --import=tsx bench/log-flood.ts [rounds per case = 5] [parts = path,platform]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { ACTIVATIONS_BUCKET, activationKey, RUNNER_HEARTBEAT_SUBJECT, type InvocationEvent } from "../contracts/index.ts";
import { DEFAULT_NAMESPACE } from "../gateway/default-key.ts";
import { buildActivation, encodeActivation, verdictOf } from "../runner/activation.ts";
import { openNativeEngine } from "../runner/engine-native.ts";
import { createImageStore } from "../runner/image-store.ts";
import { formatLogs, LOG_GRACE_MS, MAX_RECORD_LOG_BYTES } from "../runner/logs-format.ts";
import { api, startPlatform } from "../test/harness.ts";

const [roundsArg = "5", partsArg = "path,platform"] = process.argv.slice(2);
const ROUNDS = Number(roundsArg);
if (!(Number.isInteger(ROUNDS) && ROUNDS > 0 && ROUNDS <= 50)) {
  console.error(`bench/log-flood.ts: rounds per case must be an integer in [1, 50], got "${roundsArg}"`);
  process.exit(2);
}
const PARTS = partsArg.split(",");
if (!PARTS.every((p) => p === "path" || p === "platform")) {
  console.error(`bench/log-flood.ts: parts is a comma-separated list of path and platform, got "${partsArg}"`);
  process.exit(2);
}
const ECHOES = 8;
/** The embedded server's max_payload less the recorder's header room: the record's bound. */
const MAX_RECORD_BYTES = 8 * 1024 * 1024 - 4 * 1024;

/** `count` writes of `size` bytes each, lines of `line` bytes (newline included) throughout. */
const writer = (count: number, size: number, line: number) => `#include <unistd.h>
#include <vespid.h>
static char buf[${count * size}];
const char *vespid_main(const char *params) {
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (i + 1) % ${line} == 0 ? '\\n' : 'x';
    for (int i = 0; i < ${count}; i++) write(1, buf + i * ${size}, ${size});
    return "{\\"done\\": true}";
}`;

const CASES = [
  { name: "one-write", label: "one 4 MiB write of \"x\\n\"", code: writer(1, 4 << 20, 2) },
  { name: "tiny-writes", label: "262144 writes of \"x\\n\"", code: writer(262144, 2, 2) },
  { name: "large-lines", label: "4 MiB in lines of 256 KiB", code: writer(16, 256 << 10, 256 << 10) },
];
const ECHO = `#include <vespid.h>
const char *vespid_main(const char *params) { return params; }`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Delay {
  /** Longest stall and 99th percentile of the loop's delay, ms (1 ms resolution). */
  max: number;
  p99: number;
}

/** This process's event-loop delay while `fn` runs. */
async function loopDelay<T>(fn: () => Promise<T>): Promise<Delay & { value: T }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const value = await fn();
  h.disable();
  return { value, max: h.max / 1e6, p99: h.percentile(99) / 1e6 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (v: number) => `${v.toFixed(1)}`.padStart(6);
/** One line per case: median / worst of each figure over the rounds. */
function row(label: string, rounds: Array<Record<string, number>>, unit: Record<string, string>) {
  const cells = Object.keys(rounds[0]!).map((k) => {
    const xs = rounds.map((r) => r[k]!);
    return `${k} ${f(median(xs))} /${f(Math.max(...xs))} ${unit[k] ?? "ms"}`;
  });
  console.log(`${label.padEnd(42)} ${cells.join("   ")}`);
}

async function idleRow(label: string, ms: number) {
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) {
    const { max, p99 } = await loopDelay(() => sleep(ms));
    rounds.push({ "max stall": max, p99 });
  }
  row(label, rounds, {});
}

// ---- 1. the runner's log path alone ------------------------------------------------------------

async function pathPart() {
  const dir = await mkdtemp(path.join(tmpdir(), "vespid-bench-"));
  try {
    await pathCases(createImageStore({ dataDir: dir, logger: pino({ level: "silent" }) }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function pathCases(images: ReturnType<typeof createImageStore>) {
  const engine = openNativeEngine();
  const event: InvocationEvent = { activationId: "0".repeat(32), namespace: DEFAULT_NAMESPACE, name: "flood", params: {}, published: Date.now() } as InvocationEvent;
  console.log(`1. the runner's log path alone (engine, formatLogs, encodeActivation; ${engine.isolation}); median / worst of ${ROUNDS} rounds\n`);
  await idleRow("idle loop (300 ms)", 300);
  for (const c of CASES) {
    const image = await images.build("c", c.code);
    if (!image.ok) throw new Error(image.error);
    const rounds = [];
    for (let i = 0; i <= ROUNDS; i++) {
      let engineMs = 0;
      const t0 = performance.now();
      // The whole call (the copy out of the engine included), and from the outcome on: the engine's
      // seconds of a flood of writes add stalls that are not the runner's (the machine's load).
      const r = await loopDelay(async () => {
        const runStart = Date.now();
        const outcome = await engine.run({ image: image.image, init: new Uint8Array(), params: "{}", memoryMb: 128, timeoutMs: 60_000, snapshotKey: image.codeHash, logLimit: MAX_RECORD_LOG_BYTES });
        engineMs = performance.now() - t0;
        return loopDelay(async () => {
          const end = Date.now();
          const limits = { timeout: 60_000, memory: 128, logs: 10 };
          const logs = await formatLogs(outcome.logRecords, {
            truncated: outcome.logsTruncated, limitBytes: MAX_RECORD_LOG_BYTES, end, maxBytes: MAX_RECORD_BYTES, deadline: runStart + 60_000 + LOG_GRACE_MS, timeoutMs: 60_000,
          });
          const activation = buildActivation({ event, start: runStart, end, verdict: verdictOf(outcome, limits), logs });
          return encodeActivation(activation, MAX_RECORD_BYTES);
        });
      });
      const total = performance.now() - t0;
      const after = r.value;
      if (!after.value.includes('"result":{"done":true}')) throw new Error(`${c.name}: ${after.value.subarray(0, 300).toString()}`);
      // The first round only warms the snapshot and the JIT.
      if (i > 0) rounds.push({ "max stall": r.max, "after engine": after.max, p99: r.p99, "logs and record": total - engineMs, engine: engineMs });
      await sleep(200);
    }
    row(c.label, rounds, {});
  }
}

// ---- 2. a whole platform ------------------------------------------------------------------------

async function platformPart() {
  const platform = await startPlatform({ runnerCapacity: ECHOES + 2 });
  const [runnerId] = platform.runnerIds;
  const activations = await new Kvm(platform.nc).open(ACTIVATIONS_BUCKET);

  /** Longest silence between the runner's heartbeats while `fn` runs, ms. */
  async function heartbeatGap<T>(fn: () => Promise<T>): Promise<{ value: T; gap: number }> {
    const beats = [Date.now()];
    const sub = platform.nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, {
      callback: (_err, msg) => {
        if (JSON.parse(new TextDecoder().decode(msg.data)).runnerId === runnerId) beats.push(Date.now());
      },
    });
    const value = await fn();
    beats.push(Date.now());
    sub.unsubscribe();
    return { value, gap: Math.max(...beats.slice(1).map((b, i) => b - beats[i]!)) };
  }

  async function put(name: string, code: string) {
    const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind: "c", code }, limits: { logs: 10, timeout: 60_000 } });
    if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /**
   * Invokes `name` and waits for its record in the bucket, by key only: reading an 8 MiB record
   * back (through the gateway, or even a KV get, which comes as base64 in JSON) is tens of ms on
   * this same loop, and not the runner's work. Checked once the measurement is over (`check`).
   */
  async function flood(name: string): Promise<{ ms: number; check: () => Promise<void> }> {
    const started = Date.now();
    const res = await platform.request("POST", api(`actions/${name}`), {});
    if (res.status !== 202) throw new Error(`invoke ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    const key = activationKey(DEFAULT_NAMESPACE, res.body.activationId);
    for (;;) {
      for await (const found of await activations.keys(key)) {
        if (found !== key) continue;
        const ms = Date.now() - started;
        return {
          ms,
          check: async () => {
            const json = Buffer.from((await activations.get(key))!.value);
            if (!json.includes('"result":{"done":true}')) throw new Error(`${name}: ${json.subarray(0, 500).toString()}`);
          },
        };
      }
      await sleep(20);
    }
  }

  /** Blocking echo calls, one after another on each of `n` lanes, until `done`; their slowest, ms. */
  async function echoes(n: number, done: Promise<unknown>): Promise<number> {
    let stop = false;
    void done.finally(() => (stop = true));
    let slowest = 0;
    await Promise.all(Array.from({ length: n }, async (_, lane) => {
      while (!stop) {
        const t0 = Date.now();
        const r = await platform.request("POST", api("actions/echo?blocking=true&result=true"), { lane });
        if (r.status !== 200) throw new Error(`echo: ${r.status} ${JSON.stringify(r.body)}`);
        slowest = Math.max(slowest, Date.now() - t0);
      }
    }));
    return slowest;
  }

  try {
    await put("echo", ECHO);
    for (const c of CASES) await put(c.name, c.code);
    // Warm: each image built and snapshotted, so the rounds time the floods, not the compiler.
    for (const c of CASES) await (await flood(c.name)).check();
    await platform.request("POST", api("actions/echo?blocking=true"), {});

    console.log(`\n2. a whole platform in this process; median / worst of ${ROUNDS} rounds\n`);
    await idleRow("idle platform (1 s)", 1000);
    const idle = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await loopDelay(() => echoes(ECHOES, sleep(1000)));
      idle.push({ "max stall": r.max, p99: r.p99, "slowest echo": r.value });
    }
    row(`${ECHOES} lanes of echo calls, no flood (1 s)`, idle, {});
    for (const withEchoes of [false, true]) {
      for (const c of CASES) {
        const rounds = [];
        for (let i = 0; i < ROUNDS; i++) {
          const r = await loopDelay(() => heartbeatGap(async () => {
            const call = flood(c.name);
            const slowest = withEchoes ? await echoes(ECHOES, call) : 0;
            return { ...(await call), slowest };
          }));
          await r.value.value.check();
          rounds.push({
            "max stall": r.max, p99: r.p99, record: r.value.value.ms, "heartbeat gap": r.value.gap,
            ...(withEchoes && { "slowest echo": r.value.value.slowest }),
          });
          await sleep(300);
        }
        row(`${c.label}${withEchoes ? ` + ${ECHOES} echo lanes` : ""}`, rounds, {});
      }
    }
  } finally {
    await platform.stop();
  }
}

if (PARTS.includes("path")) await pathPart();
if (PARTS.includes("platform")) await platformPart();
process.exit(0);

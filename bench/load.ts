// A load generator for Vespid, in the spirit of a locust workload: N clients calling in a closed
// loop, or a fixed rate of calls (open loop), over chosen actions, blocking or not. It prints a
// progress line every second and, at the end, throughput, latency percentiles, answers by status,
// cold starts and the warm-hit ratio (from the activation records' `initTime` annotation), next to
// floors measured in the same run with the same clients: an HTTP GET of the gateway's /health, a
// core NATS request/reply and a JetStream publish. `--json FILE` writes the same as JSON.
//   node --import=tsx bench/load.ts --help
import http from "node:http";
import https from "node:https";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { RUNNER_HEARTBEAT_SUBJECT, RunnerHeartbeat } from "../contracts/index.ts";
import { DEFAULT_RUNNER_CAPACITY } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { round, summarise, Tally, type LatencySummary } from "./load-stats.ts";

const HELP = `Usage: node --import=tsx bench/load.ts [options]

Target (default: a whole platform started in this process, as the tests do):
  --url URL              gateway to load, e.g. http://127.0.0.1:8989
  --auth UUID:KEY        its API key (default: $VESPID_AUTH); required with --url
  --nats URL             that platform's NATS, for the NATS floors and engine counters
  --runners N            own platform: runners (default 1)
  --capacity N           own platform: slots per runner (default ${DEFAULT_RUNNER_CAPACITY}, VESPID_RUNNER_CAPACITY's default)
  --no-direct            own platform: blocking calls through JetStream and the scheduler, as
                         with VESPID_DIRECT_CALLS=off (the baseline of the direct path)
Load:
  --concurrency N        closed loop: N clients, each calling again when answered (default 50)
  --rate R               open loop instead: R calls/s on a fixed schedule; latency counts from
                         the scheduled time, so a slow platform cannot hide its queueing
  --max-inflight N       open loop: calls outstanding at most; calls due beyond it are skipped
                         and counted (default 10000)
  --duration S           seconds measured (default 10)
  --warmup S             seconds of load before measuring, not counted (default 2)
  --non-blocking         queue calls (202 + id) instead of waiting for their results
  --params JSON          parameters of every call (default {"hello":"world"})
Actions:
  --actions N            distinct actions to create and call in turn (default 2)
  --kinds LIST           their kinds, alternating: js, c (default js,c: a JS echo and a C echo)
  --same-code            created actions of one kind share their code (one image, one snapshot);
                         by default each has its own, as distinct functions would
  --prime                call every action once before the warm-up
  --use NAMES            call these existing actions (comma-separated) instead of creating any
Report:
  --floors / --no-floors measure the floors (default on)
  --floor-duration S     seconds per floor (default 3)
  --check-records N      non-blocking: fetch the records of a sample of N accepted calls at the
                         end, counting missing ones and cold starts (default 1000)
  --json FILE            also write the report as JSON
  --help`;

// --- options ----------------------------------------------------------------------------------

interface Options {
  url?: string;
  auth?: string;
  nats?: string;
  runners: number;
  capacity: number;
  /** Own platform: blocking calls may go straight to runners (false: --no-direct). */
  direct: boolean;
  concurrency: number;
  rate?: number;
  maxInflight: number;
  durationS: number;
  warmupS: number;
  blocking: boolean;
  params: string;
  actions: number;
  kinds: Array<"js" | "c">;
  sameCode: boolean;
  prime: boolean;
  use?: string[];
  floors: boolean;
  floorDurationS: number;
  checkRecords: number;
  json?: string;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      url: { type: "string" }, auth: { type: "string" }, nats: { type: "string" },
      runners: { type: "string" }, capacity: { type: "string" }, concurrency: { type: "string" }, "no-direct": { type: "boolean" },
      rate: { type: "string" }, "max-inflight": { type: "string" }, duration: { type: "string" },
      warmup: { type: "string" }, "non-blocking": { type: "boolean" }, params: { type: "string" },
      actions: { type: "string" }, kinds: { type: "string" }, "same-code": { type: "boolean" },
      prime: { type: "boolean" }, use: { type: "string" }, floors: { type: "boolean" }, "no-floors": { type: "boolean" },
      "floor-duration": { type: "string" }, "check-records": { type: "string" }, json: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return "help";
  const number = (name: string, value: string | undefined, fallback: number, { min = 1, integer = true } = {}) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new UsageError(`--${name} must be ${integer ? "an integer" : "a number"} ≥ ${min}, not ${JSON.stringify(value)}`);
    }
    return n;
  };
  const kinds = (values.kinds ?? "js,c").split(",").map((k) => k.trim());
  const badKind = kinds.find((k) => k !== "js" && k !== "c");
  if (badKind !== undefined) throw new UsageError(`--kinds: unknown kind ${JSON.stringify(badKind)} (js or c)`);
  const params = values.params ?? `{"hello":"world"}`;
  try {
    const parsed: unknown = JSON.parse(params);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
  } catch {
    throw new UsageError(`--params must be a JSON object, not ${JSON.stringify(params)}`);
  }
  const auth = values.auth ?? process.env.VESPID_AUTH;
  if (values.url !== undefined) {
    try {
      new URL(values.url);
    } catch {
      throw new UsageError(`--url is not a URL: ${JSON.stringify(values.url)}`);
    }
    if (!auth) throw new UsageError("--auth UUID:KEY (or VESPID_AUTH) is required with --url");
  }
  if (auth !== undefined && !/^[^:]+:.+$/.test(auth)) throw new UsageError("--auth must be UUID:KEY");
  const use = values.use?.split(",").map((n) => n.trim()).filter(Boolean);
  if (use && use.length === 0) throw new UsageError("--use needs at least one action name");
  return {
    url: values.url,
    auth,
    nats: values.nats,
    runners: number("runners", values.runners, 1),
    capacity: number("capacity", values.capacity, DEFAULT_RUNNER_CAPACITY),
    direct: !values["no-direct"],
    concurrency: number("concurrency", values.concurrency, 50),
    rate: values.rate === undefined ? undefined : number("rate", values.rate, 0, { integer: false, min: 0.001 }),
    maxInflight: number("max-inflight", values["max-inflight"], 10_000),
    durationS: number("duration", values.duration, 10, { integer: false, min: 0.1 }),
    warmupS: number("warmup", values.warmup, 2, { integer: false, min: 0 }),
    blocking: !values["non-blocking"],
    params,
    actions: number("actions", values.actions, 2),
    kinds: kinds as Options["kinds"],
    sameCode: values["same-code"] ?? false,
    prime: values.prime ?? false,
    use,
    floors: !values["no-floors"],
    floorDurationS: number("floor-duration", values["floor-duration"], 3, { integer: false, min: 0.1 }),
    checkRecords: number("check-records", values["check-records"], 1000, { min: 0 }),
    json: values.json,
  };
}

// --- HTTP -------------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: string;
}

/** Keep-alive HTTP/1.1, one socket per client: node:http costs less per call than fetch. */
class Client {
  private readonly agent: http.Agent;
  private readonly base: URL;
  private readonly authorization?: string;

  constructor(url: string, auth: string | undefined, sockets: number) {
    this.base = new URL(url);
    const Agent = this.base.protocol === "https:" ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets });
    if (auth) this.authorization = `Basic ${Buffer.from(auth).toString("base64")}`;
  }

  request(method: string, path: string, body?: string): Promise<Answer> {
    const send = this.base.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (this.authorization) headers.authorization = this.authorization;
      if (body !== undefined) Object.assign(headers, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      const req = send(
        { agent: this.agent, protocol: this.base.protocol, hostname: this.base.hostname, port: this.base.port, method, path, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      req.setTimeout(120_000, () => req.destroy(new Error("no answer within 120 s")));
      req.on("error", reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

const actionPath = (name: string, query = "") =>
  `/api/v1/namespaces/_/actions/${name.split("/").map(encodeURIComponent).join("/")}${query}`;

// --- load shapes ------------------------------------------------------------------------------

/** `clients` loops, each starting its next call when the last one answered, until `done()`. */
async function closedLoop(clients: number, done: () => boolean, one: () => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: clients }, async () => {
    while (!done()) await one();
  }));
}

/**
 * Calls at `rate`/s from now until `endAt()` (performance.now() ms), each given its scheduled time;
 * calls due while `maxInflight` are outstanding are skipped. Resolves when the last call answered.
 */
function openLoop(rate: number, endAt: () => number, maxInflight: number, one: (scheduled: number) => Promise<void>): Promise<{ skipped: number }> {
  const start = performance.now();
  const interval = 1000 / rate;
  let issued = 0;
  let inflight = 0;
  let skipped = 0;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      for (let scheduled = start + issued * interval; scheduled <= now && scheduled < endAt(); scheduled = start + issued * interval) {
        issued++;
        if (inflight >= maxInflight) {
          skipped++;
          continue;
        }
        inflight++;
        void one(scheduled).finally(() => inflight--);
      }
      if (now >= endAt()) {
        clearInterval(timer);
        const drained = setInterval(() => {
          if (inflight > 0) return;
          clearInterval(drained);
          resolve({ skipped });
        }, 5);
      }
    }, 1);
  });
}

// --- floors -----------------------------------------------------------------------------------

interface FloorResult {
  name: string;
  calls: number;
  errors: number;
  callsPerSecond: number;
  latency: LatencySummary;
}

async function measureFloor(name: string, clients: number, seconds: number, one: () => Promise<void>): Promise<FloorResult> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await closedLoop(clients, () => performance.now() >= end, async () => {
    const t0 = performance.now();
    try {
      await one();
    } catch {
      errors++;
    }
    latencies.push(performance.now() - t0);
  });
  const elapsed = (performance.now() - start) / 1000;
  return { name, calls: latencies.length, errors, callsPerSecond: round(latencies.length / elapsed, 1), latency: summarise(latencies) };
}

async function measureFloors(opts: Options, client: Client, nc: NatsConnection | undefined, clients: number): Promise<FloorResult[]> {
  const floors: FloorResult[] = [];
  const payload = new TextEncoder().encode(opts.params);
  floors.push(await measureFloor("HTTP GET /health", clients, opts.floorDurationS, async () => {
    const res = await client.request("GET", "/health");
    if (res.status !== 200) throw new Error(`health: ${res.status}`);
  }));
  if (!nc) return floors;

  const subject = `vespid-bench.floor.${randomBytes(4).toString("hex")}`;
  const responder = nc.subscribe(`${subject}.rr`, {
    callback: (_err, msg) => {
      msg.respond(msg.data);
    },
  });
  try {
    floors.push(await measureFloor("NATS request/reply", clients, opts.floorDurationS, async () => {
      await nc.request(`${subject}.rr`, payload, { timeout: 10_000 });
    }));
  } finally {
    responder.unsubscribe();
  }

  // A scratch stream like the invocation stream (file storage), published to as the gateway does:
  // with a message id, so the server's duplicate check is part of the cost.
  const jsm = await jetstreamManager(nc);
  const stream = `VESPID_BENCH_FLOOR_${randomBytes(4).toString("hex").toUpperCase()}`;
  await jsm.streams.add({ name: stream, subjects: [`${subject}.js`], storage: StorageType.File, max_msgs: 1_000_000 });
  try {
    const js = jetstream(nc);
    floors.push(await measureFloor("JetStream publish", clients, opts.floorDurationS, async () => {
      await js.publish(`${subject}.js`, payload, { msgID: randomBytes(16).toString("hex") });
    }));
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
  }
  return floors;
}

// --- engine counters, from runner heartbeats --------------------------------------------------

interface EngineCounts {
  hits: number;
  misses: number;
  coldStarts: number;
}

function watchRunners(nc: NatsConnection) {
  const latest = new Map<string, RunnerHeartbeat>();
  const sub = nc.subscribe(RUNNER_HEARTBEAT_SUBJECT, {
    callback: (_err, msg) => {
      const parsed = RunnerHeartbeat.safeParse(msg.json());
      if (parsed.success) latest.set(parsed.data.runnerId, parsed.data);
    },
  });
  const totals = (): EngineCounts => {
    const sum = { hits: 0, misses: 0, coldStarts: 0 };
    for (const beat of latest.values()) {
      sum.hits += beat.engine?.hits ?? 0;
      sum.misses += beat.engine?.misses ?? 0;
      sum.coldStarts += beat.engine?.coldStarts ?? 0;
    }
    return sum;
  };
  return {
    totals,
    runners: () => [...latest.values()].map((b) => ({ runnerId: b.runnerId, capacity: b.capacity, isolation: b.isolation })),
    /** Waits for a heartbeat from every runner sent after now, so the counts include every call so far. */
    async fresh(): Promise<EngineCounts> {
      const since = Date.now();
      const deadline = since + 5_000;
      while (Date.now() < deadline && (latest.size === 0 || [...latest.values()].some((b) => b.at <= since))) await sleep(100);
      return totals();
    },
    stop: () => sub.unsubscribe(),
  };
}

// --- actions ----------------------------------------------------------------------------------

const jsEcho = (tag: string) => `// ${tag}\nfunction main(params) { return params; }\n`;
const cEcho = (tag: string) => `/* ${tag} */\n#include <vespid.h>\nconst char *vespid_main(const char *params) { return params; }\n`;

async function createActions(opts: Options, client: Client): Promise<string[]> {
  const specs = Array.from({ length: opts.actions }, (_, i) => {
    const kind = opts.kinds[i % opts.kinds.length]!;
    const tag = opts.sameCode ? "vespid load echo" : `vespid load echo ${i}`;
    return { name: `load-${kind}-${i}`, exec: kind === "js" ? { kind: "nodejs", code: jsEcho(tag) } : { kind: "c", code: cEcho(tag) } };
  });
  let done = 0;
  await inBatches(specs, 4, async (spec) => {
    const res = await client.request("PUT", actionPath(spec.name, "?overwrite=true"), JSON.stringify({ exec: spec.exec }));
    if (res.status !== 200) throw new Error(`PUT ${spec.name}: ${res.status} ${res.body}`);
    if (++done % 50 === 0 || done === specs.length) progress(`created ${done}/${specs.length} actions`);
  });
  return specs.map((s) => s.name);
}

/** Runs `fn` over `items`, `width` at a time. */
async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

// --- the run ----------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tty = process.stderr.isTTY;
function progress(line: string): void {
  process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
}
function endProgress(): void {
  if (tty) process.stderr.write("\n");
}

async function run(opts: Options) {
  // Target: a platform of our own, or the one named.
  let platform: Awaited<ReturnType<typeof import("../test/harness.ts").startPlatform>> | undefined;
  let nc: NatsConnection | undefined;
  let ownNc = false;
  let url = opts.url;
  let auth = opts.auth;
  if (!url) {
    progress(`starting a platform: ${opts.runners} runner(s) × ${opts.capacity} slots`);
    const { startPlatform } = await import("../test/harness.ts");
    platform = await startPlatform({ runners: opts.runners, runnerCapacity: opts.capacity, directCalls: opts.direct });
    ({ url, nc } = platform);
    auth = platform.apiKey;
  } else if (opts.nats) {
    nc = await connectNats(opts.nats, "vespid-load");
    ownNc = true;
  }
  const clients = opts.rate === undefined ? opts.concurrency : Math.min(opts.maxInflight, 1_000);
  const client = new Client(url, auth, clients);
  const runners = nc ? watchRunners(nc) : undefined;
  try {
    const actions = opts.use ?? (await createActions(opts, client));
    const body = opts.params;
    if (opts.prime) {
      let primed = 0;
      await inBatches(actions, 4, async (name) => {
        const res = await client.request("POST", actionPath(name, "?blocking=true"), body);
        if (res.status !== 200) throw new Error(`priming ${name}: ${res.status} ${res.body}`);
        if (++primed % 50 === 0 || primed === actions.length) progress(`primed ${primed}/${actions.length} actions`);
      });
    }

    // Warm-up, then the measured phase; a call counts in the phase it started in.
    const warmup = new Tally();
    const measured = new Tally(opts.blocking ? 0 : opts.checkRecords);
    let current = warmup;
    let next = 0;
    const query = opts.blocking ? "?blocking=true" : "";
    const one = async (scheduled?: number) => {
      const tally = current;
      const name = actions[next++ % actions.length]!;
      const t0 = scheduled ?? performance.now();
      let status: string;
      let ok = false;
      try {
        const res = await client.request("POST", actionPath(name, query), body);
        status = String(res.status);
        ok = res.status === (opts.blocking ? 200 : 202);
        if (ok && opts.blocking) tally.addRecord(JSON.parse(res.body));
        else if (ok) tally.keepId((JSON.parse(res.body) as { activationId: string }).activationId);
      } catch (err) {
        status = `error: ${(err as Error).message}`;
      }
      tally.add(status, performance.now() - t0, ok);
    };

    // Heartbeats come once a second, so the engine's counters cover the whole run, warm-up included.
    const engineBefore = runners ? await runners.fresh() : undefined;
    const warmupEnd = performance.now() + opts.warmupS * 1000;
    let measureStart = warmupEnd;
    let measureEnd = warmupEnd + opts.durationS * 1000;
    const stopEarly = () => (measureEnd = Math.min(measureEnd, performance.now()));
    process.once("SIGINT", stopEarly);
    const phaseTimer = setTimeout(() => {
      current = measured;
      measureStart = performance.now();
    }, opts.warmupS * 1000);
    let lastCalls = 0;
    const ticker = setInterval(() => {
      const calls = warmup.calls + measured.calls;
      const phase = current === warmup ? "warm-up" : `${((performance.now() - measureStart) / 1000).toFixed(0)} s`;
      progress(`[${phase}] ${calls - lastCalls} calls/s, ${warmup.errors + measured.errors} errors, ${calls} calls`);
      lastCalls = calls;
    }, 1000);
    let skipped = 0;
    try {
      if (opts.rate === undefined) await closedLoop(opts.concurrency, () => performance.now() >= measureEnd, () => one());
      else ({ skipped } = await openLoop(opts.rate, () => measureEnd, opts.maxInflight, one));
    } finally {
      clearInterval(ticker);
      clearTimeout(phaseTimer);
      process.removeListener("SIGINT", stopEarly);
      endProgress();
    }
    const window = (Math.max(measureEnd, measureStart) - measureStart) / 1000;

    // Non-blocking: did the queued calls run, and were they cold? A sample of their records.
    let records: { sampled: number; found: number; missing: number } | undefined;
    if (!opts.blocking && measured.ids.length > 0) {
      let found = 0;
      let checked = 0;
      const deadline = Date.now() + 60_000;
      await inBatches(measured.ids, 8, async (id) => {
        for (;;) {
          const res = await client.request("GET", `/api/v1/namespaces/_/activations/${id}`);
          if (res.status === 200) {
            found++;
            measured.addRecord(JSON.parse(res.body));
            break;
          }
          if (Date.now() > deadline) break;
          await sleep(200);
        }
        if (++checked % 100 === 0) progress(`checked ${checked}/${measured.ids.length} records`);
      });
      endProgress();
      records = { sampled: measured.ids.length, found, missing: measured.ids.length - found };
    }
    const engineAfter = runners && engineBefore ? await runners.fresh() : undefined;
    const engine = engineAfter && engineBefore && {
      hits: engineAfter.hits - engineBefore.hits,
      misses: engineAfter.misses - engineBefore.misses,
      coldStarts: engineAfter.coldStarts - engineBefore.coldStarts,
    };

    const floors = opts.floors ? await measureFloors(opts, client, nc, Math.min(clients, 200)) : [];
    const latency = summarise(measured.latencies);
    const seen = measured.cold + measured.warm;
    return {
      config: {
        target: platform ? { own: true, runners: opts.runners, capacity: opts.capacity, direct: opts.direct } : { own: false, url },
        runnersSeen: runners?.runners() ?? [],
        shape: opts.rate === undefined ? { kind: "closed", clients: opts.concurrency } : { kind: "open", rate: opts.rate, maxInflight: opts.maxInflight },
        blocking: opts.blocking,
        actions: actions.length,
        actionNames: actions.length <= 10 ? actions : [...actions.slice(0, 10), `… ${actions.length - 10} more`],
        warmupS: opts.warmupS,
        durationS: round(window, 2),
        params: JSON.parse(opts.params) as unknown,
      },
      load: {
        calls: measured.calls,
        callsPerSecond: round(measured.calls / window, 1),
        ok: measured.ok,
        errors: measured.errors,
        skipped,
        statuses: Object.fromEntries([...measured.byStatus].sort()),
        latency,
        coldStarts: measured.cold,
        warm: measured.warm,
        warmHitRatio: seen > 0 ? round(measured.warm / seen, 4) : null,
        ...(records && { records }),
        ...(engine && { engine }),
      },
      floors: floors.map((f) => ({
        ...f,
        ratios: {
          p50: f.latency.p50Ms > 0 ? round(latency.p50Ms / f.latency.p50Ms, 2) : null,
          throughput: measured.calls > 0 ? round(f.callsPerSecond / (measured.calls / window), 2) : null,
        },
      })),
    };
  } finally {
    runners?.stop();
    client.close();
    if (ownNc) await nc?.close();
    await platform?.stop();
  }
}

type Report = Awaited<ReturnType<typeof run>>;

function printReport(r: Report): void {
  const { config: c, load: l } = r;
  const shape = c.shape.kind === "closed" ? `closed loop, ${c.shape.clients} clients` : `open loop, ${c.shape.rate} calls/s`;
  const target = c.target.own ? `own platform (${c.target.runners} runner(s) × ${c.target.capacity} slots${c.target.direct === false ? ", no direct calls" : ""})` : c.target.url;
  const tiers = [...new Set(c.runnersSeen.map((x) => x.isolation ?? "kvm"))].join(", ");
  console.log(`\nVespid load: ${shape}, ${c.blocking ? "blocking" : "non-blocking"}, ${c.actions} action(s), ${c.durationS} s measured after ${c.warmupS} s warm-up`);
  console.log(`  target ${target}${tiers ? `, isolation ${tiers}` : ""}`);
  const ms = (v: number) => v.toFixed(2);
  console.log(`\n  calls        ${l.calls} in ${c.durationS} s: ${l.callsPerSecond} calls/s, ${l.errors} errors${l.skipped ? `, ${l.skipped} skipped (max in flight)` : ""}`);
  console.log(`  latency ms   p50 ${ms(l.latency.p50Ms)}  p90 ${ms(l.latency.p90Ms)}  p99 ${ms(l.latency.p99Ms)}  p99.9 ${ms(l.latency.p999Ms)}  max ${ms(l.latency.maxMs)}  mean ${ms(l.latency.meanMs)}`);
  console.log(`  statuses     ${Object.entries(l.statuses).map(([s, n]) => `${s}: ${n}`).join(", ") || "none"}`);
  const ratio = l.warmHitRatio === null ? "no records seen" : `warm-hit ratio ${(l.warmHitRatio * 100).toFixed(2)} %`;
  console.log(`  cold starts  ${l.coldStarts} (warm ${l.warm}, ${ratio}${l.records ? `; from a sample of ${l.records.sampled} records` : ""})`);
  if (l.records) console.log(`  records      ${l.records.found} of ${l.records.sampled} sampled accepted calls found, ${l.records.missing} missing`);
  if (l.engine) console.log(`  engine pool  ${l.engine.hits} idle-VM hits, ${l.engine.misses} VMs built from snapshots, ${l.engine.coldStarts} cold boots (whole run, warm-up included)`);
  if (r.floors.length === 0) return;
  console.log(`\n  floors, same clients               calls/s    p50 ms    p99 ms   load p50 ÷ floor p50   floor calls/s ÷ load calls/s`);
  for (const f of r.floors) {
    console.log(
      `  ${f.name.padEnd(32)} ${String(f.callsPerSecond).padStart(10)} ${ms(f.latency.p50Ms).padStart(9)} ${ms(f.latency.p99Ms).padStart(9)}` +
        `   ${String(f.ratios.p50 ?? "–").padStart(20)}   ${String(f.ratios.throughput ?? "–").padStart(28)}${f.errors ? `   (${f.errors} errors)` : ""}`,
    );
  }
}

let options: Options | "help";
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err;
  console.error(`load: ${err.message}\n(see --help)`);
  process.exit(2);
}
if (options === "help") {
  console.log(HELP);
} else {
  const report = await run(options);
  printReport(report);
  if (options.json) {
    await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\n  report written to ${options.json}`);
  }
}

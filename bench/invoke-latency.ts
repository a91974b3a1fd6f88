// Latency of one blocking invocation through the whole platform (HTTP → gateway → JetStream →
// scheduler → runner → virtine → KV → reply), C echo and JS echo, against two baselines measured
// in the same run: the engine alone (same virtine work from the same snapshot, no platform) and the
// HTTP floor (a GET that touches no NATS).
//   node --import=tsx bench/invoke-latency.ts [iterations=100]
import { openNativeEngine } from "../runner/engine-native.ts";
import { createImageStore } from "../runner/image-store.ts";
import { startPlatform } from "../test/harness.ts";
import { pino } from "pino";

const N = Number(process.argv[2] ?? 100);
const WARMUP = 10;

const C_ECHO = `#include <string.h>
#include <vespid.h>
const char *vespid_main(const char *params) { return params; }`;
const JS_ECHO = "function main(params) { return params; }";

function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), p90: at(0.9), p99: at(0.99) };
}

async function measure(fn: () => Promise<void>): Promise<ReturnType<typeof stats>> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return stats(samples);
}

const ms = (v: number) => `${v.toFixed(2)} ms`;
function report(name: string, r: ReturnType<typeof stats>, baseline?: { name: string; median: number }) {
  const ratio = baseline ? `  (${(r.median / baseline.median).toFixed(2)}× ${baseline.name})` : "";
  console.log(`${name.padEnd(34)} median ${ms(r.median).padStart(9)}  p90 ${ms(r.p90).padStart(9)}  p99 ${ms(r.p99).padStart(9)}${ratio}`);
}

const platform = await startPlatform({ runnerCapacity: 2 });
try {
  const params = { hello: "world", n: 42 };
  for (const [name, kind, code] of [["echo-c", "c", C_ECHO], ["echo-js", "nodejs", JS_ECHO]] as const) {
    const res = await platform.request("PUT", `/api/v1/namespaces/_/actions/${name}`, { exec: { kind, code } });
    if (res.status !== 200) throw new Error(`PUT ${name}: ${JSON.stringify(res.body)}`);
  }
  const images = createImageStore({ dataDir: platform.dataDir, logger: pino({ level: "silent" }) });
  const engine = openNativeEngine();
  console.log(`${N} sequential calls each, after ${WARMUP} warm-up calls; times are wall clock per call\n`);

  const floor = await measure(async () => {
    const r = await platform.request("GET", "/api/v1");
    if (r.status !== 200) throw new Error(`floor: ${r.status}`);
  });
  report("HTTP floor (GET /api/v1, no NATS)", floor);

  for (const [name, kind, code] of [["echo-c", "c", C_ECHO], ["echo-js", "nodejs", JS_ECHO]] as const) {
    const built = await images.build(kind, code);
    if (!built.ok) throw new Error(built.error);
    const init = kind === "nodejs" ? Buffer.from(code) : new Uint8Array();
    const engineOnly = await measure(async () => {
      // As the runner calls it: from the snapshot of this code.
      const o = await engine.run({
        image: built.image, init, params: JSON.stringify(params), memoryMb: 256, timeoutMs: 60_000, snapshotKey: built.codeHash,
      });
      if (o.status !== "ok") throw new Error(`${name}: ${o.status} ${o.error}`);
    });
    report(`${kind} echo, engine alone`, engineOnly);
    const full = await measure(async () => {
      const r = await platform.request("POST", `/api/v1/namespaces/_/actions/${name}?blocking=true&result=true`, params);
      if (r.status !== 200) throw new Error(`${name}: ${r.status} ${JSON.stringify(r.body)}`);
    });
    report(`${kind} echo, blocking over HTTP`, full, { name: "engine alone", median: engineOnly.median });
  }
} finally {
  await platform.stop();
}

// Traces the hops of sequential blocking calls through a whole platform: every NATS message the
// call causes, seen by a wildcard subscriber on the same server, with its time since the HTTP
// request was sent. Nothing in the platform is instrumented, so what it shows is what runs.
// Prints, per hop (in order of first appearance), the median time at which it was seen and the
// median gap from the hop before it, then the HTTP answer.
//   node --import=tsx bench/trace.ts [--calls N] [--kind js|c] [--url URL --auth KEY --nats URL]
import { parseArgs } from "node:util";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../infra/connect.ts";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "200" },
    kind: { type: "string", default: "js" },
    url: { type: "string" },
    auth: { type: "string" },
    nats: { type: "string" },
    raw: { type: "boolean" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log("Usage: node --import=tsx bench/trace.ts [--calls N] [--kind js|c] [--raw] [--url URL --auth UUID:KEY --nats URL]\n  --raw  also print the last three calls' messages one by one");
  process.exit(0);
}
const CALLS = Number(values.calls);
const JS_ECHO = "function main(params) { return params; }";
const C_ECHO = "#include <vespid.h>\nconst char *vespid_main(const char *params) { return params; }";

interface Seen {
  at: number;
  hop: string;
}

/** A subject with the parts that differ per call (ids, inbox tokens) replaced, so hops group. */
function hopName(msg: Msg): string {
  const subject = msg.subject
    .replace(/[0-9a-f]{32}/g, "<id>")
    .replace(/_INBOX\.[A-Za-z0-9]+(\.[A-Za-z0-9]+)?/g, "_INBOX.<x>")
    .replace(/\$JS\.ACK\.[^ ]+/, "$JS.ACK.<consumer…>")
    .replace(/(vespid\.runner\.)[A-Za-z0-9_-]+(\.assign)/, "$1<runner>$2")
    .replace(/(vespid\.scheduler\.)[A-Za-z0-9_-]+/, "$1<sched>")
    .replace(/(vespid\.result\.)[A-Za-z0-9_-]+/, "$1<gw>");
  return `${subject} (${msg.data.length} B)`;
}

async function main(): Promise<void> {
  let platform: Awaited<ReturnType<typeof import("../test/harness.ts").startPlatform>> | undefined;
  let url = values.url;
  let auth = values.auth;
  let nc: NatsConnection;
  if (url) {
    if (!auth || !values.nats) throw new Error("--url needs --auth and --nats");
    nc = await connectNats(values.nats, "vespid-trace");
  } else {
    const { startPlatform } = await import("../test/harness.ts");
    platform = await startPlatform();
    url = platform.url;
    auth = platform.apiKey;
    nc = platform.nc;
  }
  const authHeader = `Basic ${Buffer.from(auth!).toString("base64")}`;
  const call = (method: string, path: string, body: unknown) =>
    fetch(`${url}${path}`, { method, headers: { authorization: authHeader, "content-type": "application/json" }, body: JSON.stringify(body) });
  const kind = values.kind === "c" ? "c" : "nodejs:20";
  const created = await call("PUT", "/api/v1/namespaces/_/actions/trace-echo?overwrite=true", { exec: { kind, code: kind === "c" ? C_ECHO : JS_ECHO } });
  if (!created.ok) throw new Error(`creating the action: ${created.status} ${await created.text()}`);

  let current: Seen[] | undefined;
  let t0 = 0;
  const tap = nc.subscribe(">", { callback: (_err, msg) => void current?.push({ at: performance.now() - t0, hop: hopName(msg) }) });
  const traces: Seen[][] = [];
  const answers: number[] = [];
  for (let i = 0; i < CALLS + 20; i++) {
    const seen: Seen[] = [];
    // Messages of the previous call still arriving (notices, acks) belong to it, not to this one.
    await new Promise((resolve) => setTimeout(resolve, 5));
    current = seen;
    t0 = performance.now();
    const res = await call("POST", "/api/v1/namespaces/_/actions/trace-echo?blocking=true", { i });
    await res.arrayBuffer();
    const answered = performance.now() - t0;
    await new Promise((resolve) => setTimeout(resolve, 20));
    current = undefined;
    if (i >= 20) {
      traces.push(seen.filter((s) => !s.hop.startsWith("vespid.runner.heartbeat") && !s.hop.includes("$JS.API.STREAM.INFO")));
      answers.push(answered);
    }
  }
  await tap.drain();
  if (values.raw) for (const t of traces.slice(-3)) console.log(t.map((s) => `${s.at.toFixed(2)} ${s.hop}`).join("\n"), "\n---");

  // Hops in the order they usually come, with the median time each was first seen.
  const byHop = new Map<string, number[]>();
  const order = new Map<string, number[]>();
  for (const trace of traces) {
    trace.forEach((s, index) => {
      (byHop.get(s.hop) ?? byHop.set(s.hop, []).get(s.hop)!).push(s.at);
      (order.get(s.hop) ?? order.set(s.hop, []).get(s.hop)!).push(index);
    });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const hops = [...byHop.entries()]
    .filter(([, ats]) => ats.length >= traces.length / 2)
    .map(([hop, ats]) => ({ hop, at: median(ats), seenIn: ats.length }))
    .sort((a, b) => a.at - b.at);
  console.log(`\n${traces.length} sequential blocking calls of a ${values.kind} echo; times in ms since the request was sent (medians)\n`);
  console.log(`${"at".padStart(7)} ${"gap".padStart(7)}  hop`);
  let previous = 0;
  for (const { hop, at, seenIn } of hops) {
    console.log(`${at.toFixed(2).padStart(7)} ${(at - previous).toFixed(2).padStart(7)}  ${hop}${seenIn > traces.length ? ` ×${(seenIn / traces.length).toFixed(1)}` : ""}`);
    previous = at;
  }
  const answer = median(answers);
  console.log(`${answer.toFixed(2).padStart(7)} ${(answer - previous).toFixed(2).padStart(7)}  HTTP answer received`);
  console.log(`\nmessages per call: ${median(traces.map((t) => t.length))} (heartbeats and stream-info polls left out)`);
  await platform?.stop();
}

await main();
process.exit(0);

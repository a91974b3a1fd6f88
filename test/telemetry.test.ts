// Telemetry on a real platform: the per-activation figures (runTime, cpuTime, memoryPeak, warm),
// GET /metrics (parsed, checked against the calls made here) and GET /api/v1/stats (only the
// caller's namespace; rates that move). The process tier and the label cap: telemetry-process.test.ts.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import anyTest, { type TestFn } from "ava";
import { Admin } from "../admin/namespaces.ts";
import { annotation, api, startPlatform, type Platform } from "./harness.ts";
import { ECHO_JS, FAIL_JS, MEMORY_BOMB_JS, metricsOf, sampleValue, seriesOf, waitFor } from "./telemetry-helpers.ts";

const test = anyTest as TestFn<{ platform: Platform; token: string; otherKey: string }>;

test.before(async (t) => {
  const platform = await startPlatform();
  const token = (await readFile(join(platform.dataDir, "metrics.token"), "utf8")).trim();
  const { apiKey: otherKey } = await (await Admin.open(platform.nc)).createNamespace("telemetry-other");
  t.context = { platform, token, otherKey };
});
test.after.always(async (t) => t.context.platform?.stop());

const put = async (platform: Platform, name: string, code: string, auth?: string) => {
  const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind: "nodejs:20", code } }, undefined, auth ? { auth } : undefined);
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
};
const invoke = async (platform: Platform, name: string, params: unknown = {}, auth?: string) =>
  (await platform.request("POST", `${api(`actions/${name}`)}?blocking=true`, params, undefined, auth ? { auth } : undefined)).body;

test.serial("the metrics token is made at first start, mode 0600; /metrics refuses a missing or wrong token with 401", async (t) => {
  const { platform, token } = t.context;
  t.true(token.length >= 20);
  t.is((await stat(join(platform.dataDir, "metrics.token"))).mode & 0o777, 0o600);
  const none = await platform.request("GET", "/metrics", undefined, undefined, { auth: false });
  t.is(none.status, 401);
  t.regex(none.body.error, /Bearer/);
  t.is((await platform.request("GET", "/metrics", undefined, { authorization: "Bearer wrong" })).status, 401);
  // An API key is not the metrics token.
  t.is((await platform.request("GET", "/metrics")).status, 401);
});

test.serial("activation records carry runTime, cpuTime, memoryPeak and warm; initTime only on the cold call", async (t) => {
  const { platform } = t.context;
  await put(platform, "fig-echo", ECHO_JS);
  const first = await invoke(platform, "fig-echo", { n: 1 });
  const second = await invoke(platform, "fig-echo", { n: 2 });
  t.true(first.response.success, JSON.stringify(first.response));
  t.is(annotation(first, "warm"), false);
  t.true(annotation(first, "initTime") > 0);
  t.is(annotation(second, "warm"), true);
  t.is(annotation(second, "initTime"), undefined);
  for (const record of [first, second]) {
    const runTime = annotation(record, "runTime");
    t.true(typeof runTime === "number" && runTime > 0 && runTime <= record.duration + 1, `runTime ${runTime}, duration ${record.duration}`);
    t.true(annotation(record, "cpuTime") >= 0);
    t.true(annotation(record, "memoryPeak") > 0);
    t.true(annotation(record, "waitTime") >= 0);
  }
});

test.serial("a memory bomb's memoryPeak is larger than an echo's", async (t) => {
  const { platform } = t.context;
  await put(platform, "fig-bomb", MEMORY_BOMB_JS);
  const bomb = await invoke(platform, "fig-bomb");
  const echo = await invoke(platform, "fig-echo");
  t.true(bomb.response.success, JSON.stringify(bomb.response));
  const [big, small] = [annotation(bomb, "memoryPeak"), annotation(echo, "memoryPeak")];
  t.true(big > small + 16 * 1024 * 1024, `bomb ${big} bytes, echo ${small} bytes`);
  // It also burnt more CPU than an echo.
  t.true(annotation(bomb, "cpuTime") > annotation(echo, "cpuTime"));
});

test.serial("/metrics counts exactly the calls made, by status, with histograms, pool and default metrics", async (t) => {
  const { platform, token } = t.context;
  // Code of their own: a snapshot is shared by every action of the same code, and each should cold-start once.
  await put(platform, "m-ok", `${ECHO_JS} // m-ok`);
  await put(platform, "m-fail", `${FAIL_JS} // m-fail`);
  const N = 5;
  const M = 3;
  for (let i = 0; i < N; i++) t.true((await invoke(platform, "m-ok", { i })).response.success);
  for (let i = 0; i < M; i++) t.is((await invoke(platform, "m-fail")).response.status, "application error");
  const ok = { namespace: "guest", action: "m-ok" };
  const fail = { namespace: "guest", action: "m-fail" };
  // The runner publishes once a second: wait until the gateway has heard of all the calls.
  const text = await waitFor(async () => {
    const res = await platform.request("GET", "/metrics", undefined, { authorization: `Bearer ${token}` });
    t.is(res.status, 200);
    t.regex(res.headers["content-type"]!, /text\/plain/);
    const m = metricsOf(res.body);
    const done = sampleValue(m, "vespid_activations_total", { ...ok, status: "success" }) === N &&
      sampleValue(m, "vespid_activations_total", { ...fail, status: "application_error" }) === M;
    return done ? m : undefined;
  }, 10_000, "the runner's metrics to count every call");
  t.is(sampleValue(text, "vespid_activations_total", { ...ok, status: "application_error" }), undefined);
  t.true(["kvm", "process"].includes(seriesOf(text, "vespid_activations_total", ok)[0]!.labels.tier!));
  t.is(seriesOf(text, "vespid_activations_total", ok)[0]!.labels.runner, platform.runnerIds[0]);
  // Histograms: _count equals the calls, +Inf bucket too; one cold start each.
  for (const [labels, n] of [[ok, N], [fail, M]] as const) {
    t.is(sampleValue(text, "vespid_activation_duration_seconds_count", labels), n);
    t.is(sampleValue(text, "vespid_activation_duration_seconds_bucket", { ...labels, le: "+Inf" }), n);
    t.is(sampleValue(text, "vespid_activation_wait_seconds_count", labels), n);
    t.is(sampleValue(text, "vespid_activation_cpu_seconds_count", labels), n);
    t.is(sampleValue(text, "vespid_activation_memory_peak_bytes_count", labels), n);
    t.is(sampleValue(text, "vespid_activation_init_seconds_count", labels), 1);
    t.is(sampleValue(text, "vespid_activation_starts_total", { ...labels, start: "cold" }), 1);
    t.is(sampleValue(text, "vespid_activation_starts_total", { ...labels, start: "warm" }), n - 1);
  }
  // Pool counters and gauges of the runner, the gateway's own counters, default process metrics.
  t.true(sampleValue(text, "vespid_pool_hits_total", { runner: platform.runnerIds[0]! })! >= N - 1);
  t.true(sampleValue(text, "vespid_pool_cold_starts_total", { runner: platform.runnerIds[0]! })! >= 2);
  t.is(sampleValue(text, "vespid_runner_capacity", { runner: platform.runnerIds[0]! }), 2);
  t.not(sampleValue(text, "vespid_virtines_active", { runner: platform.runnerIds[0]! }), undefined);
  t.not(sampleValue(text, "vespid_virtines_idle", { runner: platform.runnerIds[0]! }), undefined);
  t.true(sampleValue(text, "vespid_invocations_accepted_total", {})! >= N + M);
  t.true(sampleValue(text, "vespid_http_requests_total", { route: "actions", status: "200" })! >= N + M);
  t.true(sampleValue(text, "process_cpu_seconds_total", { runner: platform.runnerIds[0]! })! > 0);
  t.true(sampleValue(text, "process_resident_memory_bytes", { runner: platform.runnerIds[0]! })! > 0);
  t.not(sampleValue(text, "nodejs_heap_size_used_bytes", {}), undefined);
  t.is(text.types.get("vespid_activations_total"), "counter");
  t.is(text.types.get("vespid_activation_duration_seconds"), "histogram");
  // Every metric the Grafana dashboard queries is one /metrics has.
  const dashboard = JSON.parse(await readFile(new URL("../infra/grafana/vespid-dashboard.json", import.meta.url), "utf8"));
  const queried = new Set<string>(JSON.stringify(dashboard).match(/\b(vespid|process|nodejs)_[a-z_]+/g)!.map((n: string) => n.replace(/_(bucket|sum|count)$/, "")));
  t.true(queried.size >= 10);
  for (const family of queried) t.true(text.types.has(family), `the dashboard queries ${family}, which /metrics does not have`);
});

test.serial("invocations the gateway refuses are counted by reason", async (t) => {
  const { platform, token } = t.context;
  const admin = await Admin.open(platform.nc);
  const { apiKey } = await admin.createNamespace("telemetry-limited");
  await put(platform, "limited", `${ECHO_JS} // limited`, apiKey);
  await admin.setLimits("telemetry-limited", { perMinute: 0 });
  // The gateway hears of the new limit through a KV watch: poll until it refuses.
  await waitFor(async () => {
    const res = await platform.request("POST", api("actions/limited"), {}, undefined, { auth: apiKey });
    return res.status === 429 ? res : undefined;
  }, 10_000, "the limit to take effect");
  const m = metricsOf((await platform.request("GET", "/metrics", undefined, { authorization: `Bearer ${token}` })).body);
  t.true((sampleValue(m, "vespid_invocations_refused_total", { reason: "rate_limited" }) ?? 0) >= 1);
  t.true((sampleValue(m, "vespid_http_requests_total", { route: "actions", status: "429" }) ?? 0) >= 1);
});

test.serial("/api/v1/stats shows the caller's namespace only, and its rates move after calls", async (t) => {
  const { platform, otherKey } = t.context;
  await put(platform, "secret-action-name", ECHO_JS, otherKey);
  await invoke(platform, "secret-action-name", {}, otherKey);
  const unauth = await platform.request("GET", "/api/v1/stats", undefined, undefined, { auth: false });
  t.is(unauth.status, 401);
  for (let i = 0; i < 6; i++) await invoke(platform, "m-ok", { i });
  const stats = await waitFor(async () => {
    const res = await platform.request("GET", "/api/v1/stats");
    t.is(res.status, 200);
    return res.body.invocations.perSecond > 0 && res.body.latency.p50 !== null ? res.body : undefined;
  }, 15_000, "the stats to show the calls");
  t.is(stats.namespace, "guest");
  t.is(stats.windowSeconds, 10);
  t.true(Math.abs(stats.at - Date.now()) < 60_000);
  t.true(stats.invocations.total >= 6);
  t.true(stats.invocations.warmHitRatio > 0 && stats.invocations.warmHitRatio <= 1);
  t.true(stats.latency.p50 > 0 && stats.latency.p50 <= stats.latency.p90 && stats.latency.p90 <= stats.latency.p99);
  t.true(stats.latency.waitP50 >= 0 && stats.latency.waitP50 <= stats.latency.waitP99);
  t.is(stats.runners.length, 1);
  const [runner] = stats.runners;
  t.is(runner.runnerId, platform.runnerIds[0]);
  t.is(runner.capacity, 2);
  t.true(runner.rssBytes > 0 && runner.heapUsedBytes > 0);
  t.true(runner.cpuPercent >= 0);
  t.true(runner.poolHitsPerSecond > 0);
  // Nothing of the other namespace: not its name, not its action's.
  const text = JSON.stringify(stats);
  t.false(text.includes("telemetry-other"));
  t.false(text.includes("secret-action-name"));
  // The other namespace sees its own figures, and none of guest's action names.
  const theirs = await waitFor(async () => {
    const res = await platform.request("GET", "/api/v1/stats", undefined, undefined, { auth: otherKey });
    return res.body.invocations.total >= 1 ? res.body : undefined;
  }, 10_000, "the other namespace's stats");
  t.is(theirs.namespace, "telemetry-other");
  t.false(JSON.stringify(theirs).includes("m-ok"));
  t.false(JSON.stringify(theirs).includes("\"guest\""));
});

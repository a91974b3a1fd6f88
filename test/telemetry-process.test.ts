// Telemetry on a runner of the process tier (sandboxes), with VESPID_METRICS_MAX_ACTIONS=2: the
// per-activation figures there, and the label cap folding further actions into action="_other".
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import anyTest, { type TestFn } from "ava";
import { isolationAvailable } from "../runner/engine-native.ts";
import { annotation, api, startPlatform, type Platform } from "./harness.ts";
import { ECHO_JS, MEMORY_BOMB_JS, metricsOf, sampleValue, seriesOf, waitFor } from "./telemetry-helpers.ts";

const test = anyTest as TestFn<{ platform: Platform; token: string }>;
const processTier = isolationAvailable("process");

test.before(async (t) => {
  if (!processTier.ok) return;
  // Read by the runner when it starts; this file's worker process is its own.
  process.env.VESPID_METRICS_MAX_ACTIONS = "2";
  const platform = await startPlatform({ runnerIsolation: "process" });
  delete process.env.VESPID_METRICS_MAX_ACTIONS;
  const token = (await readFile(join(platform.dataDir, "metrics.token"), "utf8")).trim();
  t.context = { platform, token };
});
test.after.always(async (t) => t.context.platform?.stop());

const maybe = processTier.ok ? test.serial : test.serial.skip;
if (!processTier.ok) console.log(`process tier unavailable here (${processTier.why}): its telemetry tests are skipped`);

const put = async (platform: Platform, name: string, code: string) => {
  const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind: "nodejs:20", code } });
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
};
const invoke = async (platform: Platform, name: string) => (await platform.request("POST", `${api(`actions/${name}`)}?blocking=true`, {})).body;

maybe("process tier: records carry runTime, cpuTime, memoryPeak and warm; a memory bomb peaks higher than an echo", async (t) => {
  const { platform } = t.context;
  await put(platform, "p-echo", ECHO_JS);
  await put(platform, "p-bomb", MEMORY_BOMB_JS);
  const cold = await invoke(platform, "p-echo");
  const warm = await invoke(platform, "p-echo");
  const bomb = await invoke(platform, "p-bomb");
  t.is(annotation(warm, "isolation"), "process");
  t.is(annotation(cold, "warm"), false);
  t.true(annotation(cold, "initTime") > 0);
  t.is(annotation(warm, "warm"), true);
  t.is(annotation(warm, "initTime"), undefined);
  for (const record of [cold, warm, bomb]) {
    t.true(record.response.success, JSON.stringify(record.response));
    // duration is whole ms of the wall clock (start and end each cut to the ms), runTime µs-exact.
    t.true(annotation(record, "runTime") > 0 && annotation(record, "runTime") <= record.duration + 1, `runTime ${annotation(record, "runTime")}, duration ${record.duration}`);
    t.true(annotation(record, "cpuTime") >= 0);
    t.true(annotation(record, "memoryPeak") > 0);
  }
  t.true(annotation(bomb, "memoryPeak") > annotation(warm, "memoryPeak") + 16 * 1024 * 1024);
  // The sandbox's own CPU counts: building 40 MiB of strings takes more than an echo.
  t.true(annotation(bomb, "cpuTime") > annotation(warm, "cpuTime"));
});

maybe("with VESPID_METRICS_MAX_ACTIONS=2, actions beyond the first two are labelled _other (namespace kept)", async (t) => {
  const { platform, token } = t.context;
  // p-echo and p-bomb took the two label pairs; two more actions come in as _other.
  await put(platform, "p-third", `${ECHO_JS} // third`);
  await put(platform, "p-fourth", `${ECHO_JS} // fourth`);
  await invoke(platform, "p-third");
  await invoke(platform, "p-fourth");
  const m = await waitFor(async () => {
    const parsed = metricsOf((await platform.request("GET", "/metrics", undefined, { authorization: `Bearer ${token}` })).body);
    return sampleValue(parsed, "vespid_activations_total", { namespace: "guest", action: "_other" }) === 2 ? parsed : undefined;
  }, 10_000, "the two capped actions to be counted as _other");
  const actions = new Set(seriesOf(m, "vespid_activations_total").map((s) => s.labels.action));
  t.deepEqual([...actions].sort(), ["_other", "p-bomb", "p-echo"]);
  t.is(sampleValue(m, "vespid_activations_total", { action: "p-third" }), undefined);
  t.is(sampleValue(m, "vespid_activation_duration_seconds_count", { namespace: "guest", action: "_other" }), 2);
  t.is(seriesOf(m, "vespid_activations_total", { action: "_other" })[0]!.labels.tier, "process");
  t.is(sampleValue(m, "vespid_runner_info", { isolation: "process" }), 1);
});

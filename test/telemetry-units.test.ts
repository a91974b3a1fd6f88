// The pure parts of telemetry: label caps, reading figures off records, window arithmetic
// (counters that restart, histogram quantiles) and route groups.
import test from "ava";
import { MAX_NAMESPACE_LABELS, maxActionLabels, OTHER_LABEL, RunnerMetrics } from "../runner/metrics.ts";
import { grown, grownBuckets, quantile, sampleOf } from "../gateway/telemetry-stats.ts";
import { routeGroup } from "../gateway/telemetry.ts";

const record = (namespace: string, name: string, annotations: Array<{ key: string; value: unknown }> = []) => ({
  namespace, name, duration: 5, response: { status: "success" as const, statusCode: 0, success: true, result: {} }, annotations,
});

test("label pairs beyond maxActions become action _other; namespaces beyond the cap become _other too", (t) => {
  const m = new RunnerMetrics({ runnerId: "r1", isolation: "kvm", capacity: 1, maxActions: 3 });
  t.deepEqual(m.labels("a", "x"), { namespace: "a", action: "x" });
  t.deepEqual(m.labels("a", "y"), { namespace: "a", action: "y" });
  t.deepEqual(m.labels("b", "x"), { namespace: "b", action: "x" });
  t.deepEqual(m.labels("b", "z"), { namespace: "b", action: OTHER_LABEL });
  t.deepEqual(m.labels("a", "x"), { namespace: "a", action: "x" }, "a pair seen before keeps its labels");
  const wide = new RunnerMetrics({ runnerId: "r2", isolation: "kvm", capacity: 1, maxActions: 10_000 });
  for (let i = 0; i < MAX_NAMESPACE_LABELS; i++) t.is(wide.labels(`ns${i}`, "a").namespace, `ns${i}`);
  t.deepEqual(wide.labels("one-too-many", "a"), { namespace: OTHER_LABEL, action: OTHER_LABEL });
});

test("observe counts a record's status and figures; the registry's JSON reduces to a sample", async (t) => {
  const m = new RunnerMetrics({ runnerId: "r1", isolation: "process", capacity: 2 });
  m.observe(record("ns", "a", [{ key: "waitTime", value: 3 }, { key: "initTime", value: 40 }, { key: "cpuTime", value: 1.5 }, { key: "memoryPeak", value: 3e6 }, { key: "warm", value: false }]));
  m.observe(record("ns", "a", [{ key: "waitTime", value: 1 }, { key: "warm", value: true }]));
  m.observe({ ...record("ns", "a"), response: { status: "application error", statusCode: 1, success: false, result: {} } });
  // Figures of the wrong type are ignored, not counted.
  m.observe(record("ns", "b", [{ key: "cpuTime", value: "lots" }, { key: "warm", value: "yes" }]));
  const sample = sampleOf(await m.registry.getMetricsAsJSON(), 1000);
  const ns = sample.namespaces.get("ns")!;
  t.is(ns.total, 4);
  t.is(ns.errors, 1);
  t.is(ns.cold, 1);
  t.is(ns.warm, 1);
  t.is(ns.duration.get(Infinity), 4);
  t.is(ns.wait.get(Infinity), 2);
  t.is(sample.initCount, 1);
  t.is(sample.initSum, 0.04);
  const text = await m.registry.metrics();
  t.regex(text, /vespid_activation_cpu_seconds_count\{runner="r1",namespace="ns",action="a"\} 1\n/);
  t.regex(text, /vespid_activations_total\{namespace="ns",action="a",status="application_error",tier="process",runner="r1"\} 1/);
});

test("counters that went down restarted: they count from zero", (t) => {
  t.is(grown(10, 4), 6);
  t.is(grown(3, 40), 3);
  t.deepEqual([...grownBuckets(new Map([[1, 5], [Infinity, 7]]), new Map([[1, 2], [Infinity, 3]]))], [[1, 3], [Infinity, 4]]);
  t.deepEqual([...grownBuckets(new Map([[1, 1], [Infinity, 1]]), new Map([[1, 2], [Infinity, 3]]))], [[1, 1], [Infinity, 1]]);
});

test("quantiles interpolate within buckets, as histogram_quantile does", (t) => {
  const buckets = new Map([[0.01, 50], [0.1, 90], [1, 100], [Infinity, 100]]);
  t.is(quantile(0.5, buckets), 0.01);
  t.true(Math.abs(quantile(0.7, buckets)! - 0.055) < 1e-9);
  t.true(Math.abs(quantile(0.99, buckets)! - 0.91) < 1e-9);
  t.is(quantile(0.5, new Map([[1, 0], [Infinity, 0]])), undefined);
  t.is(quantile(0.99, new Map([[1, 1], [Infinity, 10]])), 1, "in the +Inf bucket: the largest finite bound");
});

test("route groups and VESPID_METRICS_MAX_ACTIONS", (t) => {
  t.is(routeGroup("/api/v1/namespaces/_/actions/x"), "actions");
  t.is(routeGroup("/api/v1/namespaces/guest/activations"), "activations");
  t.is(routeGroup("/api/v1/namespaces"), "namespaces");
  t.is(routeGroup("/api/v1/web/guest/default/x.json"), "web");
  t.is(routeGroup("/metrics"), "metrics");
  t.is(routeGroup("/nowhere"), "other");
  t.is(maxActionLabels({}), 200);
  t.is(maxActionLabels({ VESPID_METRICS_MAX_ACTIONS: "7" }), 7);
  t.throws(() => maxActionLabels({ VESPID_METRICS_MAX_ACTIONS: "0" }), { message: /positive integer/ });
  t.throws(() => maxActionLabels({ VESPID_METRICS_MAX_ACTIONS: "lots" }), { message: /VESPID_METRICS_MAX_ACTIONS/ });
});

// One activation as the playground and the activation list show it: status, isolation tier,
// timings, result and logs — every value rendered as text.
import { h, pre, type Child } from "./dom.ts";
import { annotation, bytes, json, ms, statusName, time } from "./format.ts";

export interface ActivationRecord {
  activationId: string;
  name: string;
  namespace: string;
  version?: string;
  start?: number;
  end?: number;
  duration?: number;
  response?: { status?: string; statusCode?: number; success?: boolean; result?: unknown };
  logs?: string[];
  annotations?: Array<{ key: string; value: unknown }>;
}

/** The timings an activation may carry: OpenWhisk's own, then Vespid's telemetry (when recorded). */
export function timings(record: ActivationRecord): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ["Wait", ms(annotation(record, "waitTime"))],
    ["Init", ms(annotation(record, "initTime"))],
    ["Duration", ms(record.duration)],
  ];
  const runTime = annotation(record, "runTime");
  if (runTime !== undefined) rows.push(["Run", ms(runTime)]);
  const cpuTime = annotation(record, "cpuTime");
  if (cpuTime !== undefined) rows.push(["CPU", ms(cpuTime)]);
  const memoryPeak = annotation(record, "memoryPeak");
  if (memoryPeak !== undefined) rows.push(["Memory peak", bytes(memoryPeak)]);
  const warm = annotation(record, "warm");
  if (warm !== undefined) rows.push(["Start", warm === true ? "warm (snapshot)" : "cold"]);
  return rows;
}

export function statusBadge(record: ActivationRecord): HTMLElement {
  const success = record.response?.success ?? record.response?.statusCode === 0;
  return h("span", { class: `badge ${success ? "ok" : "bad"}`, attrs: { "data-status": success ? "success" : "failure" } }, record.response?.status ?? statusName(record.response?.statusCode));
}

export function isolationBadge(record: ActivationRecord): HTMLElement | null {
  const tier = annotation(record, "isolation");
  if (tier === undefined) return null;
  return h("span", { class: "badge tier", attrs: { title: "isolation tier", "data-testid": "isolation" } }, `isolation: ${String(tier)}`);
}

/** The full record: header, timings, result and logs. `extra` goes at the end of the header. */
export function activationDetail(record: ActivationRecord, extra?: Child): HTMLElement {
  const logs = record.logs ?? [];
  return h(
    "div",
    { class: "activation", attrs: { "data-activation-id": record.activationId } },
    h(
      "div",
      { class: "activation-head" },
      statusBadge(record),
      isolationBadge(record),
      h("span", { class: "mono" }, record.name),
      h("span", { class: "muted mono", attrs: { title: "activation id" } }, record.activationId),
      extra,
    ),
    h("dl", { class: "timings", attrs: { "data-testid": "timings" } }, ...timings(record).flatMap(([label, value]) => [h("dt", {}, label), h("dd", {}, value)])),
    h("p", { class: "muted small" }, `started ${time(record.start)}${record.version ? ` · version ${record.version}` : ""}`),
    h("h3", {}, "Result"),
    h("div", { attrs: { "data-testid": "result" } }, pre(json(record.response?.result ?? null), "code result")),
    h("h3", {}, `Logs (${logs.length})`),
    h("div", { attrs: { "data-testid": "logs" } }, pre(logs.length ? logs.join("\n") : "(no logs)", "code logs")),
  );
}

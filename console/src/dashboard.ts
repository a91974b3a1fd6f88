// The dashboard: polls GET /api/v1/stats (see gateway/routes/stats.ts) every 1.5 s while it is
// shown, and charts the last few minutes with uPlot. Per-runner charts get one series per live
// runner; they are rebuilt when the set of runners changes.
import uPlot from "uplot";
// Type only (erased by the bundler): the page does not ship zod or the contracts.
import type { PlatformStats } from "../../contracts/schemas.ts";
import { h, replace, table } from "./dom.ts";
import { bytes, ms, number } from "./format.ts";
import { errorText, notice, type Context, type View } from "./view.ts";

const POLL_MS = 1500;
/** Points kept per series: 4 minutes at one per poll. */
const HISTORY = 160;
const COLORS = ["#3b82f6", "#ef4444", "#f59e0b", "#10b981", "#8b5cf6", "#ec4899", "#14b8a6", "#64748b"];

type Series = { label: string; value: (s: PlatformStats) => number | null };

interface Chart {
  element: HTMLElement;
  push(stats: PlatformStats): void;
  resize(): void;
}

const sum = (s: PlatformStats, pick: (r: PlatformStats["runners"][number]) => number): number => s.runners.reduce((total, r) => total + (pick(r) ?? 0), 0);

/** A chart whose series are fixed (`series`) or follow the live runners (`perRunner`). */
function chart(title: string, unit: string, format: (v: number) => string, series: Series[] | { perRunner: (r: PlatformStats["runners"][number]) => number | null }): Chart {
  const host = h("div", { class: "chart-plot" });
  const element = h("figure", { class: "chart", attrs: { "data-chart": title } }, h("figcaption", {}, title, h("span", { class: "muted" }, ` ${unit}`)), host);
  const times: number[] = [];
  /** One value array per series label, aligned with `times` (null where there was no value). */
  const values = new Map<string, Array<number | null>>();
  let plot: uPlot | undefined;
  let labels: string[] = [];

  const width = () => Math.max(240, host.clientWidth || 400);

  function build(): void {
    plot?.destroy();
    plot = new uPlot(
      {
        width: width(),
        height: 180,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] } },
        axes: [{ stroke: "#64748b", grid: { stroke: "#e2e8f0" } }, { stroke: "#64748b", grid: { stroke: "#e2e8f0" }, size: 76, values: (_u, ticks) => ticks.map(format) }],
        series: [{}, ...labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? "–" : format(v)) }))],
      },
      data(),
      host,
    );
  }

  const data = (): uPlot.AlignedData => [times, ...labels.map((l) => values.get(l) ?? [])] as uPlot.AlignedData;

  return {
    element,
    push(stats) {
      const now: Array<[string, number | null]> = Array.isArray(series)
        ? series.map((s) => [s.label, s.value(stats)])
        : stats.runners.map((r) => [r.runnerId, series.perRunner(r)]);
      times.push(stats.at / 1000);
      const seen = new Set<string>();
      for (const [label, value] of now) {
        seen.add(label);
        let column = values.get(label);
        if (!column) values.set(label, (column = new Array(times.length - 1).fill(null)));
        column.push(value);
      }
      for (const [label, column] of values) if (!seen.has(label)) column.push(null);
      if (times.length > HISTORY) {
        times.shift();
        for (const column of values.values()) column.shift();
      }
      // Series that held nothing for the whole history (a runner gone for minutes) are dropped.
      for (const [label, column] of values) if (column.every((v) => v === null)) values.delete(label);
      const nextLabels = [...values.keys()];
      if (!plot || nextLabels.join("\u0000") !== labels.join("\u0000")) {
        labels = nextLabels;
        build();
      } else plot.setData(data());
    },
    resize() {
      plot?.setSize({ width: width(), height: 180 });
    },
  };
}

export function dashboard(ctx: Context): View {
  const status = h("div", { class: "notice" });
  const tiles = h("div", { class: "tiles", attrs: { id: "stat-tiles" } });
  const runnersHost = h("div", { class: "list-host", attrs: { id: "runner-table" } });
  const perSecond = (v: number) => number(v, v < 10 ? 2 : 0);
  const charts: Chart[] = [
    chart("Invocations", "per second", perSecond, [
      { label: "all", value: (s) => s.invocations.perSecond },
      { label: "errors", value: (s) => s.invocations.errorsPerSecond },
      { label: "cold starts", value: (s) => s.invocations.coldStartsPerSecond },
    ]),
    chart("Latency", "ms", (v) => number(v, v < 10 ? 1 : 0), [
      { label: "p50", value: (s) => s.latency.p50 },
      { label: "p90", value: (s) => s.latency.p90 },
      { label: "p99", value: (s) => s.latency.p99 },
      { label: "wait p50", value: (s) => s.latency.waitP50 },
      { label: "wait p99", value: (s) => s.latency.waitP99 },
    ]),
    chart("Warm pool", "per second", perSecond, [
      { label: "hits", value: (s) => sum(s, (r) => r.poolHitsPerSecond) },
      { label: "misses", value: (s) => sum(s, (r) => r.poolMissesPerSecond) },
    ]),
    chart("Virtines", "guests", (v) => number(v, 0), [
      { label: "active", value: (s) => sum(s, (r) => r.activeVirtines) },
      { label: "idle (warm)", value: (s) => sum(s, (r) => r.idleVirtines) },
    ]),
    chart("CPU per runner", "% of a core", (v) => number(v, 0), { perRunner: (r) => r.cpuPercent }),
    chart("Memory per runner", "RSS", bytes, { perRunner: (r) => r.rssBytes }),
  ];
  const grid = h("div", { class: "charts" }, ...charts.map((c) => c.element));

  let timer: ReturnType<typeof setTimeout> | undefined;
  let visible = false;
  /** A request under way: showing the page again must not start a second polling loop. */
  let polling = false;
  let updates = 0;
  const resizer = new ResizeObserver(() => charts.forEach((c) => c.resize()));

  function tile(label: string, value: string, id: string): HTMLElement {
    return h("div", { class: "tile", attrs: { "data-tile": id } }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label));
  }

  function render(stats: PlatformStats): void {
    updates++;
    element.setAttribute("data-updates", String(updates));
    const ratio = stats.invocations.warmHitRatio;
    replace(
      tiles,
      tile("invocations (total)", String(stats.invocations.total), "total"),
      tile(`per second (last ${stats.windowSeconds} s)`, number(stats.invocations.perSecond, 2), "rate"),
      tile("warm hit ratio", ratio === null ? "–" : `${Math.round(ratio * 100)} %`, "warm"),
      tile("p99 duration", ms(stats.latency.p99), "p99"),
      tile("runners", String(stats.runners.length), "runners"),
    );
    replace(
      runnersHost,
      stats.runners.length === 0
        ? h("p", { class: "muted" }, "No runner is live.")
        : table(
            [
              { label: "Runner", cell: (r) => r.runnerId, class: "mono" },
              { label: "Tier", cell: (r) => r.isolation },
              { label: "Slots", cell: (r) => `${r.inflight}/${r.capacity}`, class: "num" },
              { label: "Active", cell: (r) => String(r.activeVirtines), class: "num" },
              { label: "Idle", cell: (r) => String(r.idleVirtines), class: "num" },
              { label: "Pool hits/s", cell: (r) => number(r.poolHitsPerSecond, 2), class: "num" },
              { label: "Misses/s", cell: (r) => number(r.poolMissesPerSecond, 2), class: "num" },
              { label: "Cold start", cell: (r) => ms(r.coldStartMs), class: "num" },
              { label: "CPU", cell: (r) => `${number(r.cpuPercent, 1)} %`, class: "num" },
              { label: "RSS", cell: (r) => bytes(r.rssBytes), class: "num" },
              { label: "Heap", cell: (r) => bytes(r.heapUsedBytes), class: "num" },
            ],
            stats.runners,
          ),
    );
    for (const c of charts) c.push(stats);
  }

  async function poll(): Promise<void> {
    timer = undefined;
    polling = true;
    try {
      const res = await ctx.api.request("GET", "/api/v1/stats");
      if (res.status === 404) notice(status, "error", "This gateway serves no /api/v1/stats: the dashboard has nothing to show.");
      else if (res.status !== 200) notice(status, "error", `Stats: ${res.status}: ${res.body?.error ?? "no message"}`);
      else {
        notice(status, "info", `Namespace ${stats(res.body).namespace} · updated ${new Date(res.body.at).toLocaleTimeString()}`);
        render(res.body);
      }
    } catch (err) {
      notice(status, "error", `Stats: ${errorText(err)}`);
    }
    polling = false;
    if (visible) timer = setTimeout(() => void poll(), POLL_MS);
  }
  const stats = (body: unknown) => body as PlatformStats;

  const element = h(
    "section",
    { class: "view dashboard" },
    h("div", { class: "toolbar" }, h("h2", {}, "Dashboard"), h("span", { class: "muted" }, `your namespace's calls, and every runner; refreshed every ${POLL_MS / 1000} s`)),
    status,
    tiles,
    grid,
    h("h3", {}, "Runners"),
    runnersHost,
  );

  return {
    element,
    show() {
      visible = true;
      resizer.observe(grid);
      if (!timer && !polling) void poll();
    },
    hide() {
      visible = false;
      resizer.disconnect();
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

// The lists: actions, packages, triggers and rules (paged as the API pages: skip and limit), and
// activations (filtered by action name, with the selected one's detail beside the list).
import { entityPath } from "./api.ts";
import { activationDetail, isolationBadge, statusBadge, type ActivationRecord } from "./activation-view.ts";
import { h, pre, replace, table, type Child } from "./dom.ts";
import { annotation, json, ms, time } from "./format.ts";
import { button, errorText, notice, type Context, type View } from "./view.ts";

interface Column<T> {
  label: string;
  cell: (row: T) => Child;
  class?: string;
}

interface Entity {
  name: string;
  namespace: string;
  version?: string;
  updated?: number;
  publish?: boolean;
  annotations?: Array<{ key: string; value: unknown }>;
}

/** `pkg/name` for an entity in a package (its namespace is `ns/pkg`), else the name. */
const qualified = (e: Entity): string => (e.namespace.includes("/") ? `${e.namespace.slice(e.namespace.indexOf("/") + 1)}/${e.name}` : e.name);

/** Skip/limit paging controls; `load` is called with the new skip. */
function pager(limit: () => number, load: (skip: number) => void) {
  let skip = 0;
  const label = h("span", { class: "muted page-label" });
  const prev = button("← Newer", () => load((skip = Math.max(0, skip - limit()))));
  const next = button("Older →", () => load((skip += limit())));
  prev.classList.add("page-prev");
  next.classList.add("page-next");
  return {
    element: h("span", { class: "pager" }, prev, label, next),
    get skip() {
      return skip;
    },
    reset: () => (skip = 0),
    /** After a page arrived: what it holds, and whether there can be more. */
    update(count: number) {
      prev.disabled = skip === 0;
      next.disabled = count < limit();
      replace(label, count === 0 ? (skip === 0 ? "none" : "no more") : `${skip + 1}–${skip + count}`);
    },
  };
}

/** A paged list of one collection; a click opens the row (`onOpen`) or shows its JSON as text. */
function collectionView<T extends Entity>(ctx: Context, opts: { title: string; collection: string; columns: Column<T>[]; onOpen?: (row: T) => void; empty: string }): View {
  const LIMIT = 30;
  const status = h("div", { class: "notice" });
  const listHost = h("div", { class: "list-host" });
  const detail = h("div", { class: "detail" });
  const pages = pager(() => LIMIT, (skip) => void load(skip));

  let latest = 0;

  async function load(skip: number): Promise<void> {
    const request = ++latest;
    try {
      const rows: T[] = await ctx.api.get(entityPath(opts.collection, undefined, { limit: LIMIT, skip }));
      if (request !== latest) return; // a newer request's page is (or will be) shown
      pages.update(rows.length);
      notice(status, "info", "");
      replace(listHost, rows.length === 0 && skip === 0 ? h("p", { class: "muted empty" }, opts.empty) : table(opts.columns, rows, (row) => (opts.onOpen ? opts.onOpen(row) : void showJson(row))));
    } catch (err) {
      if (request === latest) notice(status, "error", `Could not list ${opts.collection}: ${errorText(err)}`);
    }
  }

  async function showJson(row: T): Promise<void> {
    try {
      const full = await ctx.api.get(entityPath(opts.collection, qualified(row)));
      replace(detail, h("h3", {}, qualified(row)), pre(json(full)));
    } catch (err) {
      notice(status, "error", errorText(err));
    }
  }

  const element = h(
    "section",
    { class: `view list-view ${opts.collection}` },
    h("div", { class: "toolbar" }, h("h2", {}, opts.title), h("span", { class: "spacer" }), pages.element, button("Refresh", () => void load(pages.skip))),
    status,
    h("div", { class: "split list-split" }, listHost, detail),
  );
  return {
    element,
    show() {
      replace(detail);
      void load(pages.skip);
    },
  };
}

const updated = <T extends Entity>(): Column<T> => ({ label: "Updated", cell: (e) => time(e.updated), class: "muted" });

export const actionsView = (ctx: Context): View =>
  collectionView<Entity & { exec?: { kind?: string } }>(ctx, {
    title: "Actions",
    collection: "actions",
    empty: "No actions yet: write one in the Playground.",
    columns: [
      { label: "Name", cell: (a) => qualified(a), class: "mono" },
      { label: "Kind", cell: (a) => a.exec?.kind ?? annotation(a, "exec") as string ?? "–" },
      { label: "Version", cell: (a) => a.version ?? "–" },
      { label: "Web", cell: (a) => (annotation(a, "web-export") === true ? "yes" : "") },
      updated(),
    ],
    onOpen: (a) => ctx.go(`playground/${encodeURIComponent(qualified(a))}`),
  });

export const packagesView = (ctx: Context): View =>
  collectionView<Entity & { binding?: { namespace?: string; name?: string } | Record<string, never> }>(ctx, {
    title: "Packages",
    collection: "packages",
    empty: "No packages.",
    columns: [
      { label: "Name", cell: (p) => p.name, class: "mono" },
      { label: "Binding", cell: (p) => (p.binding && "name" in p.binding && p.binding.name ? `→ /${p.binding.namespace}/${p.binding.name}` : "") },
      { label: "Shared", cell: (p) => (p.publish ? "yes" : "") },
      { label: "Version", cell: (p) => p.version ?? "–" },
      updated(),
    ],
  });

export const triggersView = (ctx: Context): View =>
  collectionView<Entity>(ctx, {
    title: "Triggers",
    collection: "triggers",
    empty: "No triggers.",
    columns: [
      { label: "Name", cell: (t) => t.name, class: "mono" },
      { label: "Feed", cell: (t) => String(annotation(t, "feed") ?? "") },
      { label: "Version", cell: (t) => t.version ?? "–" },
      updated(),
    ],
  });

export const rulesView = (ctx: Context): View =>
  collectionView<Entity & { status?: string; trigger?: { name?: string }; action?: { name?: string; path?: string } }>(ctx, {
    title: "Rules",
    collection: "rules",
    empty: "No rules.",
    columns: [
      { label: "Name", cell: (r) => r.name, class: "mono" },
      { label: "Trigger", cell: (r) => r.trigger?.name ?? "" },
      { label: "Action", cell: (r) => r.action?.name ?? "" },
      { label: "Status", cell: (r) => r.status ?? "" },
      updated(),
    ],
  });

/** Activations, newest first, filtered by action name; `#/activations/<id>` shows one. */
export function activationsView(ctx: Context): View {
  const limitSelect = h("select", { attrs: { "aria-label": "Page size", id: "activation-limit" } }, ...[10, 30, 100].map((n) => h("option", { attrs: { value: String(n) } }, `${n} per page`)));
  limitSelect.value = "30";
  const filter = h("input", { attrs: { id: "activation-filter", placeholder: "Filter by action name (pkg/name)", spellcheck: "false", autocomplete: "off", "aria-label": "Filter by action name" } });
  const status = h("div", { class: "notice" });
  const listHost = h("div", { class: "list-host", attrs: { id: "activation-list" } });
  const detail = h("div", { class: "detail", attrs: { id: "activation-detail" } }, h("p", { class: "muted" }, "Select an activation to see its result and logs."));
  const limit = () => Number(limitSelect.value);
  const pages = pager(limit, (skip) => void load(skip));

  /** Only the latest request's page is shown: a slower, older answer (another filter) is dropped. */
  let latest = 0;

  async function load(skip: number): Promise<void> {
    const request = ++latest;
    try {
      const rows: ActivationRecord[] = await ctx.api.get(entityPath("activations", undefined, { limit: limit(), skip, name: filter.value.trim() || undefined }));
      if (request !== latest) return;
      pages.update(rows.length);
      notice(status, "info", "");
      replace(
        listHost,
        rows.length === 0 && skip === 0
          ? h("p", { class: "muted empty" }, filter.value.trim() ? `No activations of ${filter.value.trim()}.` : "No activations yet.")
          : table<ActivationRecord & { statusCode?: number }>(
              [
                { label: "Name", cell: (a) => a.name, class: "mono" },
                { label: "Status", cell: (a) => statusBadge({ ...a, response: { statusCode: a.statusCode } }) },
                { label: "Tier", cell: (a) => isolationBadge(a) ?? "" },
                { label: "Duration", cell: (a) => ms(a.duration), class: "num" },
                { label: "Started", cell: (a) => time(a.start), class: "muted" },
                { label: "Id", cell: (a) => a.activationId, class: "mono muted" },
              ],
              rows,
              (a) => ctx.go(`activations/${encodeURIComponent(a.activationId)}`),
            ),
      );
    } catch (err) {
      if (request === latest) notice(status, "error", `Could not list activations: ${errorText(err)}`);
    }
  }

  async function showOne(id: string): Promise<void> {
    replace(detail, h("p", { class: "muted" }, `Loading ${id}…`));
    try {
      replace(detail, activationDetail(await ctx.api.get(entityPath("activations", id))));
    } catch (err) {
      replace(detail, h("p", { class: "notice error", attrs: { role: "alert" } }, `Activation ${id}: ${errorText(err)}`));
    }
  }

  let filterTimer: ReturnType<typeof setTimeout> | undefined;
  filter.addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      pages.reset();
      void load(0);
    }, 300);
  });
  limitSelect.addEventListener("change", () => {
    pages.reset();
    void load(0);
  });

  const element = h(
    "section",
    { class: "view list-view activations" },
    h("div", { class: "toolbar" }, h("h2", {}, "Activations"), filter, limitSelect, h("span", { class: "spacer" }), pages.element, button("Refresh", () => void load(pages.skip))),
    status,
    h("div", { class: "split list-split" }, listHost, detail),
  );
  return {
    element,
    show(arg) {
      void load(pages.skip);
      if (arg) void showOne(decodeURIComponent(arg));
    },
  };
}

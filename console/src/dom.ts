// Builds DOM nodes from data without ever parsing HTML: every string becomes a text node or an
// attribute value, so nothing an action returns (results, logs, names) can become markup or script.

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  /** Plain attributes (set with setAttribute). Event handler and style attributes are refused. */
  attrs?: Record<string, string | undefined>;
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    // The CSP forbids inline handlers and styles anyway; refusing them here catches mistakes early.
    if (/^on/i.test(name) || name.toLowerCase() === "style") throw new Error(`attribute ${name} is not allowed`);
    if (value !== undefined) el.setAttribute(name, value);
  }
  for (const [type, handler] of Object.entries(props.on ?? {})) el.addEventListener(type, handler as EventListener);
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `parent` with `children`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** Text in a <pre>: how results and logs are shown. */
export const pre = (text: string, cls = "code"): HTMLPreElement => h("pre", { class: cls }, text);

/** A table from rows; `onOpen` makes each row a link-like button (click or Enter). */
export function table<T>(columns: ReadonlyArray<{ label: string; cell: (row: T) => Child; class?: string }>, rows: readonly T[], onOpen?: (row: T) => void): HTMLTableElement {
  const head = h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { class: c.class }, c.label))));
  const body = h(
    "tbody",
    {},
    ...rows.map((row) => {
      const tr = h("tr", {}, ...columns.map((c) => h("td", { class: c.class }, c.cell(row))));
      if (onOpen) {
        tr.classList.add("openable");
        tr.tabIndex = 0;
        tr.addEventListener("click", () => onOpen(row));
        tr.addEventListener("keydown", (e) => e.key === "Enter" && onOpen(row));
      }
      return tr;
    }),
  );
  return h("table", { class: "list" }, head, body);
}

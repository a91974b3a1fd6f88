// What every page of the console is: an element shown in the main area, told when it is shown
// (with the rest of the route, e.g. an activation id) and when it is left.
import type { Api } from "./api.ts";
import { h, replace } from "./dom.ts";

export interface View {
  readonly element: HTMLElement;
  show(arg: string | undefined): void;
  hide?(): void;
}

export interface Context {
  api: Api;
  namespace: string;
  /** Goes to `#/<route>`. */
  go(route: string): void;
}

/** A line telling what happened; errors in red, with role=alert so they are announced. */
export function notice(target: HTMLElement, kind: "info" | "error" | "ok", text: string): void {
  target.className = `notice ${kind}`;
  target.setAttribute("role", kind === "error" ? "alert" : "status");
  replace(target, text);
}

export const clearNotice = (target: HTMLElement): void => {
  target.className = "notice";
  replace(target);
};

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function button(label: string, onClick: () => void, cls = "", title?: string): HTMLButtonElement {
  return h("button", { class: cls, attrs: { type: "button", title }, on: { click: onClick } }, label);
}

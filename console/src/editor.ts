// The playground's code editor: CodeMirror 6 with JavaScript or C highlighting, swapped in place
// when the action's kind changes.
import { cpp } from "@codemirror/lang-cpp";
import { javascript } from "@codemirror/lang-javascript";
import { Compartment, Prec } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { basicSetup, EditorView } from "codemirror";

export type Kind = "nodejs" | "c";

export const TEMPLATES: Record<Kind, string> = {
  nodejs: `function main(params) {
  console.log("greeting " + (params.name ?? "world"));
  return { greeting: \`Hello, \${params.name ?? "world"}!\` };
}
`,
  c: `#include <vespid.h>

const char *vespid_main(const char *params) {
  double n = 0;
  vespid_get_number(params, "n", &n);
  struct vespid_json *out = vespid_json_new();
  vespid_json_number(out, "n", n * 2);
  return vespid_json_finish(out);
}
`,
};

const languageOf = (kind: Kind) => (kind === "c" ? cpp() : javascript());

export interface CodeEditor {
  view: EditorView;
  getCode(): string;
  setCode(code: string): void;
  setKind(kind: Kind): void;
  setReadOnly(readOnly: boolean): void;
}

/** Sizes and fonts: the page's stylesheet does not reach into the editor's shadow root. */
const theme = EditorView.theme({
  "&": { height: "420px", fontSize: "13px", backgroundColor: "#fff" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace' },
});

/**
 * `onRun` is bound to Ctrl-Enter / Cmd-Enter, ahead of the editor's own bindings.
 *
 * The editor lives in a shadow root: CodeMirror's styles (style-mod) go into a constructed
 * stylesheet there, which the CSP allows, whereas in the document itself they would be an inline
 * <style> element that `style-src 'self'` (rightly) blocks.
 */
export function createEditor(host: HTMLElement, kind: Kind, onRun: () => void): CodeEditor {
  const root = host.attachShadow({ mode: "open" });
  const parent = document.createElement("div");
  root.appendChild(parent);
  const language = new Compartment();
  const readOnly = new Compartment();
  const view = new EditorView({
    parent,
    root,
    doc: TEMPLATES[kind],
    extensions: [
      theme,
      Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }])),
      basicSetup,
      language.of(languageOf(kind)),
      readOnly.of(EditorView.editable.of(true)),
      EditorView.contentAttributes.of({ "aria-label": "Action code" }),
    ],
  });
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode: (code) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: code } }),
    setKind: (k) => view.dispatch({ effects: language.reconfigure(languageOf(k)) }),
    setReadOnly: (ro) => view.dispatch({ effects: readOnly.reconfigure(EditorView.editable.of(!ro)) }),
  };
}

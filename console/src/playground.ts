// The playground: write an action in the editor, save, invoke with JSON parameters, and see the
// activation (result, logs, timings, tier). Ctrl/Cmd-Enter saves when needed and invokes.
import { entityPath, failure } from "./api.ts";
import { activationDetail, type ActivationRecord } from "./activation-view.ts";
import { h, replace } from "./dom.ts";
import { createEditor, TEMPLATES, type CodeEditor, type Kind } from "./editor.ts";
import { button, clearNotice, errorText, notice, type Context, type View } from "./view.ts";

/** The parameters box's content as an object, or why it cannot be one. */
export function parseParams(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  if (text.trim() === "") return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `Parameters are not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, message: `Parameters must be a JSON object like {"name": "Ada"}, not ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}` };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

const kindOf = (execKind: string): Kind => (execKind === "c" ? "c" : "nodejs");

export function playground(ctx: Context): View {
  const nameInput = h("input", { attrs: { id: "action-name", value: "hello", spellcheck: "false", autocomplete: "off", "aria-label": "Action name" } });
  const kindSelect = h(
    "select",
    { attrs: { id: "action-kind", "aria-label": "Kind" } },
    h("option", { attrs: { value: "nodejs" } }, "JavaScript (nodejs)"),
    h("option", { attrs: { value: "c" } }, "C"),
  );
  const openSelect = h("select", { attrs: { id: "action-open", "aria-label": "Open an action" } });
  const params = h("textarea", { class: "params", attrs: { id: "params", spellcheck: "false", rows: "4", "aria-label": "Parameters (JSON)" } });
  params.value = '{ "name": "Ada" }';
  const paramsError = h("div", { class: "field-error", attrs: { id: "params-error" } });
  const status = h("div", { class: "notice", attrs: { id: "playground-status" } });
  const output = h("div", { class: "output-body", attrs: { id: "output" } }, h("p", { class: "muted" }, "Invoke the action to see its result, logs and timings here."));
  const editorHost = h("div", { class: "editor", attrs: { id: "editor" } });

  let kind: Kind = "nodejs";
  let busy = false;
  /** What the platform has, as last saved or opened here: Invoke saves first when the editor differs. */
  let saved: { name: string; kind: Kind; code: string } | undefined;
  let readOnly = false;

  const invokeButton = button("Invoke", () => void invoke(), "primary", "Save if changed, then invoke (Ctrl/Cmd-Enter)");
  invokeButton.id = "invoke";
  invokeButton.append(h("kbd", {}, navigator.platform.startsWith("Mac") ? "⌘↵" : "Ctrl↵"));
  const saveButton = button("Save", () => void guarded(save), "", "Create or update the action");
  saveButton.id = "save";
  const deleteButton = button("Delete", () => void remove(), "danger");
  deleteButton.id = "delete";
  let deleteArmed: ReturnType<typeof setTimeout> | undefined;

  const editor: CodeEditor = createEditor(editorHost, kind, () => void invoke());
  // Ctrl-Enter in the parameters box invokes too.
  params.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void invoke();
    }
  });
  params.addEventListener("input", () => {
    const parsed = parseParams(params.value);
    params.classList.toggle("invalid", !parsed.ok);
    replace(paramsError, parsed.ok ? "" : parsed.message);
  });

  kindSelect.addEventListener("change", () => {
    const next = kindSelect.value as Kind;
    // Swap the sample only while the editor still holds the other kind's untouched sample.
    if (editor.getCode() === TEMPLATES[kind] || editor.getCode().trim() === "") editor.setCode(TEMPLATES[next]);
    kind = next;
    editor.setKind(kind);
  });

  openSelect.addEventListener("change", () => {
    const name = openSelect.value;
    openSelect.value = "";
    if (name === "\u0000new") newAction();
    else if (name) void open(name);
  });

  const setBusy = (on: boolean) => {
    busy = on;
    for (const b of [invokeButton, saveButton, deleteButton]) b.disabled = on;
  };

  async function guarded(work: () => Promise<unknown>): Promise<void> {
    if (busy) return;
    setBusy(true);
    try {
      await work();
    } catch (err) {
      notice(status, "error", errorText(err));
    } finally {
      setBusy(false);
    }
  }

  const actionName = (): string => {
    const name = nameInput.value.trim();
    if (!name) throw new Error("Give the action a name first (letters, digits, _ - @ . and spaces; pkg/name for a package's action).");
    return name;
  };

  async function save(): Promise<void> {
    if (readOnly) throw new Error("This action's code cannot be edited here (a sequence or a binary); open another one or start a new one.");
    const name = actionName();
    const code = editor.getCode();
    notice(status, "info", kind === "c" ? `Saving ${name} (compiling the C code)…` : `Saving ${name}…`);
    await ctx.api.call("PUT", entityPath("actions", name, { overwrite: true }), { exec: { kind, code } });
    saved = { name, kind, code };
    notice(status, "ok", `Saved ${name}.`);
    void refreshOpenList();
  }

  async function invoke(): Promise<void> {
    const parsed = parseParams(params.value);
    if (!parsed.ok) {
      notice(status, "error", parsed.message);
      params.focus();
      return;
    }
    await guarded(async () => {
      const name = actionName();
      const current = { name, kind, code: editor.getCode() };
      if (!readOnly && (saved?.name !== current.name || saved.kind !== current.kind || saved.code !== current.code)) await save();
      notice(status, "info", `Invoking ${name}…`);
      const started = performance.now();
      const res = await ctx.api.request("POST", entityPath("actions", name, { blocking: true }), parsed.value);
      const elapsed = performance.now() - started;
      if (res.status === 202 && res.body?.activationId) {
        notice(status, "info", `Still running when the gateway stopped waiting; find activation ${res.body.activationId} in Activations.`);
        return;
      }
      const record = res.body as ActivationRecord | undefined;
      if (!record || typeof record !== "object" || !record.activationId || !record.response) throw failure(res);
      const openInList = h("a", { attrs: { href: `#/activations/${encodeURIComponent(record.activationId)}` } }, "open in Activations");
      replace(output, activationDetail(record, openInList));
      notice(status, record.response.success ? "ok" : "error", `${name}: ${record.response.status ?? "done"} (round trip ${Math.round(elapsed)} ms)`);
    });
  }

  async function remove(): Promise<void> {
    // Two clicks instead of confirm(): no native dialog, and a slip of the mouse deletes nothing.
    if (!deleteArmed) {
      deleteButton.textContent = "Click again to delete";
      deleteArmed = setTimeout(() => {
        deleteArmed = undefined;
        deleteButton.textContent = "Delete";
      }, 4000);
      return;
    }
    clearTimeout(deleteArmed);
    deleteArmed = undefined;
    deleteButton.textContent = "Delete";
    await guarded(async () => {
      const name = actionName();
      await ctx.api.call("DELETE", entityPath("actions", name));
      saved = undefined;
      notice(status, "ok", `Deleted ${name}. The editor keeps its code: Save creates it again.`);
      void refreshOpenList();
    });
  }

  function newAction(): void {
    nameInput.value = "";
    setReadOnly(false);
    editor.setCode(TEMPLATES[kind]);
    saved = undefined;
    nameInput.focus();
    clearNotice(status);
  }

  function setReadOnly(on: boolean): void {
    readOnly = on;
    editor.setReadOnly(on);
    editorHost.classList.toggle("readonly", on);
  }

  async function open(name: string): Promise<void> {
    await guarded(async () => {
      const action = await ctx.api.get(entityPath("actions", name));
      nameInput.value = name;
      const exec = action.exec ?? {};
      if (exec.kind === "sequence" || exec.binary || typeof exec.code !== "string") {
        setReadOnly(true);
        editor.setCode(exec.kind === "sequence" ? `// ${name} is a sequence of:\n${(exec.components ?? []).map((c: string) => `//   ${c}`).join("\n")}\n` : `// ${name}'s code is binary; it can be invoked but not shown.\n`);
        saved = undefined;
        notice(status, "info", `Opened ${name} (read-only: ${exec.kind === "sequence" ? "a sequence" : "binary code"}).`);
        return;
      }
      setReadOnly(false);
      kind = kindOf(exec.kind);
      kindSelect.value = kind;
      editor.setKind(kind);
      editor.setCode(exec.code);
      saved = { name, kind, code: exec.code };
      notice(status, "info", `Opened ${name} (version ${action.version}).`);
    });
  }

  async function refreshOpenList(): Promise<void> {
    try {
      const actions: Array<{ name: string; namespace: string }> = await ctx.api.get(entityPath("actions", undefined, { limit: 200 }));
      const names = actions.map((a) => (a.namespace.includes("/") ? `${a.namespace.slice(a.namespace.indexOf("/") + 1)}/${a.name}` : a.name));
      replace(
        openSelect,
        h("option", { attrs: { value: "" } }, "Open…"),
        h("option", { attrs: { value: "\u0000new" } }, "New action"),
        ...names.sort().map((n) => h("option", { attrs: { value: n } }, n)),
      );
    } catch {
      replace(openSelect, h("option", { attrs: { value: "" } }, "Open… (list unavailable)"), h("option", { attrs: { value: "\u0000new" } }, "New action"));
    }
  }

  const element = h(
    "section",
    { class: "view playground" },
    h(
      "div",
      { class: "toolbar" },
      h("label", {}, "Action ", nameInput),
      h("label", {}, "Kind ", kindSelect),
      openSelect,
      h("span", { class: "spacer" }),
      deleteButton,
      saveButton,
      invokeButton,
    ),
    h(
      "div",
      { class: "split" },
      h("div", { class: "pane" }, editorHost, h("label", { class: "field-label", attrs: { for: "params" } }, "Parameters (JSON object)"), params, paramsError),
      h("div", { class: "pane output" }, status, output),
    ),
  );

  return {
    element,
    show(arg) {
      void refreshOpenList();
      if (arg) void open(decodeURIComponent(arg));
      editor.view.focus();
    },
  };
}

// The console's entry point: sign in with a namespace key, then a page per hash route
// (#/playground, #/actions, #/activations/<id>, #/dashboard…).
import "../style.css";
import "uplot/dist/uPlot.min.css";
import { Api, ApiFailure, KEY_PATTERN, session } from "./api.ts";
import { dashboard } from "./dashboard.ts";
import { h, replace } from "./dom.ts";
import { actionsView, activationsView, packagesView, rulesView, triggersView } from "./lists.ts";
import { playground } from "./playground.ts";
import { errorText, notice, type Context, type View } from "./view.ts";

const ROUTES: ReadonlyArray<{ route: string; title: string; make: (ctx: Context) => View }> = [
  { route: "playground", title: "Playground", make: playground },
  { route: "actions", title: "Actions", make: actionsView },
  { route: "packages", title: "Packages", make: packagesView },
  { route: "activations", title: "Activations", make: activationsView },
  { route: "triggers", title: "Triggers", make: triggersView },
  { route: "rules", title: "Rules", make: rulesView },
  { route: "dashboard", title: "Dashboard", make: dashboard },
];

const root = document.getElementById("app")!;

class RefusedKey extends Error {}

/** Checks a key against the API: the namespace it belongs to, or an error saying what is wrong. */
async function signIn(key: string): Promise<string> {
  if (!KEY_PATTERN.test(key)) throw new RefusedKey("A key looks like uuid:key (two parts separated by a colon), as in .vespid/auth.key or `vespid admin` prints.");
  try {
    const namespaces = await new Api(key).get("/api/v1/namespaces");
    if (!Array.isArray(namespaces) || typeof namespaces[0] !== "string") throw new Error("the gateway answered no namespace for this key");
    return namespaces[0];
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) throw new RefusedKey("The key was refused (401): check it, or ask the platform's admin for a new one.");
    throw err;
  }
}

function showSignIn(message?: string, key?: string): void {
  const input = h("input", { attrs: { id: "key", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "uuid:key", "aria-label": "Namespace key" } });
  if (key) input.value = key;
  const status = h("div", { class: "notice", attrs: { id: "signin-status" } });
  const submit = h("button", { class: "primary", attrs: { type: "submit", id: "signin" } }, "Sign in");
  const form = h(
    "form",
    { class: "signin" },
    h("h1", {}, h("span", { class: "logo" }, "◆"), " Vespid console"),
    h("p", { class: "muted" }, "Sign in with a namespace key (uuid:key). `npm start` prints the default one; it is also in .vespid/auth.key. The key stays in this tab only."),
    h("label", { attrs: { for: "key" } }, "Namespace key"),
    input,
    submit,
    status,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = input.value.trim();
    submit.disabled = true;
    notice(status, "info", "Checking the key…");
    signIn(key)
      .then((namespace) => {
        session.save(key);
        showConsole(new Api(key), namespace);
      })
      .catch((err) => {
        notice(status, "error", errorText(err));
        submit.disabled = false;
        input.focus();
      });
  });
  replace(root, h("main", { class: "signin-page" }, form));
  if (message) notice(status, "error", message);
  input.focus();
}

function showConsole(api: Api, namespace: string): void {
  const main = h("main", { class: "content" });
  const nav = h("nav", { class: "tabs", attrs: { "aria-label": "Sections" } });
  const views = new Map<string, View>();
  let current: View | undefined;
  const ctx: Context = { api, namespace, go: (route) => (location.hash = `#/${route}`) };

  const signOut = h("button", { class: "ghost", attrs: { type: "button", id: "signout" } }, "Sign out");
  signOut.addEventListener("click", () => {
    current?.hide?.();
    window.removeEventListener("hashchange", route);
    session.clear();
    history.replaceState(null, "", location.pathname);
    showSignIn();
  });

  const links = ROUTES.map(({ route, title }) => h("a", { attrs: { href: `#/${route}`, "data-route": route } }, title));
  replace(nav, ...links);

  function route(): void {
    const [name = "", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
    const entry = ROUTES.find((r) => r.route === name) ?? ROUTES[0]!;
    let view = views.get(entry.route);
    if (!view) views.set(entry.route, (view = entry.make(ctx)));
    if (current !== view) {
      current?.hide?.();
      current = view;
      replace(main, view.element);
    }
    for (const link of links) link.classList.toggle("active", link.dataset.route === entry.route);
    document.title = `${entry.title} · Vespid`;
    view.show(rest.length ? rest.join("/") : undefined);
  }

  replace(
    root,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", attrs: { href: "#/playground" } }, h("span", { class: "logo" }, "◆"), " Vespid"),
      nav,
      h("span", { class: "spacer" }),
      h("span", { class: "namespace", attrs: { id: "namespace", title: "your namespace" } }, namespace),
      signOut,
    ),
    main,
  );
  window.addEventListener("hashchange", route);
  route();
}

const stored = session.load();
if (stored) {
  signIn(stored)
    .then((namespace) => showConsole(new Api(stored), namespace))
    .catch((err) => {
      // A refused key is forgotten; an unreachable gateway is not the key's fault: keep it to retry.
      const refused = err instanceof RefusedKey;
      if (refused) session.clear();
      showSignIn(errorText(err), refused ? undefined : stored);
    });
} else showSignIn();

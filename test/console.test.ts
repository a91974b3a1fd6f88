// The web console at `/`, driven in a real headless Chromium (Debian's `chromium`, through
// playwright-core) against a whole platform: sign in, write and invoke an action in the editor,
// find its activation, watch the dashboard; hostile results stay text; the CSP holds.
// Screenshots go to test/artifacts/ and, for the README, docs/images/.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { chromium, type Browser, type Page } from "playwright-core";
import { api, startPlatform, type Platform } from "./harness.ts";

const ARTIFACTS = join(import.meta.dirname, "artifacts");
const IMAGES = join(import.meta.dirname, "..", "docs", "images");
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Debian's chromium, or VESPID_CHROMIUM; a missing browser fails the tests (setup installs it). */
function findChromium(): string {
  const chosen = process.env.VESPID_CHROMIUM;
  if (chosen && !existsSync(chosen)) throw new Error(`VESPID_CHROMIUM is ${chosen}, which does not exist`);
  const candidates = chosen ? [chosen] : ["/usr/bin/chromium", ...(process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, "chromium"))];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error("chromium is not installed: run `bash infra/setup.sh --native all` as root (it installs Debian's chromium), or `apt-get install chromium`, or set VESPID_CHROMIUM to a Chromium binary");
  return found;
}

let platform: Platform;
let browser: Browser;
test.before(async () => {
  const executablePath = findChromium();
  await mkdir(ARTIFACTS, { recursive: true });
  await mkdir(IMAGES, { recursive: true });
  platform = await startPlatform();
  browser = await chromium.launch({ executablePath });
});
test.after.always(async () => {
  await browser?.close();
  await platform?.stop();
});

interface Watched {
  page: Page;
  /** Native dialogs (alert, confirm…) the page opened: none is expected, ever. */
  dialogs: string[];
  /** Uncaught errors in the page. */
  errors: string[];
}

/** A fresh page (own sessionStorage) that records dialogs, page errors and CSP violations. */
async function newPage(t: ExecutionContext): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const watched: Watched = { page, dialogs: [], errors: [] };
  page.on("dialog", (dialog) => {
    watched.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on("pageerror", (err) => watched.errors.push(err.message));
  await page.addInitScript(() => {
    (window as any).__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => (window as any).__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
  return watched;
}

async function signIn(page: Page, key = platform.apiKey): Promise<void> {
  await page.goto(platform.url + "/");
  await page.fill("#key", key);
  await page.click("#signin");
  await page.waitForSelector("#namespace");
}

/** Replaces the editor's content; insertText types it as one paste, so no auto-indent or auto-close interferes. */
async function setCode(page: Page, code: string): Promise<void> {
  await page.click(".cm-content");
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

async function cleanEnd(t: ExecutionContext, w: Watched): Promise<void> {
  t.deepEqual(await w.page.evaluate(() => (window as any).__cspViolations), [], "CSP violations");
  t.deepEqual(w.dialogs, [], "native dialogs");
  t.deepEqual(w.errors, [], "page errors");
}

const HELLO = `function main(params) {
  console.log("greeting " + params.name);
  return { greeting: "Hello, " + params.name + "!" };
}
`;

test("the page and its assets carry the CSP and security headers, and API routes are not shadowed", async (t) => {
  const page = await fetch(platform.url + "/");
  t.is(page.status, 200);
  t.regex(page.headers.get("content-type") ?? "", /^text\/html/);
  t.is(page.headers.get("content-security-policy"), CSP);
  t.is(page.headers.get("x-content-type-options"), "nosniff");
  t.is(page.headers.get("referrer-policy"), "no-referrer");
  const html = await page.text();
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => !u.startsWith("data:"));
  t.is(assets.length, 2, html);
  for (const asset of assets) {
    t.regex(asset, /^\/console\/main-[A-Z0-9]+\.(js|css)$/, "assets come from the gateway itself");
    const res = await fetch(platform.url + asset, { headers: { "accept-encoding": "gzip" } });
    t.is(res.status, 200, asset);
    t.is(res.headers.get("content-security-policy"), CSP);
    t.is(res.headers.get("x-content-type-options"), "nosniff");
    t.regex(res.headers.get("cache-control") ?? "", /immutable/);
    t.true((await res.arrayBuffer()).byteLength > 1000);
    // Revalidation by ETag answers 304 without a body.
    const again = await fetch(platform.url + asset, { headers: { "if-none-match": res.headers.get("etag")! } });
    t.is(again.status, 304);
  }
  for (const path of ["/console/main.js", "/console/..%2Fbundle.ts", "/console/index.html"]) {
    t.is((await fetch(platform.url + path)).status, 404, path);
  }
  // The API is as it was: JSON errors, authentication required.
  const unauthenticated = await platform.request("GET", "/api/v1/namespaces", undefined, {}, { auth: false });
  t.is(unauthenticated.status, 401);
  t.truthy(unauthenticated.body.error);
  const missing = await platform.request("GET", "/no-such-page", undefined, {}, { auth: false });
  t.is(missing.status, 404);
  t.truthy(missing.body.error);
});

test("a malformed or wrong key is refused with a clear error, and no login dialog", async (t) => {
  const w = await newPage(t);
  await w.page.goto(platform.url + "/");
  await w.page.fill("#key", "not a key");
  await w.page.click("#signin");
  await w.page.waitForSelector("#signin-status.error");
  t.regex((await w.page.textContent("#signin-status")) ?? "", /uuid:key/);

  const [uuid] = platform.apiKey.split(":");
  await w.page.fill("#key", `${uuid}:wrong-secret`);
  await w.page.click("#signin");
  await w.page.waitForFunction(() => /refused \(401\)/.test(document.querySelector("#signin-status")?.textContent ?? ""));
  t.is(await w.page.$("#namespace"), null, "still signed out");
  t.is(await w.page.evaluate(() => sessionStorage.getItem("vespid.key")), null, "a refused key is not kept");
  await cleanEnd(t, w);
});

test("sign in, write an action, invoke it with Ctrl-Enter, see result, logs, timings and tier; then find it among activations", async (t) => {
  const w = await newPage(t);
  const { page } = w;
  await signIn(page);
  t.is(await page.textContent("#namespace"), "guest");

  await page.fill("#action-name", "console-hello");
  await setCode(page, HELLO);
  await page.fill("#params", '{"name": "Ada"');
  t.regex((await page.textContent("#params-error")) ?? "", /not valid JSON/);
  await page.click("#invoke");
  await page.waitForSelector("#playground-status.error");
  t.regex((await page.textContent("#playground-status")) ?? "", /Parameters are not valid JSON/);
  await page.fill("#params", "[1, 2]");
  await page.click("#invoke");
  await page.waitForFunction(() => /must be a JSON object/.test(document.querySelector("#playground-status")?.textContent ?? ""));

  await page.fill("#params", '{ "name": "Ada" }');
  await page.click(".cm-content");
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector("#output [data-testid=result]", { timeout: 60_000 });
  t.regex((await page.textContent("#output [data-testid=result]")) ?? "", /"greeting": "Hello, Ada!"/);
  t.regex((await page.textContent("#output [data-testid=logs]")) ?? "", /greeting Ada/);
  t.regex((await page.textContent("#output [data-testid=isolation]")) ?? "", /isolation: (kvm|process)/);
  const timings = (await page.textContent("#output [data-testid=timings]")) ?? "";
  for (const label of ["Wait", "Init", "Duration"]) t.true(timings.includes(label), timings);
  // What the console saved is what the API has.
  const stored = await platform.request("GET", api("actions/console-hello"));
  t.is(stored.status, 200);
  t.is(stored.body.exec.code, HELLO);
  const activationId = await page.getAttribute("#output [data-activation-id]", "data-activation-id");
  t.truthy(activationId);
  await page.screenshot({ path: join(ARTIFACTS, "playground.png") });
  await page.screenshot({ path: join(IMAGES, "console.png") });

  // The activation list, filtered by name, shows it; its detail has result and logs.
  await page.click('nav a[data-route="activations"]');
  await page.fill("#activation-filter", "console-hello");
  const row = page.locator("#activation-list tbody tr", { hasText: activationId! });
  await row.waitFor();
  await row.click();
  await page.waitForSelector(`#activation-detail [data-activation-id="${activationId}"]`);
  t.regex((await page.textContent("#activation-detail [data-testid=result]")) ?? "", /Hello, Ada!/);
  t.regex((await page.textContent("#activation-detail [data-testid=logs]")) ?? "", /greeting Ada/);
  t.regex(page.url(), new RegExp(`#/activations/${activationId}$`));
  await page.screenshot({ path: join(ARTIFACTS, "activations.png") });

  // A filter that matches nothing says so.
  await page.fill("#activation-filter", "no-such-action");
  await page.waitForFunction(() => /No activations of no-such-action/.test(document.querySelector("#activation-list")?.textContent ?? ""));

  // The actions list has it; opening it loads its code into the playground.
  await page.click('nav a[data-route="actions"]');
  await page.locator(".list-view.actions tbody tr", { hasText: "console-hello" }).click();
  await page.waitForFunction(() => /Opened console-hello/.test(document.querySelector("#playground-status")?.textContent ?? ""));
  t.is(await page.inputValue("#action-name"), "console-hello");

  // Delete takes a second click (no native dialog); then the action is gone.
  await page.click("#delete");
  t.is((await platform.request("GET", api("actions/console-hello"))).status, 200, "one click deletes nothing");
  await page.click("#delete");
  await page.waitForFunction(() => /Deleted console-hello/.test(document.querySelector("#playground-status")?.textContent ?? ""));
  t.is((await platform.request("GET", api("actions/console-hello"))).status, 404);

  // Sign out forgets the key.
  await page.click("#signout");
  await page.waitForSelector("#key");
  t.is(await page.evaluate(() => sessionStorage.getItem("vespid.key")), null);
  await cleanEnd(t, w);
});

test("an activation whose result and logs hold markup shows it as text: no element is created, nothing runs", async (t) => {
  const hostile = `<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned = 'img'; alert(1)">`;
  const code = `function main() {
  const html = ${JSON.stringify(hostile)};
  console.log(html);
  return { html };
}
`;
  const w = await newPage(t);
  const { page } = w;
  await signIn(page);
  await page.fill("#action-name", "console-hostile");
  await setCode(page, code);
  await page.fill("#params", "{}");
  await page.click("#invoke");
  await page.waitForSelector("#output [data-testid=result]", { timeout: 60_000 });
  const result = page.locator("#output [data-testid=result]");
  t.true((await result.textContent())!.includes(JSON.stringify(hostile).slice(1, -1)), "the result's markup is shown as (JSON-escaped) text");
  t.true((await page.textContent("#output [data-testid=logs]"))!.includes(hostile), "the log line is shown verbatim");
  t.true(await page.getByText("<img src=x onerror=").first().isVisible());
  // Nothing was parsed as HTML: no script or img element anywhere in the output, nothing ran.
  await page.waitForTimeout(500);
  t.is(await page.locator("#output script, #output img, #activation-detail img").count(), 0);
  t.is(await page.evaluate(() => (window as any).__pwned), undefined);

  // The same in the activation list's detail.
  const activationId = await page.getAttribute("#output [data-activation-id]", "data-activation-id");
  await page.goto(`${platform.url}/#/activations/${activationId}`);
  await page.waitForSelector(`#activation-detail [data-activation-id="${activationId}"]`);
  t.true((await page.textContent("#activation-detail [data-testid=logs]"))!.includes(hostile));
  await page.waitForTimeout(500);
  t.is(await page.locator("#activation-detail script, #activation-detail img").count(), 0);
  t.is(await page.evaluate(() => (window as any).__pwned), undefined);
  await cleanEnd(t, w);
});

test("a C action: the kind switches the editor's sample, it compiles on save and runs; a compile error is shown; a reload keeps the session", async (t) => {
  const w = await newPage(t);
  const { page } = w;
  await signIn(page);
  await page.fill("#action-name", "console-double");
  await page.selectOption("#action-kind", "c");
  await page.waitForFunction(() => /vespid_main/.test(document.querySelector("#editor")?.shadowRoot?.textContent ?? ""));
  await page.fill("#params", '{"n": 21}');
  await page.click("#invoke");
  await page.waitForSelector("#output [data-testid=result]", { timeout: 120_000 });
  t.regex((await page.textContent("#output [data-testid=result]")) ?? "", /"n": 42/);
  const stored = await platform.request("GET", api("actions/console-double"));
  t.is(stored.body.exec.kind, "c");

  await setCode(page, "const char *vespid_main(const char *params) { return oops; }\n");
  await page.click("#save");
  await page.waitForSelector("#playground-status.error", { timeout: 120_000 });
  t.regex((await page.textContent("#playground-status")) ?? "", /^400: .*oops/s);

  // The key is kept in the tab: a reload lands signed in, on the same page.
  await page.reload();
  await page.waitForSelector("#namespace");
  t.is(await page.inputValue("#action-name"), "hello", "a fresh playground");
  await cleanEnd(t, w);
});

test("lists: activations page by skip and limit; packages, triggers and rules are listed and open as text", async (t) => {
  const put = async (path: string, body: unknown) => t.is((await platform.request("PUT", api(path), body)).status, 200, path);
  await put("actions/console-page", { exec: { kind: "nodejs", code: "function main(p) { return { i: p.i }; }" } });
  for (let i = 0; i < 12; i++) t.is((await platform.request("POST", api("actions/console-page?blocking=true"), { i })).status, 200);
  // A blocking answer may come before the record is stored: wait until the API lists all twelve.
  for (let i = 0; ; i++) {
    const listed = await platform.request("GET", api("activations?name=console-page&limit=50"));
    if (listed.body.length === 12) break;
    if (i === 100) throw new Error(`only ${listed.body.length} of 12 activations were ever listed`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await put("packages/console-tools", { parameters: [{ key: "unit", value: "<b>cm</b>" }] });
  await put("triggers/console-visits", {});
  await put("rules/console-greet", { trigger: "/_/console-visits", action: "/_/console-page" });

  const w = await newPage(t);
  const { page } = w;
  await signIn(page);
  await page.goto(`${platform.url}/#/activations`);
  await page.selectOption("#activation-limit", "10");
  // The filter is applied after a pause in typing: wait for its answer, or a click on "Older"
  // could be undone by it (the unfiltered page may be all console-page too).
  const filtered = page.waitForResponse((r) => r.url().includes("name=console-page"));
  await page.fill("#activation-filter", "console-page");
  await filtered;
  const rows = page.locator("#activation-list tbody tr");
  // The filtered first page: ten rows, every one console-page (not the unfiltered page shown before).
  const filteredFirstPage = () => {
    const names = [...document.querySelectorAll("#activation-list tbody tr td:first-child")].map((td) => td.textContent);
    return names.length === 10 && names.every((n) => n === "console-page") && /1–10/.test(document.querySelector(".activations .page-label")?.textContent ?? "");
  };
  await page.waitForFunction(filteredFirstPage);
  t.true(await page.locator(".activations .page-prev").isDisabled());
  await page.click(".activations .page-next");
  await page.waitForFunction(() => /11–12/.test(document.querySelector(".activations .page-label")?.textContent ?? ""));
  t.is(await rows.count(), 2);
  t.true(await page.locator(".activations .page-next").isDisabled(), "no page after a short one");
  await page.click(".activations .page-prev");
  await page.waitForFunction(filteredFirstPage);

  await page.click('nav a[data-route="packages"]');
  await page.locator(".list-view.packages tbody tr", { hasText: "console-tools" }).click();
  await page.waitForSelector(".list-view.packages .detail pre");
  t.true((await page.textContent(".list-view.packages .detail pre"))!.includes('"value": "<b>cm</b>"'), "the package's JSON, as text");
  t.is(await page.locator(".list-view.packages .detail b").count(), 0);

  await page.click('nav a[data-route="triggers"]');
  await page.locator(".list-view.triggers tbody tr", { hasText: "console-visits" }).waitFor();
  await page.click('nav a[data-route="rules"]');
  const rule = page.locator(".list-view.rules tbody tr", { hasText: "console-greet" });
  await rule.waitFor();
  t.regex((await rule.textContent()) ?? "", /console-visits.*console-page.*active/);
  await cleanEnd(t, w);
});

test("the dashboard charts the calls made: its figures go up and its charts draw", async (t) => {
  await platform.request("PUT", api("actions/console-dash"), { exec: { kind: "nodejs", code: "function main(p) { return { n: p.n }; }" } });
  const w = await newPage(t);
  const { page } = w;
  await signIn(page);
  await page.click('nav a[data-route="dashboard"]');
  await page.waitForSelector(".dashboard[data-updates]");
  const total = async () => Number((await page.textContent('[data-tile="total"] .tile-value')) ?? "NaN");
  const before = await total();
  // Calls in bursts a little apart, so the charts show them over time.
  for (let i = 0; i < 12; i++) {
    const res = await platform.request("POST", api("actions/console-dash?blocking=true"), { n: i });
    t.is(res.status, 200);
    if (i % 4 === 3) await page.waitForTimeout(1500);
  }
  // The stats window is a few seconds; the page polls every 1.5 s.
  await page.waitForFunction(
    (target) => Number(document.querySelector('[data-tile="total"] .tile-value')?.textContent) >= target,
    before + 12,
    { timeout: 30_000 },
  );
  await page.waitForFunction(() => Number(document.querySelector('[data-tile="rate"] .tile-value')?.textContent) > 0);
  t.true((await total()) >= before + 12);
  t.is(await page.locator(".chart canvas").count(), 6, "six charts drawn");
  t.true((await page.locator("#runner-table tbody tr").count()) >= 1, "the runner is listed");
  // A few more polls so the charts have lines, then the picture for the README.
  const updates = Number(await page.getAttribute(".dashboard", "data-updates"));
  await page.waitForFunction((n) => Number(document.querySelector(".dashboard")?.getAttribute("data-updates")) >= n + 3, updates);
  await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  await page.screenshot({ path: join(IMAGES, "dashboard.png"), fullPage: true });
  await cleanEnd(t, w);
});

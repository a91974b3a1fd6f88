// Web actions (issue 9, item 5): /api/v1/web/{ns}/{pkg|default}/{action}.{ext} answered without
// an API key by actions annotated web-export, with OpenWhisk's mapping of the request into
// __ow_* parameters and of the result into the response (status, headers, base64 bodies), the
// extensions, raw-http, final parameters, require-whisk-auth, CORS, errors and the 202 of a call
// still running when the blocking wait ends.
import test from "ava";
import { api, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
/** Short, so the slow action below outlasts it; every other action answers in milliseconds. */
const BLOCKING_WAIT_MS = 8_000;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 3, blockingWaitMs: BLOCKING_WAIT_MS });
  const web = { key: "web-export", value: true };
  await createAction("echo", "function main(p) { return p; }", [web]);
  await createAction("plain", "function main(p) { return p; }", []);
  // 1x1 transparent PNG, base64: the body of an image response.
  await createAction("png", `function main() { return { statusCode: 201, headers: { "Content-Type": "image/png", "X-Custom": ["a", "b"] }, body: "${PNG_BASE64}" }; }`, [web]);
  await createAction("pages", `function main(p) { return { text: "plain " + (p.name || "?"), html: "<b>hi</b>", svg: "<svg xmlns='http://www.w3.org/2000/svg'/>" }; }`, [web]);
  await createAction("httpish", `function main(p) {
    if (p.kind === "json") return { headers: { "content-type": "application/json" }, body: { ok: true } };
    if (p.kind === "empty") return { headers: { "x-empty": "yes" } };
    if (p.kind === "redirect") return { statusCode: 302, headers: { location: "/elsewhere" } };
    if (p.kind === "bad-b64") return { headers: { "content-type": "image/png" }, body: "not base64!" };
    if (p.kind === "bad-status") return { statusCode: "teapot" };
    if (p.kind === "bad-header") return { headers: { "x-bad": "a\\nb" }, body: "x" };
    if (p.kind === "length") return { headers: { "content-length": "999", "content-type": "text/plain" }, body: "hi" };
    return { body: "<p>hello</p>" };
  }`, [web]);
  await createAction("raw", "function main(p) { return p; }", [web, { key: "raw-http", value: true }]);
  await createAction("finals", "function main(p) { return { greeting: p.greeting, name: p.name }; }", [web, { key: "final", value: true }], [{ key: "greeting", value: "Hello" }]);
  await createAction("overridable", "function main(p) { return { greeting: p.greeting }; }", [web], [{ key: "greeting", value: "Hello" }]);
  await createAction("secret", "function main(p) { return { user: p.__ow_user || null }; }", [web, { key: "require-whisk-auth", value: "s3cret" }]);
  await createAction("members", "function main(p) { return { user: p.__ow_user }; }", [web, { key: "require-whisk-auth", value: true }]);
  await createAction("fails", `function main(p) { if (p.how === "app") return { error: { statusCode: 418, body: "teapot" } }; throw new Error("boom"); }`, [web]);
  await createAction("options", `function main(p) { return { statusCode: 200, headers: { "access-control-allow-origin": "https://example.org", "x-method": p.__ow_method } }; }`, [web, { key: "web-custom-options", value: true }]);
  await createAction("slow", "function main() { const end = Date.now() + 11000; while (Date.now() < end) {} return { done: true }; }", [web], [], { timeout: 20000 });
  const seq = await platform.request("PUT", api("actions/seq"), { exec: { kind: "sequence", components: ["/_/plain", "/_/pages"] }, annotations: [web] });
  if (seq.status !== 200) throw new Error(JSON.stringify(seq.body));
  const pkg = await platform.request("PUT", api("packages/site"), {});
  if (pkg.status !== 200) throw new Error(JSON.stringify(pkg.body));
  await createAction("site/page", `function main() { return { html: "<i>in a package</i>" }; }`, [web]);
});
test.after.always(async () => {
  await platform?.stop();
});

const PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

async function createAction(name: string, code: string, annotations: Array<{ key: string; value: unknown }>, parameters: Array<{ key: string; value: unknown }> = [], limits?: Record<string, number>) {
  const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind: "nodejs", code }, annotations, parameters, ...(limits && { limits }) });
  if (res.status !== 200) throw new Error(`creating ${name}: ${JSON.stringify(res.body)}`);
}

/** A request to a web URL without credentials (unless given). */
function web(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(new URL(`/api/v1/web/guest/${path}`, platform.url), { ...init, signal: AbortSignal.timeout(60_000) });
}
const basic = (key: string) => `Basic ${Buffer.from(key).toString("base64")}`;

test("GET .json: query parameters and __ow_method, __ow_headers, __ow_path; no API key needed; the activation id header", async (t) => {
  const res = await web("default/echo.json?name=Jane&n=1", { headers: { "x-trace": "t1" } });
  t.is(res.status, 200);
  t.regex(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = await res.json();
  t.like(body, { name: "Jane", n: "1", __ow_method: "get", __ow_path: "" });
  t.is(body.__ow_headers["x-trace"], "t1");
  t.truthy(body.__ow_headers.host);
  t.false("__ow_query" in body);
  t.false("__ow_user" in body, "no credentials, no __ow_user");
  const id = res.headers.get("x-openwhisk-activation-id");
  t.regex(id ?? "", /^[0-9a-f]{32}$/);
  // The activation is the action owner's, through the normal invoke path.
  const record = await platform.request("GET", api(`activations/${id}`));
  t.is(record.status, 200);
  t.like(record.body, { name: "echo", namespace: "guest", response: { status: "success" } });
});

test("POST: a JSON body merges over the query; the path after the action is __ow_path; the caller's key is not passed on", async (t) => {
  const res = await web("default/echo.json/extra/path?name=query&q=1", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: basic(platform.apiKey) },
    body: JSON.stringify({ name: "body", nested: { a: [1, 2] } }),
  });
  t.is(res.status, 200);
  const body = await res.json();
  t.like(body, { name: "body", q: "1", nested: { a: [1, 2] }, __ow_method: "post", __ow_path: "/extra/path", __ow_user: "guest" });
  t.false("authorization" in body.__ow_headers);
  t.false("__ow_body" in body);
});

test("form, text and binary bodies: form fields become parameters, others arrive as __ow_body (base64 when binary)", async (t) => {
  const form = await (await web("default/echo.json", { method: "PUT", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "name=Ada&x=1" })).json();
  t.like(form, { name: "Ada", x: "1", __ow_method: "put" });
  const text = await (await web("default/echo.json", { method: "POST", headers: { "content-type": "text/plain" }, body: "Jane" })).json();
  t.is(text.__ow_body, "Jane");
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  const binary = await (await web("default/echo.json", { method: "PATCH", headers: { "content-type": "application/octet-stream" }, body: bytes })).json();
  t.is(binary.__ow_body, bytes.toString("base64"));
  t.is(binary.__ow_method, "patch");
  const array = await (await web("default/echo.json", { method: "POST", headers: { "content-type": "application/json" }, body: "[1,2]" })).json();
  t.deepEqual(array.__ow_body, [1, 2], "a JSON body that is not an object is __ow_body");
  const broken = await web("default/echo.json", { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" });
  t.is(broken.status, 400);
  t.regex((await broken.json()).error, /not valid JSON/);
});

test(".http: status, headers (an array value repeats the header) and a base64 body decoded for a binary type", async (t) => {
  const res = await web("default/png.http");
  t.is(res.status, 201);
  t.is(res.headers.get("content-type"), "image/png");
  t.is(res.headers.get("x-custom"), "a, b");
  t.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from(PNG_BASE64, "base64"));
  t.is(res.headers.get("access-control-allow-origin"), "*");
  // No extension is .http.
  const plain = await web("default/png");
  t.is(plain.status, 201);
  t.is(plain.headers.get("content-type"), "image/png");
});

test(".http: default text/html, a JSON body, no body (204), a redirect, and bad results as OpenWhisk answers them", async (t) => {
  const html = await web("default/httpish.http");
  t.is(html.status, 200);
  t.is(html.headers.get("content-type"), "text/html; charset=UTF-8");
  t.is(await html.text(), "<p>hello</p>");
  const json = await web("default/httpish.http?kind=json");
  t.is(json.headers.get("content-type"), "application/json");
  t.deepEqual(await json.json(), { ok: true });
  const empty = await web("default/httpish.http?kind=empty");
  t.is(empty.status, 204);
  t.is(empty.headers.get("x-empty"), "yes");
  const redirect = await web("default/httpish.http?kind=redirect", { redirect: "manual" });
  t.is(redirect.status, 302);
  t.is(redirect.headers.get("location"), "/elsewhere");
  const badB64 = await web("default/httpish.http?kind=bad-b64");
  t.is(badB64.status, 400);
  t.is((await badB64.json()).error, "Response type in header did not match generated content type.");
  const badStatus = await web("default/httpish.http?kind=bad-status");
  t.is(badStatus.status, 400);
  t.is((await badStatus.json()).error, "Response is not valid 'message/http'.");
  const badHeader = await web("default/httpish.http?kind=bad-header");
  t.is(badHeader.status, 400, "a header value with a line break is refused, not sent");
  const length = await web("default/httpish.http?kind=length");
  t.is(length.status, 200);
  t.is(await length.text(), "hi", "the action's Content-Length is ignored; the server frames the body");
});

test(".text, .html and .svg answer the field of their name; .json the whole result; a missing field is an error", async (t) => {
  const text = await web("default/pages.text?name=Ada");
  t.is(text.headers.get("content-type"), "text/plain; charset=UTF-8");
  t.is(await text.text(), "plain Ada");
  const html = await web("default/pages.html");
  t.is(html.headers.get("content-type"), "text/html; charset=UTF-8");
  t.is(await html.text(), "<b>hi</b>");
  const svg = await web("default/pages.svg");
  t.is(svg.headers.get("content-type"), "image/svg+xml");
  t.is(await svg.text(), "<svg xmlns='http://www.w3.org/2000/svg'/>");
  const json = await web("default/pages.json");
  t.like(await json.json(), { html: "<b>hi</b>" });
  const noHtml = await web("default/echo.html");
  t.is(noHtml.status, 400);
  t.is((await noHtml.json()).error, "Response is not valid 'text/html'.");
  const noText = await web("default/png.text");
  t.is(noText.status, 200, "an object without text is answered with its body field");
  // A sequence is a web action too; its components need not be.
  const seq = await web("default/seq.text?name=Seq");
  t.is(seq.status, 200);
  t.is(await seq.text(), "plain Seq");
  const inPackage = await web("site/page.html");
  t.is(inPackage.status, 200);
  t.is(await inPackage.text(), "<i>in a package</i>");
});

test("raw-http: the query as __ow_query and the body as __ow_body (JSON base64-encoded), nothing merged", async (t) => {
  const res = await web("default/raw.json?name=Jane&x=1", { method: "POST", headers: { "content-type": "application/json" }, body: '{"name":"Jane"}' });
  t.is(res.status, 200);
  const body = await res.json();
  t.is(body.__ow_query, "name=Jane&x=1");
  t.is(body.__ow_body, Buffer.from('{"name":"Jane"}').toString("base64"));
  t.false("name" in body);
  const text = await (await web("default/raw.json", { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" })).json();
  t.is(text.__ow_body, "hi");
  t.is(text.__ow_query, "");
  // Raw actions may be sent names that would be reserved elsewhere: they stay inside __ow_query.
  t.is((await web("default/raw.json?__ow_method=x")).status, 200);
});

test("final parameters cannot be overridden by the query or body; without final they can; __ow_* names are reserved", async (t) => {
  const kept = await web("default/finals.json?name=Ada");
  t.deepEqual(await kept.json(), { greeting: "Hello", name: "Ada" });
  for (const res of [
    await web("default/finals.json?greeting=Bye"),
    await web("default/finals.json", { method: "POST", headers: { "content-type": "application/json" }, body: '{"greeting":"Bye"}' }),
    await web("default/echo.json?__ow_method=put"),
    await web("default/echo.json", { method: "POST", headers: { "content-type": "application/json" }, body: '{"__ow_user":"root"}' }),
  ]) {
    t.is(res.status, 400);
    t.is((await res.json()).error, "Request defines parameters that are not allowed (e.g., reserved properties).");
  }
  t.deepEqual(await (await web("default/overridable.json?greeting=Bye")).json(), { greeting: "Bye" });
});

test("require-whisk-auth: a string must match X-Require-Whisk-Auth; true needs a valid API key", async (t) => {
  const denied = await web("default/secret.json");
  t.is(denied.status, 401);
  t.is((await denied.json()).error, "The supplied authentication is invalid.");
  t.is((await web("default/secret.json", { headers: { "x-require-whisk-auth": "wrong" } })).status, 401);
  const allowed = await web("default/secret.json", { headers: { "x-require-whisk-auth": "s3cret" } });
  t.is(allowed.status, 200);
  t.deepEqual(await allowed.json(), { user: null });

  t.is((await web("default/members.json")).status, 401);
  t.is((await web("default/members.json", { headers: { authorization: basic("nobody:wrong") } })).status, 401);
  const member = await web("default/members.json", { headers: { authorization: basic(platform.apiKey) } });
  t.is(member.status, 200);
  t.deepEqual(await member.json(), { user: "guest" });
});

test("not found: a non-web action, a missing action, package or namespace, and `_` as the namespace", async (t) => {
  for (const path of ["/api/v1/web/guest/default/plain.json", "/api/v1/web/guest/default/missing", "/api/v1/web/guest/nopkg/echo", "/api/v1/web/nobody/default/echo", "/api/v1/web/_/default/echo", "/api/v1/web/guest/default"]) {
    const res = await fetch(new URL(path, platform.url));
    t.is(res.status, 404, path);
    t.is((await res.json()).error, "The requested resource does not exist.", path);
  }
});

test("action errors: an application error answers its error field through the extension; a crash is a 400", async (t) => {
  const app = await web("default/fails.http?how=app");
  t.is(app.status, 418);
  t.is(await app.text(), "teapot");
  t.truthy(app.headers.get("x-openwhisk-activation-id"));
  const crash = await web("default/fails.http");
  t.is(crash.status, 400);
  t.is((await crash.json()).error, "There was an error processing your request.");
  t.truthy(crash.headers.get("x-openwhisk-activation-id"));
});

test("CORS: OPTIONS is answered for the action without running it; web-custom-options runs the action for it", async (t) => {
  const preflight = await web("default/echo.json", { method: "OPTIONS", headers: { "access-control-request-headers": "x-mine" } });
  t.is(preflight.status, 200);
  t.is(preflight.headers.get("access-control-allow-origin"), "*");
  t.is(preflight.headers.get("access-control-allow-methods"), "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH");
  t.is(preflight.headers.get("access-control-allow-headers"), "x-mine");
  t.is(preflight.headers.get("x-openwhisk-activation-id"), null, "nothing ran");
  const custom = await web("default/options.http", { method: "OPTIONS" });
  t.is(custom.status, 200);
  t.is(custom.headers.get("access-control-allow-origin"), "https://example.org");
  t.is(custom.headers.get("x-method"), "options");
  t.is(custom.headers.get("access-control-allow-methods"), null);
});

test("a body over the gateway's limit is a 413 naming it", async (t) => {
  const res = await web("default/echo.json", { method: "POST", headers: { "content-type": "text/plain" }, body: "x".repeat(5 * 1024 * 1024 + 1) });
  t.is(res.status, 413);
  t.regex((await res.json()).error, /larger than the limit of 5242880 bytes/);
});

test("a web action still running when the blocking wait ends: 202 with the activation id, as OpenWhisk", async (t) => {
  const res = await web("default/slow.json");
  t.is(res.status, 202);
  t.is((await res.json()).error, "Response not yet ready.");
  t.regex(res.headers.get("x-openwhisk-activation-id") ?? "", /^[0-9a-f]{32}$/);
});

test("malformed web requests get a 4xx JSON error, never a 5xx", async (t) => {
  const cases: Array<[string, RequestInit]> = [
    ["/api/v1/web/%E0%A4%A/default/echo.json", {}],
    ["/api/v1/web/guest/%ZZ/echo.json", {}],
    ["/api/v1/web/guest/default/..", {}],
    ["/api/v1/web/guest/default/.json", {}],
    ["/api/v1/web/guest/default/echo.json", { method: "POST", headers: { "content-type": ";;;" }, body: "x" }],
    ["/api/v1/web/guest/default/echo.json", { method: "POST", headers: { "content-type": "application/json" }, body: "[".repeat(200) + "]".repeat(200) }],
    ["/api/v1/web/guest/default/echo.json?" + "a=1&".repeat(2000), {}],
    ["/api/v1/web/guest/default/echo.json", { method: "POST", headers: { "content-type": "application/json", authorization: "Basic !!!" }, body: '{"__ow_headers":1}' }],
    ["/api/%E0%A4%A/x", {}],
    ["/api/guest/" + "a/".repeat(500), { method: "PUT" }],
  ];
  for (const [path, init] of cases) {
    const res = await fetch(new URL(path, platform.url), init);
    t.true(res.status < 500, `${path.slice(0, 80)} → ${res.status}`);
    if (res.status >= 400) t.is(typeof (await res.json()).error, "string", path.slice(0, 80));
  }
});

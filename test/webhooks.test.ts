// Webhooks (issue 9 item 5, and its bad input in item 8): POST /api/v1/webhooks/{ns}/{trigger}
// without an API key, HMAC-SHA256 of the raw body in GitHub's header or Vespid's, end to end
// through a rule to an action on the running platform; bad, missing and malformed signatures,
// oversized bodies and triggers that do not answer webhooks fire nothing.
import { createHmac } from "node:crypto";
import { request as httpRequest } from "node:http";
import test from "ava";
import { api, startPlatform, waitForActivation, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform();
  const echo = await platform.request("PUT", api("actions/hook-echo"), { exec: { kind: "nodejs", code: "function main(params) { return params; }" } });
  if (echo.status !== 200) throw new Error(`creating the action: ${JSON.stringify(echo.body)}`);
});
test.after.always(async () => {
  await platform?.stop();
});

const SECRET = "It's a Secret to Everybody";
const sign = (body: string | Buffer, secret = SECRET) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
const hook = (trigger: string, namespace = "guest") => `/api/v1/webhooks/${namespace}/${trigger}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A trigger with these annotations and a rule to the echo action. */
async function hookTrigger(t: { is: (a: unknown, b: unknown, m?: string) => void }, name: string, annotations: Array<{ key: string; value: unknown }>) {
  const created = await platform.request("PUT", api(`triggers/${name}`), { annotations });
  t.is(created.status, 200, JSON.stringify(created.body));
  const rule = await platform.request("PUT", api(`rules/${name}-rule`), { trigger: `/_/${name}`, action: "/_/hook-echo" });
  t.is(rule.status, 200, JSON.stringify(rule.body));
}

/** POST to a webhook the way an outside service does: no credentials, raw body, given headers. */
async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, platform.url), { method: "POST", body: typeof body === "string" ? body : new Uint8Array(body), headers, signal: AbortSignal.timeout(60_000) }).catch((err) => {
    throw new Error(`POST ${path} with ${JSON.stringify(headers)}: ${err.cause ?? err}`);
  });
  const text = await res.text();
  return { status: res.status, headers: Object.fromEntries(res.headers), body: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

/**
 * A POST on a connection of its own. The gateway answers 413 before the body has arrived and then
 * closes that connection, which must not hit a request of another test that fetch's shared pool
 * would put on it next.
 */
function postAlone(path: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, platform.url), { method: "POST", headers: { ...headers, "content-length": String(body.length) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : text });
      });
    });
    // The server may hang up before the whole body is sent: the answer already came.
    req.on("error", (err) => (req.writableEnded ? undefined : reject(err)));
    req.end(body);
  });
}

/** What the rule's action got for the fire `id`. */
async function actionParams(id: string) {
  const trigger = await waitForActivation(platform, id);
  const [log] = trigger.logs.map((l: string) => JSON.parse(l));
  return (await waitForActivation(platform, log.activationId)).response.result;
}

/** Trigger activations recorded for `name` (each fire that got through makes one). */
async function firesOf(name: string): Promise<number> {
  const res = await platform.request("GET", api(`activations?name=${name}&limit=200`));
  return res.body.length;
}

test("a GitHub-style signed webhook fires the trigger: body as parameters, headers without credentials, answered 202 with the id", async (t) => {
  await hookTrigger(t, "gh", [{ key: "webhook", value: true }, { key: "webhook-secret", value: SECRET }]);
  const body = JSON.stringify({ action: "opened", number: 7, __webhook_verified: "forged" });
  const res = await post(hook("gh"), body, {
    "content-type": "application/json",
    "x-github-event": "pull_request",
    "x-hub-signature-256": sign(body),
    authorization: "Basic c2VjcmV0OnNlY3JldA==",
    cookie: "session=1",
  });
  t.is(res.status, 202, JSON.stringify(res.body));
  t.regex(res.body.activationId, /^[0-9a-f]{32}$/);
  t.is(res.headers["x-openwhisk-activation-id"], res.body.activationId);
  const params = await actionParams(res.body.activationId);
  t.like(params, { action: "opened", number: 7, __webhook_verified: true });
  t.is(params.__webhook_headers["x-github-event"], "pull_request");
  t.is(params.__webhook_headers["content-type"], "application/json");
  t.false("authorization" in params.__webhook_headers, "credentials are not passed on");
  t.false("cookie" in params.__webhook_headers);
  const record = await waitForActivation(platform, res.body.activationId);
  t.like(record, { name: "gh", namespace: "guest" });
});

test("the generic X-Vespid-Signature header works the same; a non-object JSON body arrives in __webhook_data", async (t) => {
  await hookTrigger(t, "generic", [{ key: "webhook", value: true }, { key: "webhook-secret", value: SECRET }]);
  const body = "[1,2,3]";
  const res = await post(hook("generic"), body, { "content-type": "application/json", "x-vespid-signature": sign(body) });
  t.is(res.status, 202, JSON.stringify(res.body));
  t.like(await actionParams(res.body.activationId), { __webhook_data: [1, 2, 3], __webhook_verified: true });
});

test("missing, wrong, malformed or misplaced signatures are 401 and fire nothing", async (t) => {
  await hookTrigger(t, "guarded", [{ key: "webhook", value: true }, { key: "webhook-secret", value: SECRET }]);
  const body = JSON.stringify({ transfer: 1_000_000 });
  const attempts: Array<[string, Record<string, string>, RegExp]> = [
    ["no signature", {}, /missing signature/],
    ["another secret", { "x-hub-signature-256": sign(body, "guess") }, /does not match/],
    ["another body", { "x-hub-signature-256": sign(body + " ") }, /does not match/],
    ["sha1, GitHub's old header", { "x-hub-signature": `sha1=${createHmac("sha1", SECRET).update(body).digest("hex")}` }, /missing signature/],
    ["no sha256= prefix", { "x-vespid-signature": sign(body).slice("sha256=".length) }, /does not match/],
    ["truncated", { "x-vespid-signature": sign(body).slice(0, 40) }, /does not match/],
    ["not hex", { "x-vespid-signature": `sha256=${"z".repeat(64)}` }, /does not match/],
    ["empty", { "x-hub-signature-256": "" }, /does not match/],
  ];
  for (const [what, headers, message] of attempts) {
    const res = await post(hook("guarded"), body, { "content-type": "application/json", ...headers });
    t.is(res.status, 401, what);
    t.regex(res.body.error, message, what);
  }
  const ok = await post(hook("guarded"), body, { "x-hub-signature-256": sign(body) });
  t.is(ok.status, 202, "the right signature still works");
  await waitForActivation(platform, ok.body.activationId);
  await sleep(1000);
  t.is(await firesOf("guarded"), 1, "only the signed request fired");
});

test("an oversized body is 413 before anything else; the limit is the raw body's size", async (t) => {
  await hookTrigger(t, "big", [{ key: "webhook", value: true }, { key: "webhook-secret", value: SECRET }]);
  const huge = Buffer.alloc(1024 * 1024 + 1, 0x61);
  const res = await postAlone(hook("big"), huge, { "x-hub-signature-256": sign(huge) });
  t.is(res.status, 413);
  t.regex(res.body.error, /larger than the limit of 1048576 bytes/);
  const exactly = Buffer.from(JSON.stringify({ pad: "a".repeat(1024 * 1024 - 10) }));
  t.is(exactly.length, 1024 * 1024);
  const fits = await post(hook("big"), exactly, { "x-hub-signature-256": sign(exactly) });
  t.is(fits.status, 202, JSON.stringify(fits.body).slice(0, 200));
  await waitForActivation(platform, fits.body.activationId);
  await sleep(500);
  t.is(await firesOf("big"), 1);
});

test("404 for triggers that do not answer webhooks: missing, not annotated, webhook: false, bad names", async (t) => {
  const plain = await platform.request("PUT", api("triggers/plain"), {});
  t.is(plain.status, 200);
  const off = await platform.request("PUT", api("triggers/off"), { annotations: [{ key: "webhook", value: false }, { key: "webhook-secret", value: SECRET }] });
  t.is(off.status, 200);
  for (const path of [hook("nope"), hook("plain"), hook("off"), hook("plain", "other-ns"), hook("%20bad"), "/api/v1/webhooks/guest"]) {
    const res = await post(path, "{}", { "x-hub-signature-256": sign("{}") });
    t.is(res.status, 404, path);
  }
});

test("webhook: \"unsigned\" takes requests without a signature; non-JSON bodies arrive base64", async (t) => {
  await hookTrigger(t, "open", [{ key: "webhook", value: "unsigned" }]);
  const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80]);
  const res = await post(hook("open"), bytes, { "content-type": "application/octet-stream" });
  t.is(res.status, 202, JSON.stringify(res.body));
  const params = await actionParams(res.body.activationId);
  t.like(params, { __webhook_body_base64: bytes.toString("base64"), __webhook_verified: false });
  const form = await post(hook("open"), "a=1&b=2", { "content-type": "application/x-www-form-urlencoded" });
  t.is(form.status, 202);
  t.like(await actionParams(form.body.activationId), { __webhook_body_base64: Buffer.from("a=1&b=2").toString("base64") });
});

test("a sender's retry of one delivery (X-GitHub-Delivery) fires once, answered with the same id", async (t) => {
  await hookTrigger(t, "retried", [{ key: "webhook", value: true }, { key: "webhook-secret", value: SECRET }]);
  const body = JSON.stringify({ ref: "main" });
  const headers = { "x-hub-signature-256": sign(body), "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958" };
  const first = await post(hook("retried"), body, headers);
  const second = await post(hook("retried"), body, headers);
  t.is(first.status, 202);
  t.is(second.status, 202);
  t.is(second.body.activationId, first.body.activationId);
  await waitForActivation(platform, first.body.activationId);
  await sleep(1000);
  t.is(await firesOf("retried"), 1);
});

test("the secret is never shown: GET and listings redact it; sending the redacted value back keeps the secret", async (t) => {
  await hookTrigger(t, "hidden", [{ key: "webhook", value: true }, { key: "webhook-secret", value: SECRET }]);
  const got = await platform.request("GET", api("triggers/hidden"));
  t.false(JSON.stringify(got.body).includes(SECRET));
  t.deepEqual(got.body.annotations, [{ key: "webhook", value: true }, { key: "webhook-secret", value: "********" }]);
  const list = await platform.request("GET", api("triggers?limit=200"));
  t.false(JSON.stringify(list.body).includes(SECRET));
  // A client updating what it read (wsk trigger update does GET, then PUT).
  const put = await platform.request("PUT", api("triggers/hidden?overwrite=true"), { annotations: got.body.annotations });
  t.is(put.status, 200, JSON.stringify(put.body));
  t.false(JSON.stringify(put.body).includes(SECRET));
  const body = "{}";
  t.is((await post(hook("hidden"), body, { "x-hub-signature-256": sign(body) })).status, 202, "the stored secret was kept");
  t.is((await post(hook("hidden"), body, { "x-hub-signature-256": sign(body, "********") })).status, 401, "the redaction marker is no secret");
});

test("bad webhook annotations are refused at PUT with the field named", async (t) => {
  const cases: Array<[Array<{ key: string; value: unknown }>, RegExp]> = [
    [[{ key: "webhook", value: true }], /webhook: true needs a webhook-secret/],
    [[{ key: "webhook", value: "yes" }], /annotations\.0\.value: webhook must be/],
    [[{ key: "webhook", value: true }, { key: "webhook-secret", value: "" }], /annotations\.1\.value: webhook-secret must be a string/],
    [[{ key: "webhook", value: true }, { key: "webhook-secret", value: 42 }], /annotations\.1\.value: webhook-secret must be a string/],
  ];
  for (const [annotations, message] of cases) {
    const res = await platform.request("PUT", api("triggers/badhook"), { annotations });
    t.is(res.status, 400, JSON.stringify(annotations));
    t.regex(res.body.error, message);
  }
  t.is((await platform.request("GET", api("triggers/badhook"))).status, 404);
});

// Namespaces and keys: the admin module and the `vespid admin` command against a running platform,
// Basic auth as OpenWhisk (401 without valid credentials), keys stored hashed, and a key of one
// namespace denied everything of another (403 by name, 404 through `_`).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { Kvm } from "@nats-io/kv";
import openwhisk from "openwhisk";
import { Admin, AdminError } from "../admin/namespaces.ts";
import { AUTH_BUCKET } from "../contracts/index.ts";
import { startPlatform, type Platform } from "./harness.ts";

const run = promisify(execFile);
let platform: Platform;
let admin: Admin;
test.before(async () => {
  platform = await startPlatform();
  admin = await Admin.open(platform.nc);
});
test.after.always(async () => {
  await platform?.stop();
});

const JS_ECHO = "function main(params) { return { echo: params }; }";
const basic = (apiKey: string) => `Basic ${Buffer.from(apiKey).toString("base64")}`;

/** Runs `vespid admin ...` as a user would, pointed at the test platform's NATS by its data dir. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import=tsx", "bin/vespid.ts", "admin", ...args, "--data-dir", join(platform.dataDir, "nats")], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test("the default namespace exists with its key, and GET /namespaces lists the caller's own", async (t) => {
  const list = await admin.listNamespaces();
  const guest = list.find((ns) => ns.name === "guest");
  t.truthy(guest);
  t.is(guest!.keys, 1);
  const res = await platform.request("GET", "/api/v1/namespaces");
  t.is(res.status, 200);
  t.deepEqual(res.body, ["guest"]);
});

test("a new namespace's key works on `_` and is stored only as a salted hash", async (t) => {
  const { namespace, apiKey } = await admin.createNamespace("team-hash");
  t.is(namespace, "team-hash");
  const [uuid, key] = apiKey.split(":");
  t.regex(uuid!, /^[0-9a-f-]{36}$/);
  t.regex(key!, /^[0-9a-f]{64}$/);

  const res = await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: apiKey });
  t.is(res.status, 200);
  t.deepEqual(res.body, []);
  t.deepEqual((await platform.request("GET", "/api/v1/namespaces", undefined, {}, { auth: apiKey })).body, ["team-hash"]);
  // The own namespace by name works as well as `_`.
  t.is((await platform.request("GET", "/api/v1/namespaces/team-hash/actions", undefined, {}, { auth: apiKey })).status, 200);

  const stored = await (await new Kvm(platform.nc).open(AUTH_BUCKET)).get(uuid!);
  const raw = new TextDecoder().decode(stored!.value);
  t.false(raw.includes(key!), "the key itself must not be stored");
  const record = JSON.parse(raw);
  t.is(record.namespace, "team-hash");
  t.regex(record.keyHash, /^[0-9a-f]{128}$/);
  t.regex(record.salt, /^[0-9a-f]{32}$/);
});

test("requests without valid credentials get 401 with WWW-Authenticate; health and docs need none", async (t) => {
  const { apiKey } = await admin.createNamespace("team-401");
  const [uuid, key] = apiKey.split(":");
  const wrongKey = `${uuid}:${key!.replace(/.$/, (c) => (c === "0" ? "1" : "0"))}`;
  const cases: Array<Record<string, string>> = [
    {},
    { authorization: basic(wrongKey) },
    { authorization: basic(`00000000-0000-0000-0000-000000000000:${key}`) },
    { authorization: basic("no-colon") },
    { authorization: basic(":") },
    { authorization: "Basic !!!not-base64" },
    { authorization: `Bearer ${key}` },
    { authorization: basic(`../${uuid}:${key}`) },
    { authorization: basic(`${uuid}\u00e9:${key}`) },
  ];
  for (const headers of cases) {
    for (const path of ["/api/v1/namespaces", "/api/v1/namespaces/_/actions", "/api/v1/namespaces/team-401/activations"]) {
      const res = await platform.request("GET", path, undefined, headers, { auth: false });
      t.is(res.status, 401, `${path} with ${JSON.stringify(headers)}`);
      t.is(res.headers["www-authenticate"], 'Basic realm="vespid"');
      t.is(typeof res.body.error, "string");
    }
  }
  for (const path of ["/health", "/api/v1", "/api/v1/openapi.json", "/docs"]) {
    t.is((await platform.request("GET", path, undefined, {}, { auth: false })).status, 200, path);
  }
});

test("a key of namespace A gets 403 on every route of namespace B by name (but the shared package listing), 404 through `_`", async (t) => {
  // B is the default namespace, with an action, a package and an activation.
  t.is((await platform.request("PUT", "/api/v1/namespaces/_/actions/secret", { exec: { kind: "nodejs", code: JS_ECHO } })).status, 200);
  t.is((await platform.request("PUT", "/api/v1/namespaces/_/packages/private", {})).status, 200);
  const invoked = await platform.request("POST", "/api/v1/namespaces/_/actions/secret?blocking=true", { x: 1 });
  t.is(invoked.status, 200, JSON.stringify(invoked.body));
  const activationId = invoked.body.activationId as string;

  const { apiKey: a } = await admin.createNamespace("team-a");
  const asA = (method: string, path: string, body?: unknown) => platform.request(method, path, body, {}, { auth: a });
  const put = { exec: { kind: "nodejs", code: JS_ECHO } };
  const byName: Array<[string, string, unknown?]> = [
    ["GET", "/api/v1/namespaces/guest/actions"],
    ["GET", "/api/v1/namespaces/guest/actions/secret"],
    ["PUT", "/api/v1/namespaces/guest/actions/secret?overwrite=true", put],
    ["PUT", "/api/v1/namespaces/guest/actions/new-one", put],
    ["DELETE", "/api/v1/namespaces/guest/actions/secret"],
    ["POST", "/api/v1/namespaces/guest/actions/secret?blocking=true", {}],
    ["GET", "/api/v1/namespaces/guest/actions/private/x"],
    ["GET", "/api/v1/namespaces/guest/activations"],
    ["GET", `/api/v1/namespaces/guest/activations/${activationId}`],
    ["GET", `/api/v1/namespaces/guest/activations/${activationId}/logs`],
    ["GET", `/api/v1/namespaces/guest/activations/${activationId}/result`],
    ["GET", "/api/v1/namespaces/guest/packages/private"],
    ["PUT", "/api/v1/namespaces/guest/packages/private?overwrite=true", {}],
    ["DELETE", "/api/v1/namespaces/guest/packages/private"],
  ];
  for (const [method, path, body] of byName) {
    const res = await asA(method, path, body);
    t.is(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
    t.is(typeof res.body.error, "string");
  }
  // OpenWhisk lets anyone list another namespace's packages, answering only the published ones
  // (test/shared-access.test.ts): B has none, so A sees none, and the private one stays unnamed.
  const listed = await asA("GET", "/api/v1/namespaces/guest/packages");
  t.is(listed.status, 200);
  t.deepEqual(listed.body, []);
  // Through `_`, A sees its own (empty) namespace: B's entities simply do not exist there.
  const own: Array<[string, string, unknown?]> = [
    ["GET", "/api/v1/namespaces/_/actions/secret"],
    ["DELETE", "/api/v1/namespaces/_/actions/secret"],
    ["POST", "/api/v1/namespaces/_/actions/secret?blocking=true", {}],
    ["GET", `/api/v1/namespaces/_/activations/${activationId}`],
    ["GET", `/api/v1/namespaces/_/activations/${activationId}/logs`],
    ["GET", `/api/v1/namespaces/_/activations/${activationId}/result`],
    ["GET", "/api/v1/namespaces/_/packages/private"],
  ];
  for (const [method, path, body] of own) t.is((await asA(method, path, body)).status, 404, `${method} ${path}`);
  t.deepEqual((await asA("GET", "/api/v1/namespaces/_/actions")).body, []);
  t.deepEqual((await asA("GET", "/api/v1/namespaces/_/packages")).body, []);
  const activations = await asA("GET", "/api/v1/namespaces/_/activations");
  t.is(activations.status, 200);
  t.deepEqual(activations.body, []);

  // Nothing of B changed.
  const secret = await platform.request("GET", "/api/v1/namespaces/_/actions/secret");
  t.is(secret.status, 200);
  t.is(secret.body.version, "0.0.1");
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions/new-one")).status, 404);
  t.is((await platform.request("GET", "/api/v1/namespaces/_/packages/private")).status, 200);
});

test("keys can be added, listed and deleted; a deleted key is refused", async (t) => {
  await admin.createNamespace("team-keys");
  const second = await admin.createKey("team-keys");
  const keys = await admin.listKeys("team-keys");
  t.is(keys.length, 2);
  t.true(keys.every((k) => k.namespace === "team-keys"));
  t.true(keys.some((k) => k.uuid === second.split(":")[0]));
  t.true((await admin.listKeys()).length >= 3);

  // Deleted before first use, so no gateway has it in its short-lived auth cache.
  const third = await admin.createKey("team-keys");
  await admin.deleteKey(third.split(":")[0]!);
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: third })).status, 401);
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: second })).status, 200);
  await t.throwsAsync(admin.deleteKey(third.split(":")[0]!), { instanceOf: AdminError });
  await t.throwsAsync(admin.createKey("no-such-namespace"), { instanceOf: AdminError, message: /no namespace no-such-namespace/ });
});

test("a key in use stops working within a moment of its deletion: every gateway watches the keys", async (t) => {
  await admin.createNamespace("team-revoked");
  const key = await admin.createKey("team-revoked");
  // Used first, so the gateway has verified it and remembers it.
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: key })).status, 200);
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: key })).status, 200);
  await admin.deleteKey(key.split(":")[0]!);
  // The watch's change arrives within milliseconds; the remembered verification lasts 30 s.
  const deadline = Date.now() + 2_000;
  let status = 200;
  while (status !== 401 && Date.now() < deadline) {
    status = (await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: key })).status;
    if (status !== 401) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.is(status, 401, "the deleted key was still accepted 2 s after its deletion");
});

test("namespace names follow the entity rules; `_` is reserved; a namespace is created once", async (t) => {
  for (const bad of ["", "_", "../x", "a/b", " lead", "trail ", "x".repeat(257), "caf\u00e9", "a\nb", ".hidden"]) {
    await t.throwsAsync(admin.createNamespace(bad), { instanceOf: AdminError }, JSON.stringify(bad));
  }
  t.false((await admin.listNamespaces()).some((ns) => ns.name === "_" || ns.name === "../x"));
  await admin.createNamespace("team-once");
  await t.throwsAsync(admin.createNamespace("team-once"), { instanceOf: AdminError, message: /already exists/ });
  t.is((await admin.listKeys("team-once")).length, 1, "the refused create made no key");
});

test("deleting a namespace deletes its keys and its limits", async (t) => {
  const { apiKey } = await admin.createNamespace("team-gone");
  await admin.createKey("team-gone");
  await admin.setLimits("team-gone", { concurrent: 3 });
  t.deepEqual(await admin.deleteNamespace("team-gone"), { keysDeleted: 2 });
  t.deepEqual(await admin.listKeys("team-gone"), []);
  t.false((await admin.listNamespaces()).some((ns) => ns.name === "team-gone"));
  await t.throwsAsync(admin.getLimits("team-gone"), { instanceOf: AdminError });
  await t.throwsAsync(admin.deleteNamespace("team-gone"), { instanceOf: AdminError, message: /no namespace/ });
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: apiKey })).status, 401);
});

test("limits are validated and set field by field", async (t) => {
  await admin.createNamespace("team-limits");
  t.deepEqual(await admin.getLimits("team-limits"), {});
  t.deepEqual(await admin.setLimits("team-limits", { concurrent: 5 }), { concurrent: 5 });
  t.deepEqual(await admin.setLimits("team-limits", { perMinute: 60 }), { concurrent: 5, perMinute: 60 });
  for (const bad of [{ concurrent: -1 }, { perMinute: 1.5 }, { concurrent: 2_000_000 }, { other: 1 }] as any[]) {
    await t.throwsAsync(admin.setLimits("team-limits", bad), { instanceOf: AdminError }, JSON.stringify(bad));
  }
  t.deepEqual(await admin.getLimits("team-limits"), { concurrent: 5, perMinute: 60 });
});

test("the vespid admin command finds the embedded NATS by data dir and manages namespaces, keys and limits", async (t) => {
  const created = await cli("namespace", "create", "cli-team");
  t.is(created.code, 0, created.stderr);
  const apiKey = /API key\s+(\S+:\S+)/.exec(created.stdout)?.[1];
  t.truthy(apiKey, created.stdout);
  t.is((await platform.request("GET", "/api/v1/namespaces/_/actions", undefined, {}, { auth: apiKey! })).status, 200);

  const key = await cli("key", "create", "cli-team");
  t.is(key.code, 0, key.stderr);
  const second = key.stdout.split("\n")[0]!;
  t.is((await platform.request("GET", "/api/v1/namespaces", undefined, {}, { auth: second })).body[0], "cli-team");

  const keys = await cli("key", "list", "cli-team", "--json");
  t.is(keys.code, 0, keys.stderr);
  t.is(JSON.parse(keys.stdout).length, 2);
  t.false(keys.stdout.includes(apiKey!.split(":")[1]!), "listing never shows a secret");

  const limits = await cli("limits", "set", "cli-team", "--concurrent", "7", "--per-minute", "70");
  t.is(limits.code, 0, limits.stderr);
  t.deepEqual(JSON.parse((await cli("limits", "get", "cli-team", "--json")).stdout).limits, { concurrent: 7, perMinute: 70 });
  const list = JSON.parse((await cli("namespace", "list", "--json")).stdout);
  t.deepEqual(list.find((ns: any) => ns.name === "cli-team").limits, { concurrent: 7, perMinute: 70 });

  const deleted = await cli("key", "delete", apiKey!.split(":")[0]!);
  t.is(deleted.code, 0, deleted.stderr);
  t.is((await cli("namespace", "delete", "cli-team")).code, 0);
  t.deepEqual(await admin.listKeys("cli-team"), []);

  // Mistakes: usage errors exit 2, refusals 1, each with a message.
  const usage = await cli("namespace", "explode");
  t.is(usage.code, 2);
  t.regex(usage.stderr, /unknown admin command/);
  const badNumber = await cli("limits", "set", "guest", "--concurrent", "many");
  t.is(badNumber.code, 2);
  t.regex(badNumber.stderr, /--concurrent must be a whole number/);
  const unknown = await cli("key", "create", "nobody-here");
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no namespace nobody-here/);
  const reserved = await cli("namespace", "create", "_");
  t.is(reserved.code, 1);
  t.regex(reserved.stderr, /reserved/);
});

test("the admin command says so when no platform runs where it looks", async (t) => {
  const { code, stderr } = await run(process.execPath, ["--import=tsx", "bin/vespid.ts", "admin", "namespace", "list", "--data-dir", join(platform.dataDir, "nowhere")]).then(
    () => ({ code: 0, stderr: "" }),
    (err) => err as { code: number; stderr: string },
  );
  t.is(code, 1);
  t.regex(stderr, /no running Vespid/);
});

test("an existing OpenWhisk client (the openwhisk npm package) works with a namespace's key", async (t) => {
  const { apiKey } = await admin.createNamespace("ow-client");
  const ow = openwhisk({ api: `${platform.url}/api/v1/`, api_key: apiKey });
  t.deepEqual(await ow.namespaces.list(), ["ow-client"]);
  const created = await ow.actions.create({ name: "hello", action: "function main(p) { return { hi: p.name }; }", kind: "nodejs" } as any);
  t.is(created.version, "0.0.1");
  t.deepEqual(await ow.actions.invoke({ name: "hello", params: { name: "Ada" }, blocking: true, result: true }), { hi: "Ada" });
  t.deepEqual((await ow.actions.list()).map((a: any) => a.name), ["hello"]);
  const { activationId } = (await ow.actions.invoke({ name: "hello", params: { name: "Bo" } })) as { activationId: string };
  let record: any;
  for (let i = 0; i < 200 && !record; i++) {
    record = await ow.activations.get({ name: activationId }).catch(() => undefined);
    if (!record) await new Promise((r) => setTimeout(r, 50));
  }
  t.deepEqual(record?.response.result, { hi: "Bo" });
  t.is(record?.namespace, "ow-client");
  // Another namespace through the client: refused like any other request.
  const other = openwhisk({ api: `${platform.url}/api/v1/`, api_key: apiKey, namespace: "guest" });
  const err = await other.actions.list().then(() => undefined, (e: unknown) => e as { statusCode?: number });
  t.is(err?.statusCode, 403);
  await ow.actions.delete({ name: "hello" });
  t.deepEqual(await ow.actions.list(), []);
});

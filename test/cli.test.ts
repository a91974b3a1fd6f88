// The `vespid` CLI (issue 11, item 1): the real bin (bin/vespid.js, from a temp directory, as after
// `npm install -g`) against a running platform, with __OW_API_HOST/__OW_API_KEY or a properties
// file in a temp HOME. Checks what it prints (tables, `--json` shapes), its exit codes (0, 1 for a
// failure of the API or the action, 2 for usage) and the hints on errors.
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { strToU8, zipSync } from "fflate";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { api, startPlatform, type Platform } from "./harness.ts";

const BIN = fileURLToPath(new URL("../bin/vespid.js", import.meta.url));

let platform: Platform;
let home: string;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  home = await mkdtemp(join(tmpdir(), "vespid-cli-"));
});
test.after.always(async () => {
  await platform?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in `cwd` (default: the temp HOME) with the platform's host and key in the environment. */
function vespid(args: string[], options: { env?: Record<string, string | undefined>; cwd?: string; platformEnv?: boolean } = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { PATH: process.env.PATH, HOME: home, VESPID_DATA_DIR: join(home, "no-platform-here") };
  if (options.platformEnv !== false) Object.assign(env, { __OW_API_HOST: platform.url, __OW_API_KEY: platform.apiKey });
  Object.assign(env, options.env);
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: options.cwd ?? home, env: env as NodeJS.ProcessEnv, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const json = (run: Run): any => {
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
};

async function file(name: string, text: string | Buffer): Promise<string> {
  const dir = join(home, "files");
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** A port nothing listens on: one the system just handed out and that was closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** Polls until `check` returns something (60 s at most). */
async function eventually<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const found = await check();
    if (found !== undefined) return found;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} never happened`);
}

test.serial("a JS action: create from a .js file with -p, invoke with -p and -P, get, list, delete", async (t) => {
  const code = await file("greet.js", `function main(p) { console.log("greeting " + p.name); return { greeting: p.greeting + ", " + p.name, n: p.n }; }`);
  const created = await vespid(["action", "create", "greet", code, "-p", "greeting", "Hello", "-t", "5000", "-m", "128"]);
  t.is(created.code, 0, created.stderr);
  t.is(created.stdout.trim(), "ok: created action /_/greet");

  const again = await vespid(["action", "create", "greet", code]);
  t.is(again.code, 1);
  t.regex(again.stderr, /HTTP 409/);
  t.regex(again.stderr, /vespid action update/);

  const params = await file("params.json", JSON.stringify({ name: "file", n: 1 }));
  const result = await vespid(["action", "invoke", "greet", "-P", params, "-p", "name", "Ada", "-r"]);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(json(result), { greeting: "Hello, Ada", n: 1 }, "-p wins over -P for the same key; the file fills the rest");
  const typed = await vespid(["action", "invoke", "greet", "-p", "name", "Bo", "-p", "n", "[1,2]", "--result"]);
  t.deepEqual(json(typed).n, [1, 2], "a -p value that parses as JSON is JSON");

  const blocking = await vespid(["action", "invoke", "greet", "-p", "name", "Cy", "-b", "--json"]);
  t.is(blocking.code, 0, blocking.stderr);
  const activation = json(blocking);
  t.like(activation, { name: "greet", response: { success: true, result: { greeting: "Hello, Cy" } } });
  t.regex(activation.activationId, /^[0-9a-f]{32}$/);
  t.true(activation.logs.some((l: string) => l.includes("greeting Cy")));

  const async = await vespid(["action", "invoke", "greet", "-p", "name", "Di"]);
  t.regex(async.stdout, /^ok: invoked \/_\/greet with id [0-9a-f]{32}\n$/);

  const got = json(await vespid(["action", "get", "greet", "--json"]));
  t.like(got, { name: "greet", namespace: "guest", limits: { timeout: 5000, memory: 128 } });
  t.deepEqual(got.parameters, [{ key: "greeting", value: "Hello" }]);
  const summary = await vespid(["action", "get", "greet", "--summary"]);
  t.regex(summary.stdout, /action \/guest\/greet \(version 0\.0\.1, nodejs:20\)/);
  t.regex(summary.stdout, /parameters {2}greeting/);

  const update = await vespid(["action", "update", "greet", "-p", "greeting", "Hi"]);
  t.is(update.code, 0, update.stderr);
  t.deepEqual(json(await vespid(["action", "invoke", "greet", "-p", "name", "Ed", "-r"])).greeting, "Hi, Ed", "an update without code keeps it");

  const list = await vespid(["action", "list"]);
  t.is(list.code, 0);
  t.regex(list.stdout, /action.*kind.*version/);
  t.regex(list.stdout, /\/guest\/greet.*nodejs:20.*0\.0\.2/);
  const listJson = json(await vespid(["action", "list", "--json"]));
  t.true(Array.isArray(listJson) && listJson.some((a: any) => a.name === "greet"));

  t.is((await vespid(["action", "delete", "greet"])).stdout.trim(), "ok: deleted action /_/greet");
  const missing = await vespid(["action", "invoke", "greet", "-r"]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /HTTP 404/);
  t.regex(missing.stderr, /vespid action list/);
  t.is(missing.stdout, "");
});

test.serial("a C action: kind from .c, compiled on create, invoked with a parameter", async (t) => {
  const code = await file(
    "double.c",
    `#include <vespid.h>
const char *vespid_main(const char *params) {
  double n = 0;
  vespid_get_number(params, "n", &n);
  vespid_log("doubling");
  struct vespid_json *out = vespid_json_new();
  vespid_json_number(out, "doubled", n * 2);
  return vespid_json_finish(out);
}
`,
  );
  const created = await vespid(["action", "create", "double", code]);
  t.is(created.code, 0, created.stderr);
  const got = json(await vespid(["action", "get", "double", "--json"]));
  t.is(got.exec.kind, "c");
  const result = await vespid(["action", "invoke", "double", "-p", "n", "21", "-r"]);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(json(result), { doubled: 42 });

  const broken = await file("broken.c", "this is not C");
  const failed = await vespid(["action", "create", "broken", broken]);
  t.is(failed.code, 1);
  t.regex(failed.stderr, /error: .*HTTP 4\d\d/);
});

test.serial("a zip action: .zip is sent as a binary nodejs:20 action, --main names its function", async (t) => {
  const archive = zipSync({ "package.json": strToU8(JSON.stringify({ main: "lib.js" })), "lib.js": strToU8("exports.hi = (p) => ({ hi: p.who });") });
  const created = await vespid(["action", "create", "zipped", await file("bundle.zip", Buffer.from(archive)), "--main", "hi"]);
  t.is(created.code, 0, created.stderr);
  const got = json(await vespid(["action", "get", "zipped", "--json"]));
  t.like(got.exec, { kind: "nodejs:20", binary: true, main: "hi" });
  t.deepEqual(json(await vespid(["action", "invoke", "zipped", "-p", "who", "zip", "-r"])), { hi: "zip" });

  t.is((await vespid(["action", "update", "zipped", "--web", "true", "--web-secure", "s3cret", "-a", "note", "{\"x\":1}"])).code, 0);
  const secured = json(await vespid(["action", "get", "zipped", "--json"]));
  t.like(Object.fromEntries(secured.annotations.map((a: any) => [a.key, a.value])), { "web-export": true, "require-whisk-auth": "s3cret", note: { x: 1 } });
  t.true(secured.exec.binary, "an update without the file keeps the zip");
  const url = (await vespid(["action", "get", "zipped", "--url"])).stdout.trim();
  t.is((await fetch(`${url}.json?who=web`)).status, 401, "the secret is required");
  t.deepEqual(await (await fetch(`${url}.json?who=web`, { headers: { "x-require-whisk-auth": "s3cret" } })).json(), { hi: "web" });
});

test.serial("usage errors exit 2 and say what is wrong", async (t) => {
  const noCode = await vespid(["action", "create", "x"]);
  t.is(noCode.code, 2);
  t.regex(noCode.stderr, /needs code: give a file/);
  const pairMissing = await vespid(["action", "invoke", "x", "-p", "name"]);
  t.is(pairMissing.code, 2);
  t.regex(pairMissing.stderr, /-p takes a key and a value/);
  const unknownExt = await vespid(["action", "create", "x", await file("x.py", "print(1)")]);
  t.is(unknownExt.code, 2);
  t.regex(unknownExt.stderr, /--kind/);
  const noName = await vespid(["action", "invoke"]);
  t.is(noName.code, 2);
  t.regex(noName.stderr, /missing required argument 'name'/);
  const unknown = await vespid(["action", "frobnicate"]);
  t.is(unknown.code, 2);
  const badTimeout = await vespid(["action", "create", "x", await file("t.js", "function main(){return {}}"), "-t", "soon"]);
  t.is(badTimeout.code, 2);
  t.regex(badTimeout.stderr, /--timeout must be a whole number/);
  const noFile = await vespid(["action", "invoke", "x", "-P", join(home, "nope.json")]);
  t.is(noFile.code, 2);
  t.regex(noFile.stderr, /no such file/);
  t.is((await vespid(["action", "--help"])).code, 0);
});

test.serial("a failing action: invoke -r exits 1 with its error, and activation logs show why", async (t) => {
  await vespid(["action", "create", "boom", await file("boom.js", `function main() { console.log("about to fail"); return { error: "it broke" }; }`)]);
  const run = await vespid(["action", "invoke", "boom", "-r"]);
  t.is(run.code, 1);
  t.deepEqual(json(run), { error: "it broke" });
  t.regex(run.stderr, /the activation failed: it broke/);
  t.regex(run.stderr, /vespid activation logs/);
});

test.serial("activation list, get, logs, result (and --last)", async (t) => {
  await vespid(["action", "create", "logger", await file("logger.js", `function main(p) { console.log("line one"); console.error("line two"); return { got: p.x }; }`)]);
  const invoked = json(await vespid(["action", "invoke", "logger", "-p", "x", "7", "-b", "--json"]));
  const id = invoked.activationId;

  const list = await vespid(["activation", "list", "logger"]);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /activation id/);
  t.true(list.stdout.includes(id));
  t.regex(list.stdout, /success.*guest\/logger:0\.0\.1/);
  const listed = json(await vespid(["activation", "list", "--json", "--limit", "5", "logger"]));
  t.is(listed[0].activationId, id);
  t.is(listed[0].statusCode, 0);
  const none = json(await vespid(["activation", "list", "--json", "--since", String(Date.now() + 60_000)]));
  t.deepEqual(none, []);

  const got = json(await vespid(["activation", "get", id, "--json"]));
  t.like(got, { activationId: id, name: "logger", response: { result: { got: 7 } } });
  const logs = await vespid(["activation", "logs", id]);
  t.regex(logs.stdout, /^\S+\s+stdout: line one\n\S+\s+stderr: line two\n$/);
  t.is((await vespid(["activation", "logs", id, "--strip"])).stdout, "line one\nline two\n");
  t.deepEqual(json(await vespid(["activation", "result", id])), { got: 7 });
  t.like(json(await vespid(["activation", "result", id, "--json"])), { result: { got: 7 }, success: true, status: "success" });
  t.is(json(await vespid(["activation", "get", "--last", "--json"])).activationId, id);

  const missing = await vespid(["activation", "get", "0".repeat(32)]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /HTTP 404/);
  t.is((await vespid(["activation", "get"])).code, 2);
});

test.serial("activation poll prints the logs of activations made while it runs, and stops at --exit", async (t) => {
  await vespid(["action", "create", "ticker", await file("ticker.js", `function main(p) { console.log("tick " + p.i); return {}; }`)]);
  const polling = vespid(["activation", "poll", "ticker", "--exit", "12"]);
  await new Promise((r) => setTimeout(r, 3000));
  const invoked = json(await vespid(["action", "invoke", "ticker", "-p", "i", "1", "-b", "--json"]));
  const polled = await polling;
  t.is(polled.code, 0, polled.stderr);
  t.regex(polled.stderr, /Polling for activation logs/);
  t.true(polled.stdout.includes(`Activation: 'ticker' (${invoked.activationId})`), polled.stdout);
  t.regex(polled.stdout, /stdout: tick 1/);
});

test.serial("trigger and rule: create, fire, and the action's activation appears", async (t) => {
  await vespid(["action", "create", "echo", await file("echo.js", `function main(p) { return { heard: p.word }; }`)]);
  t.is((await vespid(["trigger", "create", "bell", "-p", "word", "default"])).code, 0);
  const rule = await vespid(["rule", "create", "ring", "bell", "echo"]);
  t.is(rule.code, 0, rule.stderr);
  t.is(rule.stdout.trim(), "ok: created rule /_/ring");
  t.regex((await vespid(["rule", "status", "ring"])).stdout, /is active/);
  t.regex((await vespid(["rule", "list"])).stdout, /\/guest\/ring.*active.*\/guest\/bell.*\/guest\/echo/);
  t.regex((await vespid(["trigger", "list"])).stdout, /\/guest\/bell/);

  const fired = await vespid(["trigger", "fire", "bell", "-p", "word", "ding"]);
  t.is(fired.code, 0, fired.stderr);
  t.regex(fired.stdout, /^ok: triggered \/_\/bell with id [0-9a-f]{32}/);
  const activation = await eventually(async () => {
    const list = json(await vespid(["activation", "list", "echo", "--json"]));
    return list[0];
  }, "the rule's activation of echo");
  t.deepEqual(json(await vespid(["activation", "result", activation.activationId])), { heard: "ding" });

  t.is((await vespid(["rule", "disable", "ring"])).code, 0);
  t.regex((await vespid(["rule", "status", "ring"])).stdout, /is inactive/);
  t.regex((await vespid(["trigger", "fire", "bell"])).stdout, /no active rule/);
  t.is((await vespid(["rule", "enable", "ring"])).code, 0);
  t.is((await vespid(["rule", "delete", "ring"])).code, 0);
  t.is((await vespid(["trigger", "delete", "bell"])).code, 0);
  t.is((await vespid(["trigger", "get", "bell"])).code, 1);
});

test.serial("trigger create --feed runs the feed's CREATE (and fires), rolls back when the feed refuses, and delete runs DELETE", async (t) => {
  await vespid(["action", "create", "alarmed", await file("alarmed.js", `function main(p) { return { fired: true, p }; }`)]);
  const refused = await vespid(["trigger", "create", "bad-alarm", "--feed", "/whisk.system/alarms/once"]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /the feed \/whisk.system\/alarms\/once refused the trigger/);
  t.is((await platform.request("GET", api("triggers/bad-alarm"))).status, 404, "the trigger was rolled back");

  // Far enough ahead for the trigger and its rule to exist first on a loaded machine.
  const at = Date.now() + 15_000;
  const date = new Date(at).toISOString();
  const created = await vespid(["trigger", "create", "soon", "--feed", "/whisk.system/alarms/once", "-p", "date", date]);
  t.is(created.code, 0, created.stderr);
  t.is(created.stdout.trim(), "ok: created trigger /_/soon with feed /whisk.system/alarms/once");
  const trigger = json(await vespid(["trigger", "get", "soon", "--json"]));
  t.deepEqual(trigger.annotations.find((a: any) => a.key === "feed")?.value, "/whisk.system/alarms/once");
  t.is((await vespid(["rule", "create", "on-soon", "soon", "alarmed"])).code, 0);
  if (Date.now() >= at) return t.fail("setting up took longer than the alarm's 15 s lead: the test cannot tell");
  const fired = await eventually(async () => json(await vespid(["activation", "list", "alarmed", "--json"]))[0], "the alarm's activation");
  t.is(fired.name, "alarmed");

  t.is((await vespid(["rule", "delete", "on-soon"])).code, 0);
  const deleted = await vespid(["trigger", "delete", "soon"]);
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.stderr, "", "the feed's DELETE succeeded");
  t.is((await platform.request("GET", api("triggers/soon"))).status, 404);
});

test.serial("api create, list, get and delete; the route serves the web action", async (t) => {
  const created = await vespid(["action", "create", "books", await file("books.js", `function main(p) { return { shelf: p.shelf || "all" }; }`), "--web", "true"]);
  t.is(created.code, 0, created.stderr);
  t.is((await vespid(["action", "get", "books", "--url"])).stdout.trim(), `${platform.url}/api/v1/web/guest/default/books`);
  const web = json(await vespid(["action", "get", "books", "--json"]));
  t.like(Object.fromEntries(web.annotations.map((a: any) => [a.key, a.value])), { "web-export": true, "raw-http": false, final: true });
  const made = await vespid(["api", "create", "/club", "/books", "get", "books", "--response-type", "json"]);
  t.is(made.code, 0, made.stderr);
  const [line, url] = made.stdout.trim().split("\n");
  t.is(line, "ok: created API /club/books GET for action /_/books");
  t.is(url, `${platform.url}/api/guest/club/books`);
  const served = await fetch(`${url}?shelf=top`);
  t.is(served.status, 200);
  t.deepEqual(await served.json(), { shelf: "top" });

  const list = await vespid(["api", "list"]);
  t.regex(list.stdout, /\/guest\/books.*get.*\/club.*\/api\/guest\/club\/books/);
  const listed = json(await vespid(["api", "list", "--json"]));
  t.is(listed.apis[0].value.gwApiUrl, `${platform.url}/api/guest/club`);
  t.truthy(json(await vespid(["api", "get", "/club"])).paths["/books"].get);

  const bad = await vespid(["api", "create", "/club", "/x", "fetch", "books"]);
  t.is(bad.code, 2);
  t.is((await vespid(["api", "delete", "/club"])).code, 0);
  t.regex((await vespid(["api", "list"])).stdout, /\(no APIs\)/);
  t.is((await fetch(url!)).status, 404);
});

test.serial("package create, bind, get, list; an action in a package sees the binding's parameters", async (t) => {
  t.is((await vespid(["package", "create", "tools", "-p", "unit", "cm", "--shared", "yes"])).code, 0);
  const made = await vespid(["action", "create", "tools/measure", await file("measure.js", `function main(p) { return { unit: p.unit }; }`)]);
  t.is(made.code, 0, made.stderr);
  const bound = await vespid(["package", "bind", "tools", "imperial", "-p", "unit", "inch"]);
  t.is(bound.code, 0, bound.stderr);
  t.is(bound.stdout.trim(), "ok: created binding /_/imperial to /_/tools");
  t.deepEqual(json(await vespid(["action", "invoke", "imperial/measure", "-r"])), { unit: "inch" });
  t.deepEqual(json(await vespid(["action", "invoke", "tools/measure", "-r"])), { unit: "cm" });

  const list = await vespid(["package", "list"]);
  t.regex(list.stdout, /\/guest\/tools.*shared/);
  t.regex(list.stdout, /\/guest\/imperial.*private.*\/guest\/tools/);
  const summary = await vespid(["package", "get", "tools", "--summary"]);
  t.regex(summary.stdout, /action {6}\/guest\/tools\/measure/);
  t.like(json(await vespid(["package", "get", "imperial", "--json"])), { name: "imperial", binding: { namespace: "guest", name: "tools" } });
  t.regex((await vespid(["action", "list", "tools"])).stdout, /\/guest\/tools\/measure/);
  t.is((await vespid(["package", "delete", "imperial"])).code, 0);
});

test.serial("namespace list and get", async (t) => {
  t.deepEqual(json(await vespid(["namespace", "list", "--json"])), ["guest"]);
  t.deepEqual(json(await vespid(["--json", "namespace", "list"])), ["guest"], "global flags before the verb work too");
  t.regex((await vespid(["namespace", "list"])).stdout, /guest/);
  await vespid(["action", "create", "nsitem", await file("nsitem.js", "function main() { return {}; }")]);
  const got = await vespid(["namespace", "get"]);
  t.regex(got.stdout, /action.*\/guest\/nsitem/);
  t.true(json(await vespid(["namespace", "get", "--json"])).actions.some((a: any) => a.name === "nsitem"));
});

test.serial("property set/get/unset in a properties file; the environment overrides it; a bad key says what to do", async (t) => {
  const configFile = join(home, "props", "vespidprops");
  const env = { VESPID_CONFIG_FILE: configFile };
  const set = await vespid(["property", "set", "--apihost", platform.url, "--auth", platform.apiKey, "--namespace", "guest"], { env, platformEnv: false });
  t.is(set.code, 0, set.stderr);
  t.regex(set.stdout, /ok: apihost set to http:\/\/127\.0\.0\.1:\d+/);
  const text = await readFile(configFile, "utf8");
  t.true(text.includes(`APIHOST=${platform.url}\n`) && text.includes(`AUTH=${platform.apiKey}\n`) && text.includes("NAMESPACE=guest\n"));

  const got = await vespid(["property", "get"], { env, platformEnv: false });
  t.regex(got.stdout, new RegExp(`whisk API host +${platform.url.replace(/\./g, "\\.")} +\\[properties file\\]`));
  t.regex(got.stdout, /whisk namespace +guest +\[properties file\]/);
  t.deepEqual(json(await vespid(["property", "get", "--apihost", "--json"], { env, platformEnv: false })), { file: configFile, apihost: { value: platform.url, source: "properties file" } });
  t.is((await vespid(["action", "list"], { env, platformEnv: false })).code, 0, "the file's host and key are used");

  const wrongKey = await vespid(["action", "list"], { env: { ...env, __OW_API_KEY: "00000000-0000-0000-0000-000000000000:nope" }, platformEnv: false });
  t.is(wrongKey.code, 1);
  t.regex(wrongKey.stderr, /HTTP 401/);
  t.regex(wrongKey.stderr, /check your key: vespid property get/);

  const refused = await vespid(["action", "list", "--apihost", `http://127.0.0.1:${await closedPort()}`], { env, platformEnv: false });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /connection refused/);
  t.regex(refused.stderr, /npm start/);

  t.is((await vespid(["property", "unset", "--auth"], { env, platformEnv: false })).code, 0);
  t.false((await readFile(configFile, "utf8")).includes("AUTH="));
  const noKey = await vespid(["action", "list"], { env, platformEnv: false });
  t.is(noKey.code, 1);
  t.regex(noKey.stderr, /no API key configured/);
  t.is((await vespid(["property", "set", "--auth", "not-a-key"], { env, platformEnv: false })).code, 2);
});

test.serial("with nothing configured, the platform started in the current directory is used", async (t) => {
  const cwd = join(home, "checkout");
  await mkdir(join(cwd, ".vespid"), { recursive: true });
  await writeFile(join(cwd, ".vespid", "auth.key"), `${platform.apiKey}\n`);
  const env = { VESPID_DATA_DIR: undefined, VESPID_PORT: new URL(platform.url).port, VESPID_CONFIG_FILE: join(home, "none") };
  const got = await vespid(["property", "get"], { cwd, env, platformEnv: false });
  t.regex(got.stdout, /\[local platform\]/);
  t.regex(got.stdout, /npm start/);
  const list = await vespid(["namespace", "list", "--json"], { cwd, env, platformEnv: false });
  t.is(list.code, 0, list.stderr);
  t.deepEqual(json(list), ["guest"]);
});

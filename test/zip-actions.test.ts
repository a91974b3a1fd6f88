// Zip actions and OpenWhisk's other ways of giving JS code (issue 9, item 9): `exec.binary` with a
// base64 zip (CommonJS files, ES modules, node_modules), `exec.main`, `exports.main` /
// `module.exports` in plain code, and empty code — against a whole platform (real nats-server,
// real guests), on the default tier and, for the zips, on the process tier too. The zips are
// made with fflate here, as `zip -r` would make them.
import test from "ava";
import { strToU8, zipSync } from "fflate";
import { annotation, api, openwhiskClient, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
let processTier: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  processTier = await startPlatform({ runnerCapacity: 1, runnerIsolation: "process" });
});
test.after.always(async () => {
  await platform?.stop();
  await processTier?.stop();
});

/** A zip of text files (paths as keys), deflated as `zip` does. */
const zip = (files: Record<string, string | Uint8Array>, level: 0 | 6 | 9 = 6): Buffer =>
  Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([p, v]) => [p, typeof v === "string" ? strToU8(v) : v])), { level }));
const b64 = (files: Record<string, string | Uint8Array>) => zip(files).toString("base64");

async function put(p: Platform, name: string, exec: Record<string, unknown>) {
  return p.request("PUT", api(`actions/${name}?overwrite=true`), { exec });
}
async function call(p: Platform, name: string, params: Record<string, unknown> = {}) {
  return p.request("POST", api(`actions/${name}?blocking=true`), params);
}

const COMMONJS = {
  "package.json": JSON.stringify({ name: "shop", main: "lib/app.js" }),
  "lib/app.js": `
    const { total } = require("./cart");
    const config = require("../config.json");
    const money = require("money-fmt");
    let calls = 0;
    exports.main = function (params) {
      calls++;
      return { total: money(total(params.items || []), config.currency), calls, same: require("./cart") === require("./cart.js") };
    };`,
  "lib/cart.js": `module.exports.total = (items) => items.reduce((sum, i) => sum + i.price * i.qty, 0);`,
  "config.json": JSON.stringify({ currency: "EUR" }),
  "node_modules/money-fmt/package.json": JSON.stringify({ name: "money-fmt", main: "src/index" }),
  "node_modules/money-fmt/src/index.js": `const pad = require("./pad"); module.exports = (n, cur) => pad(n.toFixed(2)) + " " + cur;`,
  "node_modules/money-fmt/src/pad.js": `module.exports = (s) => s.padStart(8, " ");`,
  "README.md": "not a module: left out of the guest",
};

test("empty code is accepted and read back; invoking it is OpenWhisk's developer error", async (t) => {
  const created = await put(platform, "empty", { kind: "nodejs:20", code: "" });
  t.is(created.status, 200, JSON.stringify(created.body));
  t.like(created.body, { exec: { kind: "nodejs:20", code: "", binary: false } });
  const got = await platform.request("GET", api("actions/empty"));
  t.is(got.body.exec.code, "");
  const ran = await call(platform, "empty");
  t.is(ran.status, 502);
  t.like(ran.body.response, { status: "action developer error", success: false, result: { error: "Missing main/no code to execute." } });
});

test("a zip with package.json main, several CommonJS files, JSON and a node_modules package", async (t) => {
  const code = b64(COMMONJS);
  const created = await put(platform, "shop", { kind: "nodejs:20", code, binary: true });
  t.is(created.status, 200, JSON.stringify(created.body));
  // As OpenWhisk: the code comes back as given, with binary true.
  const got = await platform.request("GET", api("actions/shop"));
  t.like(got.body.exec, { kind: "nodejs:20", code, binary: true });
  const listed = (await platform.request("GET", api("actions"))).body.find((a: { name: string }) => a.name === "shop");
  t.deepEqual(listed.exec, { kind: "nodejs:20", binary: true });

  const items = [{ price: 2.5, qty: 2 }, { price: 1, qty: 3 }];
  const first = await call(platform, "shop", { items });
  t.is(first.status, 200, JSON.stringify(first.body));
  t.deepEqual(first.body.response.result, { total: "    8.00 EUR", calls: 1, same: true });
  // Warm: started from the snapshot taken after the modules loaded (no initTime), state not carried over.
  const second = await call(platform, "shop", { items });
  t.deepEqual(second.body.response.result, { total: "    8.00 EUR", calls: 1, same: true });
  t.is(annotation(second.body, "initTime"), undefined);

  // An update that leaves exec out keeps the zip.
  const updated = await platform.request("PUT", api("actions/shop?overwrite=true"), { parameters: [{ key: "items", value: [{ price: 3, qty: 1 }] }] });
  t.is(updated.status, 200);
  t.like(updated.body.exec, { binary: true });
  t.is((await call(platform, "shop")).body.response.result.total, "    3.00 EUR");
});

const ESM = {
  "package.json": JSON.stringify({ name: "esm", type: "module" }),
  "index.js": `
    import { scale } from "./lib/math.js";
    import data from "./data.json";
    import greet, { shout } from "greeter";
    import dual from "dual";
    export function main({ n = 1 }) { return { scaled: scale(n, data.factor), hello: greet("Ada"), loud: shout("hi"), dual }; }
    export function other() { return { other: true }; }`,
  "lib/math.js": `export const scale = (n, f) => n * f;`,
  "data.json": JSON.stringify({ factor: 3 }),
  // A CommonJS package imported from an ES module: default and named exports, as Node gives them.
  "node_modules/greeter/package.json": JSON.stringify({ main: "index.js" }),
  "node_modules/greeter/index.js": `module.exports = (who) => "hello " + who; module.exports.shout = (s) => s.toUpperCase();`,
  // "exports" with conditions: import takes the ES-module build.
  "node_modules/dual/package.json": JSON.stringify({ exports: { ".": { import: "./esm.mjs", require: "./cjs.js" } } }),
  "node_modules/dual/esm.mjs": `export default "esm build";`,
  "node_modules/dual/cjs.js": `module.exports = "cjs build";`,
};

test("an ES-module zip (type: module), importing JSON and CommonJS packages", async (t) => {
  const created = await put(platform, "esm", { kind: "nodejs", code: b64(ESM), binary: true });
  t.is(created.status, 200, JSON.stringify(created.body));
  const ran = await call(platform, "esm", { n: 5 });
  t.is(ran.status, 200, JSON.stringify(ran.body));
  t.deepEqual(ran.body.response.result, { scaled: 15, hello: "hello Ada", loud: "HI", dual: "esm build" });
});

test("an .mjs entry named by package.json, with export default and exec.main", async (t) => {
  const code = b64({
    "package.json": JSON.stringify({ main: "handler.mjs" }),
    "handler.mjs": `import { v } from "./v.mjs"; export default { run: (p) => ({ v, p }) };`,
    "v.mjs": `export const v = 42;`,
  });
  const created = await put(platform, "mjs", { kind: "nodejs", code, binary: true, main: "run" });
  t.is(created.status, 200, JSON.stringify(created.body));
  t.is(created.body.exec.main, "run");
  t.deepEqual((await call(platform, "mjs", { a: 1 })).body.response.result, { v: 42, p: { a: 1 } });
});

test("exec.main names another function, or file.function as OpenWhisk reads it", async (t) => {
  const files = {
    "index.js": `exports.main = () => ({ which: "main" }); exports.handler = (p) => ({ which: "handler", p });`,
    "jobs/nightly.js": `exports.run = () => ({ which: "nightly" });`,
  };
  t.is((await put(platform, "named", { kind: "nodejs", code: b64(files), binary: true, main: "handler" })).status, 200);
  t.deepEqual((await call(platform, "named", { x: 1 })).body.response.result, { which: "handler", p: { x: 1 } });
  t.is((await put(platform, "filefn", { kind: "nodejs", code: b64(files), binary: true, main: "jobs/nightly.run" })).status, 200);
  t.deepEqual((await call(platform, "filefn")).body.response.result, { which: "nightly" });

  // A main that is not there is OpenWhisk's initialisation error at invoke (the PUT succeeds there too).
  t.is((await put(platform, "nomain", { kind: "nodejs", code: b64(files), binary: true, main: "nope" })).status, 200);
  const ran = await call(platform, "nomain");
  t.is(ran.status, 502);
  t.is(ran.body.response.result.error, "Initialization has failed due to: Action entrypoint 'nope' is not a function.");

  // Plain code takes exec.main too.
  t.is((await put(platform, "plainmain", { kind: "nodejs", code: "function go(p) { return { went: p.to }; }", main: "go" })).status, 200);
  t.deepEqual((await call(platform, "plainmain", { to: "x" })).body.response.result, { went: "x" });
});

test("plain code: exports.main, module.exports = function, const main", async (t) => {
  const shapes: Record<string, string> = {
    exportsmain: `exports.main = (p) => ({ shape: "exports.main", p });`,
    moduleexports: `module.exports = (p) => ({ shape: "module.exports", p });`,
    moduleexportsmain: `module.exports = { main: (p) => ({ shape: "module.exports.main", p }) };`,
    constmain: `const main = (p) => ({ shape: "const", p });`,
  };
  for (const [name, code] of Object.entries(shapes)) {
    t.is((await put(platform, name, { kind: "nodejs:default", code })).status, 200, name);
    const ran = await call(platform, name, { k: 1 });
    t.is(ran.status, 200, `${name}: ${JSON.stringify(ran.body)}`);
    t.deepEqual(ran.body.response.result.p, { k: 1 }, name);
  }
});

test("bad zips are 400s naming the problem, and nothing is stored", async (t) => {
  const traversal = zip({ "index.js": "exports.main = () => ({})", "../escape.js": "x" });
  const absolute = zip({ "index.js": "exports.main = () => ({})", "/etc/abs.js": "x" });
  // 17 MiB of zeros deflates to a few KiB: the declared size is refused before anything is inflated.
  const bomb = zip({ "index.js": new Uint8Array(17 * 1024 * 1024) }, 9);
  // An entry whose directory says 100 bytes but inflates to 1 MiB: stopped at 100.
  const liar = zip({ "index.js": `exports.main = () => ({});${" ".repeat(1024 * 1024)}` }, 9);
  liar.writeUInt32LE(100, liar.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 24);
  // Stored (not deflated), so a flipped byte of content reaches the CRC check.
  const corrupt = zip({ "index.js": "exports.main = () => ({ ok: true });" }, 0);
  const flipped = corrupt.indexOf("ok: true");
  corrupt.writeUInt8(corrupt.readUInt8(flipped) ^ 0x20, flipped);
  const encrypted = zip({ "index.js": "exports.main = () => ({})" });
  encrypted.writeUInt16LE(1, encrypted.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 8);
  const crowded = zip(Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`f${i}.txt`, ""])), 0);
  // Within 16 MiB unpacked, but control characters six times larger as the guest's JSON input.
  const binaryish = zip({ "index.js": new Uint8Array(15 * 1024 * 1024).fill(1) }, 9);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["not base64", { code: "this is not base64!", binary: true }, /^exec\.code: .*base64.*"!"/],
    ["not a zip", { code: Buffer.from("just some text, not a zip").toString("base64"), binary: true }, /^exec\.code: .*not a zip archive/],
    ["traversal", { code: traversal.toString("base64"), binary: true }, /^exec\.code: zip entry "\.\.\/escape\.js" .*leaves the archive's root/],
    ["absolute path", { code: absolute.toString("base64"), binary: true }, /^exec\.code: zip entry "\/etc\/abs\.js" has an absolute path/],
    ["too big unzipped", { code: bomb.toString("base64"), binary: true }, /^exec\.code: .*unpack to more than the limit of 16 MiB/],
    ["not text", { code: binaryish.toString("base64"), binary: true }, /^exec\.code: the zip's modules are not plain text: .* more than the limit of 32 MiB/],
    ["lying sizes", { code: liar.toString("base64"), binary: true }, /^exec\.code: zip entry index\.js unpacks to more than the 100 bytes/],
    ["corrupt", { code: corrupt.toString("base64"), binary: true }, /^exec\.code: zip entry index\.js is corrupt \(its CRC-32 does not match\)/],
    ["encrypted", { code: encrypted.toString("base64"), binary: true }, /^exec\.code: zip entry "index\.js" is encrypted/],
    ["too many entries", { code: crowded.toString("base64"), binary: true }, /^exec\.code: the zip archive has 10001 entries, more than the limit of 10000/],
    ["import of a missing module", { code: b64({ "index.mjs": "import x from './nowhere.mjs'; export const main = () => x;", "package.json": '{"main": "index.mjs"}' }), binary: true }, /Cannot find module '\.\/nowhere\.mjs'/],
    ["no entry file", { code: b64({ "lib/x.js": "x" }), binary: true }, /Zipped actions must contain either package\.json or index\.js at the root/],
    ["main file missing", { code: b64({ "package.json": JSON.stringify({ main: "dist/app.js" }) }), binary: true }, /package\.json names main "dist\/app\.js", which the zip does not contain/],
    ["required file missing", { code: b64({ "index.js": "require('./gone')" }), binary: true }, /Cannot find module '\.\/gone'/],
    ["C as a zip", { kind: "c", code: b64({ "a.c": "x" }), binary: true }, /^exec\.binary: only JavaScript/],
    ["bad main", { code: "function main() {}", main: "a b" }, /^exec\.main: /],
  ];
  for (const [what, exec, message] of cases) {
    const res = await platform.request("PUT", api("actions/badzip"), { exec: { kind: "nodejs", ...exec } });
    t.is(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
    t.regex(String(res.body.error), message, what);
  }
  t.is((await platform.request("GET", api("actions/badzip"))).status, 404);
});

test("the openwhisk client's actions.create with a zip Buffer (it sends base64 without binary)", async (t) => {
  const ow = openwhiskClient(platform);
  const created = await ow.actions.create({ name: "owzip", kind: "nodejs:20", action: zip(COMMONJS) });
  t.like(created, { name: "owzip", exec: { kind: "nodejs:20", binary: true } });
  const result = await ow.actions.invoke({ name: "owzip", blocking: true, result: true, params: { items: [{ price: 1, qty: 1 }] } });
  t.deepEqual(result, { total: "    1.00 EUR", calls: 1, same: true });
});

test("process tier: CommonJS and ES-module zips run the same", async (t) => {
  t.is((await put(processTier, "shop", { kind: "nodejs:20", code: b64(COMMONJS), binary: true })).status, 200);
  const shop = await call(processTier, "shop", { items: [{ price: 2, qty: 2 }] });
  t.is(shop.status, 200, JSON.stringify(shop.body));
  t.is(annotation(shop.body, "isolation"), "process");
  t.is(shop.body.response.result.total, "    4.00 EUR");
  t.is((await put(processTier, "esm", { kind: "nodejs", code: b64(ESM), binary: true })).status, 200);
  t.deepEqual((await call(processTier, "esm", { n: 2 })).body.response.result, { scaled: 6, hello: "hello Ada", loud: "HI", dual: "esm build" });
  t.is((await put(processTier, "empty", { kind: "nodejs", code: "" })).status, 200);
  t.is((await call(processTier, "empty")).body.response.result.error, "Missing main/no code to execute.");
});

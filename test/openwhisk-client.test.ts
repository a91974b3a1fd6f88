// The `openwhisk` npm client (Apache OpenWhisk's own JavaScript library), unmodified, against a
// running Vespid: actions with default parameters, updates, packages and their actions, sequences.
// If Vespid's shapes drift from OpenWhisk's, this is where an existing user's code would break.
import test from "ava";
import openwhisk from "openwhisk";
import { clientFailure, openwhiskClient, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
let ow: ReturnType<typeof openwhisk>;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  ow = openwhiskClient(platform);
});
test.after.always(async () => {
  await platform?.stop();
});

test("actions: create with params, invoke, update, get, list, delete", async (t) => {
  const created = await ow.actions.create({
    name: "greet",
    kind: "nodejs:20",
    action: "function main(p) { return { text: p.greeting + ', ' + p.name }; }",
    params: { greeting: "Hello", name: "world" },
    limits: { timeout: 5000, memory: 64 },
  });
  t.like(created, { name: "greet", version: "0.0.1", exec: { kind: "nodejs:20" } });

  t.deepEqual(await ow.actions.invoke({ name: "greet", blocking: true, result: true, params: { name: "Ada" } }), { text: "Hello, Ada" });
  const record = await ow.actions.invoke({ name: "greet", blocking: true });
  t.like(record, { name: "greet", response: { status: "success", result: { text: "Hello, world" } } });

  const updated = await ow.actions.update({ name: "greet", action: "function main(p) { return { text: 'Hi ' + p.name }; }" });
  t.is(updated.version, "0.0.2");
  t.deepEqual(await ow.actions.invoke({ name: "greet", blocking: true, result: true }), { text: "Hi world" });

  const got = await ow.actions.get({ name: "greet" });
  t.deepEqual(got.parameters, [{ key: "greeting", value: "Hello" }, { key: "name", value: "world" }]);
  t.true((await ow.actions.list()).some((a) => a.name === "greet"));
  const exists = await clientFailure(ow.actions.create({ name: "greet", action: "function main() { return {}; }" }));
  t.is(exists.statusCode, 409);
  t.regex(exists.message, /resource already exists/);

  await ow.actions.delete({ name: "greet" });
  t.is((await clientFailure(ow.actions.get({ name: "greet" }))).statusCode, 404);
});

test("packages, a packaged action, a binding and a sequence through the client", async (t) => {
  await ow.packages.create({ name: "tools", package: { parameters: [{ key: "region", value: "eu" }] } });
  await ow.actions.create({ name: "tools/echo", action: "function main(p) { return p; }" });
  await ow.actions.create({ name: "inc", action: "function main(p) { return { n: (p.n || 0) + 1, region: p.region }; }" });
  t.deepEqual(await ow.actions.invoke({ name: "tools/echo", blocking: true, result: true, params: { x: 1 } }), { region: "eu", x: 1 });

  await ow.packages.create({ name: "mytools", package: { binding: { namespace: "_", name: "tools" }, parameters: [{ key: "region", value: "us" }] } });
  t.deepEqual(await ow.actions.invoke({ name: "mytools/echo", blocking: true, result: true }), { region: "us" });

  const pkg = await ow.packages.get({ name: "tools" });
  t.deepEqual(pkg.actions?.map((a) => a.name), ["echo"]);
  t.true((await ow.packages.list()).some((p) => p.name === "mytools"));

  // The client's typings lack its `sequence` option; the body form is what it sends for one.
  await ow.actions.create({ name: "chain", action: { exec: { kind: "sequence", components: ["/_/tools/echo", "/_/inc", "/_/inc"] } } });
  t.deepEqual(await ow.actions.invoke({ name: "chain", blocking: true, result: true, params: { n: 1 } }), { n: 3, region: "eu" });

  const notEmpty = await clientFailure(ow.packages.delete({ name: "tools" }));
  t.is(notEmpty.statusCode, 409);
  t.regex(notEmpty.message, /not empty/);
  await ow.actions.delete({ name: "tools/echo" });
  await ow.packages.delete({ name: "mytools" });
  await ow.packages.delete({ name: "tools" });
});

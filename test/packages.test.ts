// Packages (issue 4, item 4): create, update, get, list, delete; actions inside a package; package
// default parameters merged under the action's and the invocation's; bindings to another package
// with their own parameters on top; 409 when deleting a package that still has actions.
import test from "ava";
import { Admin } from "../admin/namespaces.ts";
import { api, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
});
test.after.always(async () => {
  await platform?.stop();
});

const ECHO_JS = `function main(params) { return params; }`;
const ECHO_C = `#include <vespid.h>
const char *vespid_main(const char *params) { return params; }`;

test("a package: create, get, list, update, delete; 409 on create twice", async (t) => {
  const created = await platform.request("PUT", api("packages/tools"), {
    parameters: [{ key: "region", value: "eu" }],
    annotations: [{ key: "description", value: "tools" }],
  });
  t.is(created.status, 200, JSON.stringify(created.body));
  t.like(created.body, { namespace: "guest", name: "tools", version: "0.0.1", publish: false, binding: {} });
  t.is((await platform.request("PUT", api("packages/tools"), {})).status, 409);

  const empty = await platform.request("PUT", api("packages/empty"));
  t.is(empty.status, 200, "a package needs no body");

  const list = await platform.request("GET", api("packages"));
  t.is(list.status, 200);
  // Other tests make packages at the same time: look for ours.
  const names = list.body.map((p: { name: string }) => p.name);
  t.true(names.includes("empty") && names.includes("tools"), names.join());
  t.deepEqual((await platform.request("GET", api("packages?limit=1&skip=1"))).body.length, 1);

  const updated = await platform.request("PUT", api("packages/tools?overwrite=true"), { publish: true });
  t.is(updated.status, 200);
  t.like(updated.body, { version: "0.0.2", publish: true });
  t.deepEqual(updated.body.parameters, [{ key: "region", value: "eu" }], "omitted fields are kept");

  const got = await platform.request("GET", api("packages/tools"));
  t.is(got.status, 200);
  t.deepEqual(got.body.actions, []);

  t.is((await platform.request("DELETE", api("packages/empty"))).status, 200);
  t.is((await platform.request("GET", api("packages/empty"))).status, 404);
  t.is((await platform.request("DELETE", api("packages/empty"))).status, 404);
});

test("actions in a package: package < action < invoke parameters; listed in the package; delete order enforced", async (t) => {
  t.is((await platform.request("PUT", api("packages/lib"), { parameters: [{ key: "a", value: "pkg" }, { key: "b", value: "pkg" }, { key: "c", value: "pkg" }] })).status, 200);
  const action = await platform.request("PUT", api("actions/lib/echo"), {
    exec: { kind: "c", code: ECHO_C },
    parameters: [{ key: "b", value: "action" }, { key: "c", value: "action" }],
  });
  t.is(action.status, 200, JSON.stringify(action.body));
  t.like(action.body, { namespace: "guest/lib", name: "echo", version: "0.0.1" });

  const got = await platform.request("GET", api("actions/lib/echo"));
  t.is(got.status, 200);
  t.like(got.body, { namespace: "guest/lib", name: "echo" });

  const res = await platform.request("POST", api("actions/lib/echo?blocking=true"), { c: "invoke" });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.response.result, { a: "pkg", b: "action", c: "invoke" });
  t.is(res.body.name, "lib/echo");
  t.true(res.body.annotations.some((a: { key: string; value: unknown }) => a.key === "path" && a.value === "guest/lib/echo"));

  const pkg = await platform.request("GET", api("packages/lib"));
  t.deepEqual(pkg.body.actions.map((a: { name: string }) => a.name), ["echo"]);

  const refused = await platform.request("DELETE", api("packages/lib"));
  t.is(refused.status, 409);
  t.regex(refused.body.error, /not empty/);
  t.is((await platform.request("DELETE", api("actions/lib/echo"))).status, 200);
  t.is((await platform.request("DELETE", api("packages/lib"))).status, 200);
});

test("a binding reaches the bound package's actions with its parameters on top", async (t) => {
  t.is((await platform.request("PUT", api("packages/base"), { parameters: [{ key: "host", value: "base" }, { key: "port", value: 1 }] })).status, 200);
  t.is((await platform.request("PUT", api("actions/base/echo"), { exec: { kind: "nodejs", code: ECHO_JS } })).status, 200);
  const bound = await platform.request("PUT", api("packages/mine"), {
    binding: { namespace: "_", name: "base" },
    parameters: [{ key: "host", value: "mine" }],
  });
  t.is(bound.status, 200, JSON.stringify(bound.body));
  t.deepEqual(bound.body.binding, { namespace: "guest", name: "base" });

  const res = await platform.request("POST", api("actions/mine/echo?blocking=true&result=true"), { extra: 1 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body, { host: "mine", port: 1, extra: 1 });
  const viaBase = await platform.request("POST", api("actions/base/echo?blocking=true&result=true"), {});
  t.deepEqual(viaBase.body, { host: "base", port: 1 });

  const got = await platform.request("GET", api("packages/mine"));
  t.deepEqual(got.body.actions.map((a: { name: string }) => a.name), ["echo"]);
  const action = await platform.request("GET", api("actions/mine/echo"));
  t.is(action.status, 200);

  const inBinding = await platform.request("PUT", api("actions/mine/new"), { exec: { kind: "nodejs", code: ECHO_JS } });
  t.is(inBinding.status, 400);
  t.regex(inBinding.body.error, /binding/);
  t.is((await platform.request("POST", api("actions/mine/missing?blocking=true"), {})).status, 404);
});

test("bad packages and bindings: 400 naming the field, 404 for missing ones, nothing stored", async (t) => {
  const cases: Array<[string, unknown, number, RegExp]> = [
    ["packages/p1", { binding: { namespace: "_", name: "nowhere" } }, 400, /^binding: /],
    ["packages/p2", { binding: { name: "x" } }, 400, /binding/],
    ["packages/p3", { parameters: "x" }, 400, /^parameters: /],
    ["packages/p4", { extra: 1 }, 400, /Unrecognized key: "extra"/],
    ["packages/.p5", {}, 400, /^name: /],
    ["actions/nopkg/a", { exec: { kind: "nodejs", code: ECHO_JS } }, 404, /package nopkg does not exist/],
  ];
  for (const [path, body, status, message] of cases) {
    const res = await platform.request("PUT", api(path), body);
    t.is(res.status, status, `${path}: ${JSON.stringify(res.body)}`);
    t.regex(res.body.error, message);
  }
  for (const name of ["p1", "p2", "p3", "p4"]) t.is((await platform.request("GET", api(`packages/${name}`))).status, 404);
  t.is((await platform.request("GET", api("actions/nopkg/a"))).status, 404);

  t.is((await platform.request("PUT", api("packages/plain"), {})).status, 200);
  t.is((await platform.request("PUT", api("packages/b1"), { binding: { namespace: "_", name: "plain" } })).status, 200);
  const toBinding = await platform.request("PUT", api("packages/b2"), { binding: { namespace: "_", name: "b1" } });
  t.is(toBinding.status, 400, "no binding to a binding");
  const turned = await platform.request("PUT", api("packages/plain?overwrite=true"), { binding: { namespace: "_", name: "b1" } });
  t.is(turned.status, 400);
  t.is((await platform.request("GET", api("packages/other?limit=x"))).status, 404);
  t.is((await platform.request("GET", api("packages?limit=x"))).status, 400);
});

test("another namespace binds to a published package only, and sees nothing else of ours (but the published package itself)", async (t) => {
  t.is((await platform.request("PUT", api("packages/shared"), { publish: true, parameters: [{ key: "owner", value: "guest" }] })).status, 200);
  t.is((await platform.request("PUT", api("actions/shared/echo"), { exec: { kind: "nodejs", code: ECHO_JS } })).status, 200);
  t.is((await platform.request("PUT", api("packages/private"), {})).status, 200);
  t.is((await platform.request("PUT", api("actions/private/echo"), { exec: { kind: "nodejs", code: ECHO_JS } })).status, 200);

  const { apiKey } = await (await Admin.open(platform.nc)).createNamespace("team-bind");
  const as = (method: string, path: string, body?: unknown) => platform.request(method, path, body, {}, { auth: apiKey });

  const bound = await as("PUT", api("packages/theirs"), { binding: { namespace: "guest", name: "shared" }, parameters: [{ key: "who", value: "team" }] });
  t.is(bound.status, 200, JSON.stringify(bound.body));
  const res = await as("POST", api("actions/theirs/echo?blocking=true"), { x: 1 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.response.result, { owner: "guest", who: "team", x: 1 });
  t.is(res.body.namespace, "team-bind", "the activation belongs to the caller");

  const unpublished = await as("PUT", api("packages/sneaky"), { binding: { namespace: "guest", name: "private" } });
  t.is(unpublished.status, 400);
  t.regex(unpublished.body.error, /^binding: /);
  // Read by its owner's name, a published package is readable (OpenWhisk's sharing, see
  // test/shared-access.test.ts); a private one is not.
  t.is((await as("GET", "/api/v1/namespaces/guest/packages/shared")).status, 200);
  t.is((await as("GET", "/api/v1/namespaces/guest/packages/private")).status, 403);
  t.is((await as("PUT", "/api/v1/namespaces/guest/packages/shared?overwrite=true", {})).status, 403);
  t.is((await as("GET", api("packages/shared"))).status, 404);
  t.is((await as("POST", api("actions/shared/echo?blocking=true"), {})).status, 404);
  // A sequence may use the published package's action (test/shared-packages.test.ts), not the private one's.
  const seq = await as("PUT", api("actions/seq"), { exec: { kind: "sequence", components: ["/guest/private/echo"] } });
  t.is(seq.status, 400);
  t.regex(seq.body.error, /not in your namespace nor in a published package/);
});

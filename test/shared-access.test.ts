// Reading and invoking another namespace's published packages by path, as OpenWhisk allows
// (`wsk package list /whisk.system`, `wsk action invoke /whisk.system/utils/echo`): what is
// allowed works, the activation is the caller's and counts against the caller's limits; every
// other operation on another namespace is refused; a private package, a missing one and a
// published binding get one and the same 403; unpublishing revokes access at once. Two (three)
// namespaces on a whole platform with a real nats-server and KVM virtines.
import test from "ava";
import openwhisk from "openwhisk";
import { Admin } from "../admin/namespaces.ts";
import { Messages } from "../gateway/errors.ts";
import { annotation, api, startPlatform, waitForActivation, type Platform, type TestResponse } from "./harness.ts";

let platform: Platform;
let admin: Admin;
/** Requests as the second namespace, `team-share`. */
let asTeam: (method: string, path: string, body?: unknown) => Promise<TestResponse>;

/** A path in guest's namespace by name, as another namespace addresses it. */
const guestPath = (path: string) => `/api/v1/namespaces/guest/${path}`;
const SCALE_JS = `function main({ n, factor = 1 }) { return { n: n * factor }; }`;
const ECHO_JS = `function main(params) { return params; }`;
const SLOW_JS = "function main(p) { const end = Date.now() + (p.ms || 0); while (Date.now() < end) {} return { done: true }; }";

async function must(res: Promise<TestResponse>, what: string): Promise<TestResponse> {
  const r = await res;
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r;
}
const asGuest = (method: string, path: string, body?: unknown) => platform.request(method, api(path), body);

test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 4 });
  admin = await Admin.open(platform.nc);
  const { apiKey } = await admin.createNamespace("team-share");
  asTeam = (method, path, body) => platform.request(method, path, body, {}, { auth: apiKey });
  const guest = (path: string, body: unknown) => must(asGuest("PUT", path, body), `PUT ${path}`);
  // guest shares `lib` (with a default parameter) and keeps the rest to itself.
  await guest("packages/lib", { publish: true, parameters: [{ key: "factor", value: 3 }] });
  await guest("actions/lib/scale", { exec: { kind: "nodejs", code: SCALE_JS } });
  await guest("actions/lib/slow", { exec: { kind: "nodejs", code: SLOW_JS } });
  await guest("packages/hidden", {});
  await guest("actions/hidden/echo", { exec: { kind: "nodejs", code: ECHO_JS } });
  await guest("actions/loose", { exec: { kind: "nodejs", code: ECHO_JS } });
  // A shared sequence whose second component is guest's private action: components answer to
  // their owner, so a caller may run it though it could not name that action itself.
  await guest("actions/lib/pipe", { exec: { kind: "sequence", components: ["/_/lib/scale", "/_/loose"] } });
  // A published binding to the private package: OpenWhisk lets only its owner follow a binding.
  await guest("packages/pubbind", { publish: true, binding: { namespace: "_", name: "hidden" } });
});
test.after.always(async () => {
  await platform?.stop();
});

test("another namespace's package listing shows its published packages only, with paging", async (t) => {
  const res = await asTeam("GET", guestPath("packages?limit=200"));
  t.is(res.status, 200, JSON.stringify(res.body));
  const names = res.body.map((p: { name: string }) => p.name);
  t.true(names.includes("lib"), names.join());
  t.false(names.includes("hidden"), "a private package is never listed");
  t.false(names.includes("pubbind"), "nor a binding, which others cannot read");
  t.true(res.body.every((p: { namespace: string; publish: boolean }) => p.namespace === "guest" && p.publish));
  const page = await asTeam("GET", guestPath("packages?limit=1&skip=0"));
  t.is(page.status, 200);
  t.is(page.body.length, 1);
  t.is((await asTeam("GET", guestPath("packages?limit=-1"))).status, 400);
  // The owner still sees everything of its own.
  const own = (await asGuest("GET", "packages?limit=200")).body.map((p: { name: string }) => p.name);
  t.true(own.includes("hidden") && own.includes("pubbind"), own.join());
  // A namespace with nothing published (or none at all) lists nothing.
  const nobody = await asTeam("GET", "/api/v1/namespaces/nobody/packages");
  t.is(nobody.status, 200);
  t.deepEqual(nobody.body, []);
});

test("a published package reads with its actions; private, missing and bound packages get one and the same 403", async (t) => {
  const lib = await asTeam("GET", guestPath("packages/lib"));
  t.is(lib.status, 200, JSON.stringify(lib.body));
  t.like(lib.body, { namespace: "guest", name: "lib", publish: true, parameters: [{ key: "factor", value: 3 }] });
  t.deepEqual(lib.body.actions.map((a: { name: string }) => a.name).sort(), ["pipe", "scale", "slow"]);

  const refusals = await Promise.all(
    ["packages/hidden", "packages/no-such-package", "packages/pubbind"].map((path) => asTeam("GET", guestPath(path))),
  );
  for (const res of refusals) {
    t.is(res.status, 403, JSON.stringify(res.body));
    t.is(res.body.error, Messages.forbidden, "the same words whether the package is private or missing");
  }
  t.is((await asTeam("GET", "/api/v1/namespaces/nobody/packages/lib")).status, 403);
});

test("an action in a published package reads, with or without its code; versions stay the owner's", async (t) => {
  const full = await asTeam("GET", guestPath("actions/lib/scale"));
  t.is(full.status, 200, JSON.stringify(full.body));
  t.like(full.body, { namespace: "guest/lib", name: "scale", exec: { kind: "nodejs", code: SCALE_JS } });
  const lean = await asTeam("GET", guestPath("actions/lib/scale?code=false"));
  t.is(lean.status, 200);
  t.is(lean.body.exec.code, undefined);
  // Inside a readable package a missing action is simply missing.
  t.is((await asTeam("GET", guestPath("actions/lib/missing"))).status, 404);
  t.is((await asTeam("GET", guestPath("actions/lib/scale?versions=true"))).status, 403);
  t.is((await asTeam("GET", guestPath("actions/lib/scale?version=0.0.1"))).status, 403);
  t.is((await asTeam("GET", guestPath("actions/lib/bad*name"))).status, 400);
});

test("invoking a shared action runs it with the package's defaults; the activation is the caller's", async (t) => {
  const res = await asTeam("POST", guestPath("actions/lib/scale?blocking=true"), { n: 2 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.response.result, { n: 6 }, "the package's factor 3 applies");
  t.is(res.body.namespace, "team-share");
  t.is(res.body.subject, "team-share");
  t.is(annotation(res.body, "path"), "guest/lib/scale", "the path is the action that ran");

  const overridden = await asTeam("POST", guestPath("actions/lib/scale?blocking=true&result=true"), { n: 2, factor: 10 });
  t.is(overridden.status, 200);
  t.deepEqual(overridden.body, { n: 20 }, "invoke parameters override the defaults");

  const queued = await asTeam("POST", guestPath("actions/lib/scale"), { n: 1 });
  t.is(queued.status, 202);
  // Readable and listed in the caller's namespace, invisible in the owner's.
  const { activationId } = res.body;
  const read = await waitForActivation({ ...platform, request: (m, p, b) => asTeam(m, p, b) }, queued.body.activationId);
  t.deepEqual(read.response.result, { n: 3 });
  t.is((await asTeam("GET", api(`activations/${activationId}/result`))).status, 200);
  const listed = await asTeam("GET", api("activations?limit=200"));
  t.true(listed.body.some((a: { activationId: string }) => a.activationId === activationId));
  t.is((await asGuest("GET", `activations/${activationId}`)).status, 404);
  t.false((await asGuest("GET", "activations?limit=200")).body.some((a: { activationId: string }) => a.activationId === activationId));
  t.is((await asTeam("GET", guestPath(`activations/${activationId}`))).status, 403);
});

test("a shared sequence invoked by path runs with its owner's components; every record is the caller's", async (t) => {
  const res = await asTeam("POST", guestPath("actions/lib/pipe?blocking=true"), { n: 2 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.response.result, { n: 6 });
  t.is(res.body.namespace, "team-share");
  t.is(res.body.logs.length, 2);
  const asTeamPlatform = { ...platform, request: (m: string, p: string, b?: unknown) => asTeam(m, p, b) };
  const paths = [];
  for (const id of res.body.logs) {
    const component = await waitForActivation(asTeamPlatform, id);
    t.is(component.namespace, "team-share");
    paths.push(annotation(component, "path"));
  }
  t.deepEqual(paths, ["guest/lib/scale", "guest/loose"]);
});

test("everything else naming another namespace is refused, and nothing of it changes", async (t) => {
  const put = { exec: { kind: "nodejs", code: ECHO_JS } };
  const refused: Array<[string, string, unknown?]> = [
    ["PUT", "actions/lib/scale?overwrite=true", put],
    ["PUT", "actions/lib/new-one", put],
    ["DELETE", "actions/lib/scale"],
    ["PUT", "packages/lib?overwrite=true", { publish: false }],
    ["PUT", "packages/new-pkg", {}],
    ["DELETE", "packages/lib"],
    ["GET", "actions"],
    ["GET", "actions/loose"],
    ["POST", "actions/loose?blocking=true", {}],
    ["GET", "actions/hidden/echo"],
    ["POST", "actions/hidden/echo?blocking=true", {}],
    ["GET", "actions/pubbind/echo"],
    ["POST", "actions/pubbind/echo?blocking=true", {}],
    ["POST", "actions/nowhere/echo?blocking=true", {}],
    ["GET", "activations"],
  ];
  for (const [method, path, body] of refused) {
    const res = await asTeam(method, guestPath(path), body);
    t.is(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
    t.is(res.body.error, Messages.forbidden, `${method} ${path}`);
  }
  const pinned = await asTeam("POST", guestPath("actions/lib/scale?blocking=true&version=0.0.1"), {});
  t.is(pinned.status, 403);
  t.is(pinned.body.error, "the versions of another namespace's actions are not shared");
  // A name no namespace could have is refused the same way.
  t.is((await asTeam("GET", "/api/v1/namespaces/..bad/packages")).status, 403);
  t.is((await asTeam("GET", `/api/v1/namespaces/${"x".repeat(300)}/packages/lib`)).status, 403);

  const scale = await asGuest("GET", "actions/lib/scale");
  t.is(scale.body.version, "0.0.1");
  t.like((await asGuest("GET", "packages/lib")).body, { version: "0.0.1", publish: true });
  t.is((await asGuest("GET", "actions/lib/new-one")).status, 404);
  t.is((await asGuest("GET", "packages/new-pkg")).status, 404);
  t.is((await asTeam("GET", api("packages/new-pkg"))).status, 404, "nor was it written to the caller's namespace");
});

test("unpublishing revokes reading, listing and invoking at once; publishing again restores them", async (t) => {
  await must(asGuest("PUT", "packages/temp", { publish: true }), "temp");
  await must(asGuest("PUT", "actions/temp/echo", { exec: { kind: "nodejs", code: ECHO_JS } }), "temp/echo");
  const access = async () => ({
    pkg: (await asTeam("GET", guestPath("packages/temp"))).status,
    action: (await asTeam("GET", guestPath("actions/temp/echo"))).status,
    invoke: (await asTeam("POST", guestPath("actions/temp/echo?blocking=true&result=true"), { x: 1 })).status,
    listed: (await asTeam("GET", guestPath("packages?limit=200"))).body.some((p: { name: string }) => p.name === "temp"),
  });
  t.deepEqual(await access(), { pkg: 200, action: 200, invoke: 200, listed: true });
  await must(asGuest("PUT", "packages/temp?overwrite=true", { publish: false }), "unpublish");
  t.deepEqual(await access(), { pkg: 403, action: 403, invoke: 403, listed: false });
  await must(asGuest("PUT", "packages/temp?overwrite=true", { publish: true }), "publish again");
  t.deepEqual(await access(), { pkg: 200, action: 200, invoke: 200, listed: true });
});

test("a shared invocation counts against the caller's limits, not the owner's: 429 with Retry-After", async (t) => {
  const { apiKey } = await admin.createNamespace("team-capped");
  await admin.setLimits("team-capped", { concurrent: 1 });
  await new Promise((resolve) => setTimeout(resolve, 150)); // the gateway has heard of the limit
  const asCapped = (method: string, path: string, body?: unknown) => platform.request(method, path, body, {}, { auth: apiKey });

  const first = await asCapped("POST", guestPath("actions/lib/slow"), { ms: 3000 });
  t.is(first.status, 202, JSON.stringify(first.body));
  const second = await asCapped("POST", guestPath("actions/lib/slow"), { ms: 0 });
  t.is(second.status, 429, JSON.stringify(second.body));
  t.regex(second.headers["retry-after"] ?? "", /^\d+$/);
  t.is(typeof second.body.error, "string");
  // The owner's own namespace is not held up by the caller's running invocation.
  const owner = await asGuest("POST", "actions/lib/slow?blocking=true", { ms: 0 });
  t.is(owner.status, 200, JSON.stringify(owner.body));
  // The running one is the caller's.
  const done = await waitForActivation({ ...platform, request: (m, p, b) => asCapped(m, p, b) }, first.body.activationId);
  t.is(done.namespace, "team-capped");
});

test("OpenWhisk's npm client lists, reads and invokes another namespace's published package by its path", async (t) => {
  const { apiKey } = await admin.createNamespace("team-client");
  const ow = openwhisk({ api: `${platform.url}/api/v1/`, api_key: apiKey });
  const listed = (await ow.packages.list({ namespace: "guest", limit: 200 })) as Array<{ name: string }>;
  t.true(listed.some((p) => p.name === "lib"));
  t.false(listed.some((p) => p.name === "hidden"));
  const pkg = (await ow.packages.get({ name: "/guest/lib" })) as { actions: Array<{ name: string }> };
  t.true(pkg.actions.some((a) => a.name === "scale"));
  const action = (await ow.actions.get({ name: "/guest/lib/scale" })) as { name: string };
  t.is(action.name, "scale");
  t.deepEqual(await ow.actions.invoke({ name: "/guest/lib/scale", params: { n: 2 }, blocking: true, result: true }), { n: 6 });
  const refused = await ow.packages.get({ name: "/guest/hidden" }).then(() => undefined, (e: unknown) => e as { statusCode?: number });
  t.is(refused?.statusCode, 403);
  const write = await ow.actions.delete({ name: "/guest/lib/scale" }).then(() => undefined, (e: unknown) => e as { statusCode?: number });
  t.is(write?.statusCode, 403);
});

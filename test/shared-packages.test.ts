// Sharing between namespaces as OpenWhisk does it: a sequence may use actions from another
// namespace's *published* package (`/otherns/pkg/action`), `GET …/packages?public=true` lists what
// other namespaces publish, and an action reached through a package binding carries the `binding`
// annotation. Two namespaces (the default `guest` and one made by the admin module) on a whole
// platform with a real nats-server and KVM virtines.
import test from "ava";
import { Admin } from "../admin/namespaces.ts";
import { annotation, api, startPlatform, waitForActivation, type Platform } from "./harness.ts";
import { DOUBLE_C } from "./fixtures.ts";

let platform: Platform;
/** Requests as the second namespace, `team-seq`. */
let asTeam: (method: string, path: string, body?: unknown) => ReturnType<Platform["request"]>;

const INC_JS = `function main({ n, step = 1 }) { return { n: n + step }; }`;
const ECHO_JS = `function main(params) { return params; }`;

/** A component activation of `team-seq`, once stored (waitForActivation with the team's key). */
const teamActivation = (id: string) => waitForActivation({ ...platform, request: (m, p, b) => asTeam(m, p, b) }, id);

async function must(res: Promise<{ status: number; body: unknown }>, what: string) {
  const r = await res;
  if (r.status !== 200) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
}

test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  const { apiKey } = await (await Admin.open(platform.nc)).createNamespace("team-seq");
  asTeam = (method, path, body) => platform.request(method, path, body, {}, { auth: apiKey });
  const guest = (path: string, body: unknown) => must(platform.request("PUT", api(path), body), `PUT ${path}`);
  // guest publishes `lib` (with a default parameter) and keeps `hidden` and a loose action private.
  await guest("packages/lib", { publish: true, parameters: [{ key: "factor", value: 3 }] });
  await guest("actions/lib/inc", { exec: { kind: "nodejs", code: INC_JS } });
  await guest("actions/lib/double", { exec: { kind: "c", code: DOUBLE_C } });
  await guest("actions/helper", { exec: { kind: "nodejs", code: `function main({ n }) { return { n: n - 1000 }; }` } });
  // A published sequence that uses guest's own private action: its components answer to guest.
  await guest("actions/lib/pipe", { exec: { kind: "sequence", components: ["/_/lib/inc", "/_/helper"] } });
  await guest("packages/hidden", {});
  await guest("actions/hidden/echo", { exec: { kind: "nodejs", code: ECHO_JS } });
  await guest("actions/loose", { exec: { kind: "nodejs", code: ECHO_JS } });
  await guest("packages/lib2", { publish: true });
  await guest("actions/lib2/echo", { exec: { kind: "nodejs", code: ECHO_JS } });
});
test.after.always(async () => {
  await platform?.stop();
});

test("a sequence of three runs two actions of another namespace's published package around one of its own", async (t) => {
  await must(asTeam("PUT", api("actions/local"), { exec: { kind: "nodejs", code: `function main({ n }) { return { n: n * 10 }; }` } }), "local");
  const created = await asTeam("PUT", api("actions/mixed"), { exec: { kind: "sequence", components: ["/guest/lib/inc", "/_/local", "/guest/lib/double"] } });
  t.is(created.status, 200, JSON.stringify(created.body));

  const res = await asTeam("POST", api("actions/mixed?blocking=true"), { n: 1 });
  t.is(res.status, 200, JSON.stringify(res.body));
  // (1 + 1) * 10 = 20, times the package's factor 3 = 60.
  t.deepEqual(res.body.response.result, { n: 60 });
  t.is(res.body.namespace, "team-seq");
  t.is(res.body.logs.length, 3);

  const paths = [];
  for (const id of res.body.logs) {
    const component = await teamActivation(id);
    t.is(component.namespace, "team-seq", "every activation belongs to the caller");
    t.is(component.cause, res.body.activationId);
    paths.push(annotation(component, "path"));
  }
  t.deepEqual(paths, ["guest/lib/inc", "team-seq/local", "guest/lib/double"]);
  // The owner of the package does not see the caller's activations.
  t.is((await platform.request("GET", api(`activations/${res.body.activationId}`))).status, 404);
});

test("a published sequence runs with its owner's components, even ones the caller could not name", async (t) => {
  const created = await asTeam("PUT", api("actions/via-pipe"), { exec: { kind: "sequence", components: ["/guest/lib/pipe"] } });
  t.is(created.status, 200, JSON.stringify(created.body));
  const res = await asTeam("POST", api("actions/via-pipe?blocking=true&result=true"), { n: 5 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body, { n: 5 + 1 - 1000 });
  // Named directly, the same private action is refused.
  const direct = await asTeam("PUT", api("actions/via-helper"), { exec: { kind: "sequence", components: ["/guest/helper"] } });
  t.is(direct.status, 400);
});

test("components in a private package, loose actions and missing packages of another namespace are refused alike; nothing is stored", async (t) => {
  const refused = ["/guest/hidden/echo", "/guest/loose", "/guest/nowhere/echo", "/nobody/lib/inc"];
  for (const [i, component] of refused.entries()) {
    const res = await asTeam("PUT", api(`actions/refused-${i}`), { exec: { kind: "sequence", components: [component] } });
    t.is(res.status, 400, `${component}: ${JSON.stringify(res.body)}`);
    t.is(res.body.error, `exec.components.0: ${component} is not in your namespace nor in a published package`);
    t.is((await asTeam("GET", api(`actions/refused-${i}`))).status, 404);
  }
  const missing = await asTeam("PUT", api("actions/refused-missing"), { exec: { kind: "sequence", components: ["/guest/lib/missing"] } });
  t.is(missing.status, 400);
  t.is(missing.body.error, "exec.components.0: action /guest/lib/missing does not exist");
  t.is((await asTeam("GET", api("actions/refused-missing"))).status, 404);
});

test("a package unpublished later stops the sequences that use it, with a 400 naming the component", async (t) => {
  t.is((await asTeam("PUT", api("actions/uses-lib2"), { exec: { kind: "sequence", components: ["/guest/lib2/echo"] } })).status, 200);
  const before = await asTeam("POST", api("actions/uses-lib2?blocking=true&result=true"), { x: 1 });
  t.is(before.status, 200, JSON.stringify(before.body));
  t.deepEqual(before.body, { x: 1 });
  t.is((await platform.request("PUT", api("packages/lib2?overwrite=true"), { publish: false })).status, 200);
  const after = await asTeam("POST", api("actions/uses-lib2?blocking=true"), { x: 1 });
  t.is(after.status, 400);
  t.regex(after.body.error, /^exec\.components\.0: \/guest\/lib2\/echo is not in your namespace nor in a published package$/);
});

test("packages?public=true adds other namespaces' published packages to one's own; without it, only one's own", async (t) => {
  await must(asTeam("PUT", api("packages/team-tools"), { publish: true }), "team-tools");
  await must(asTeam("PUT", api("packages/team-private"), {}), "team-private");
  const names = (body: Array<{ namespace: string; name: string }>) => body.map((p) => `${p.namespace}/${p.name}`).sort();

  const own = await asTeam("GET", api("packages"));
  t.is(own.status, 200);
  t.true(names(own.body).every((n) => n.startsWith("team-seq/")), names(own.body).join());
  t.true(names(own.body).includes("team-seq/team-private"));

  const withPublic = await asTeam("GET", api("packages?public=true&limit=200"));
  t.is(withPublic.status, 200);
  const listed = names(withPublic.body);
  t.true(listed.includes("guest/lib") && listed.includes("team-seq/team-tools") && listed.includes("team-seq/team-private"), listed.join());
  t.false(listed.includes("guest/hidden"), "a private package is never listed to others");
  t.true(withPublic.body.every((p: { namespace: string; publish: boolean }) => p.namespace === "team-seq" || p.publish));

  const guestView = names((await platform.request("GET", api("packages?public=true&limit=200"))).body);
  t.true(guestView.includes("guest/hidden") && guestView.includes("team-seq/team-tools"), guestView.join());
  t.false(guestView.includes("team-seq/team-private"));
  t.is(new Set(guestView).size, guestView.length, "no package twice");
  t.is((await asTeam("GET", api("packages?public=maybe"))).status, 400);
});

test("an action run through a package binding carries OpenWhisk's binding annotation, alone or in a sequence", async (t) => {
  await must(asTeam("PUT", api("packages/mylib"), { binding: { namespace: "guest", name: "lib" }, parameters: [{ key: "step", value: 5 }] }), "mylib");
  const res = await asTeam("POST", api("actions/mylib/inc?blocking=true"), { n: 1 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.response.result, { n: 6 });
  t.is(annotation(res.body, "binding"), "team-seq/mylib");
  t.is(annotation(res.body, "path"), "guest/lib/inc", "the path is the action that ran");

  t.is((await asTeam("PUT", api("actions/bound-seq"), { exec: { kind: "sequence", components: ["/_/mylib/inc", "/guest/lib/inc"] } })).status, 200);
  const seq = await asTeam("POST", api("actions/bound-seq?blocking=true"), { n: 0 });
  t.is(seq.status, 200, JSON.stringify(seq.body));
  t.deepEqual(seq.body.response.result, { n: 6 });
  t.is(annotation(seq.body, "binding"), undefined);
  const [viaBinding, direct] = await Promise.all(
    seq.body.logs.map((id: string) => teamActivation(id)),
  );
  t.is(annotation(viaBinding, "binding"), "team-seq/mylib");
  t.is(annotation(direct, "binding"), undefined, "named directly, no binding");

  // A binding within one's own namespace is annotated the same way; a plain package action is not.
  await must(platform.request("PUT", api("packages/own-binding"), { binding: { namespace: "_", name: "lib" } }), "own-binding");
  const own = await platform.request("POST", api("actions/own-binding/inc?blocking=true"), { n: 1 });
  t.is(own.status, 200, JSON.stringify(own.body));
  t.is(annotation(own.body, "binding"), "guest/own-binding");
  const plain = await platform.request("POST", api("actions/lib/inc?blocking=true"), { n: 1 });
  t.is(annotation(plain.body, "binding"), undefined);
  t.is(annotation(plain.body, "path"), "guest/lib/inc");
});

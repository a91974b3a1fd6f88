// Actions, complete (issue 4, item 2): default parameters and their merge, annotations, limits with
// OpenWhisk's ranges, updates with overwrite, `code=false`, `publish`, the nodejs kind aliases —
// against a whole platform on a real nats-server and real KVM virtines.
import test from "ava";
import { api, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
});
test.after.always(async () => {
  await platform?.stop();
});

const ECHO_JS = `function main(params) { console.log("echo"); return params; }`;
const ECHO_C = `#include <vespid.h>
const char *vespid_main(const char *params) { return params; }`;

test("defaults, annotations, limits and publish are stored, shown, and defaults merge under invoke parameters", async (t) => {
  const body = {
    exec: { kind: "nodejs", code: ECHO_JS },
    parameters: [{ key: "greeting", value: "hello" }, { key: "n", value: 1 }],
    annotations: [{ key: "description", value: "echoes" }],
    limits: { timeout: 5000, memory: 64, logs: 2 },
    publish: true,
  };
  const created = await platform.request("PUT", api("actions/defaults"), body);
  t.is(created.status, 200, JSON.stringify(created.body));
  t.like(created.body, {
    namespace: "guest",
    name: "defaults",
    version: "0.0.1",
    publish: true,
    limits: { timeout: 5000, memory: 64, logs: 2 },
    exec: { kind: "nodejs", code: ECHO_JS, binary: false },
  });
  t.deepEqual(created.body.parameters, body.parameters);
  // OpenWhisk adds the kind as an `exec` annotation (wsk shows it in listings).
  t.deepEqual(created.body.annotations, [...body.annotations, { key: "exec", value: "nodejs" }]);

  const res = await platform.request("POST", api("actions/defaults?blocking=true&result=true"), { n: 2, extra: true });
  t.is(res.status, 200);
  t.deepEqual(res.body, { greeting: "hello", n: 2, extra: true });

  const noCode = await platform.request("GET", api("actions/defaults?code=false"));
  t.is(noCode.status, 200);
  t.is(noCode.body.exec.code, undefined);
  t.is(noCode.body.exec.kind, "nodejs");
  t.deepEqual(noCode.body.parameters, body.parameters);
  const withCode = await platform.request("GET", api("actions/defaults?code=true"));
  t.is(withCode.body.exec.code, ECHO_JS);
  t.is((await platform.request("GET", api("actions/defaults?code=maybe"))).status, 400);
});

test("PUT on an existing action is 409 without overwrite; with it the version goes up and omitted fields are kept", async (t) => {
  const first = await platform.request("PUT", api("actions/updated"), {
    exec: { kind: "c", code: ECHO_C },
    parameters: [{ key: "kept", value: true }],
  });
  t.is(first.status, 200, JSON.stringify(first.body));
  const again = await platform.request("PUT", api("actions/updated"), { exec: { kind: "c", code: ECHO_C } });
  t.is(again.status, 409);
  t.is(again.body.error, "resource already exists");

  const annotated = await platform.request("PUT", api("actions/updated?overwrite=true"), { annotations: [{ key: "a", value: 1 }] });
  t.is(annotated.status, 200, JSON.stringify(annotated.body));
  t.is(annotated.body.version, "0.0.2");
  t.is(annotated.body.exec.code, ECHO_C, "an update without exec keeps the code");
  t.deepEqual(annotated.body.parameters, [{ key: "kept", value: true }]);
  t.deepEqual(annotated.body.annotations, [{ key: "a", value: 1 }, { key: "exec", value: "c" }]);

  const recoded = await platform.request("PUT", api("actions/updated?overwrite=true"), { exec: { kind: "nodejs", code: ECHO_JS } });
  t.is(recoded.body.version, "0.0.3");
  t.deepEqual(recoded.body.annotations, [{ key: "a", value: 1 }, { key: "exec", value: "nodejs" }], "exec follows the kind");
  const ran = await platform.request("POST", api("actions/updated?blocking=true"), { x: 1 });
  t.is(ran.status, 200, JSON.stringify(ran.body));
  t.is(ran.body.version, "0.0.3", "the activation records the version that ran");
  t.deepEqual(ran.body.response.result, { kept: true, x: 1 });
  t.true(ran.body.annotations.some((a: { key: string; value: unknown }) => a.key === "kind" && a.value === "nodejs"));
});

test("nodejs:default and nodejs:20 are stored as given and run on the JS image", async (t) => {
  for (const kind of ["nodejs:default", "nodejs:20"]) {
    const name = `alias-${kind.replace(":", "-")}`;
    const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind, code: ECHO_JS } });
    t.is(res.status, 200, JSON.stringify(res.body));
    t.is(res.body.exec.kind, kind);
    const ran = await platform.request("POST", api(`actions/${name}?blocking=true&result=true`), { kind });
    t.is(ran.status, 200, JSON.stringify(ran.body));
    t.deepEqual(ran.body, { kind });
  }
});

test("limits outside OpenWhisk's (and the engine's) ranges are 400s naming the field, and store nothing", async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ timeout: 99 }, /limits\.timeout: /],
    [{ timeout: 300_001 }, /limits\.timeout: /],
    [{ memory: 15 }, /limits\.memory: /],
    [{ memory: 513 }, /limits\.memory: /],
    [{ logs: -1 }, /limits\.logs: /],
    [{ logs: 11 }, /limits\.logs: /],
    [{ timeout: "fast" }, /limits\.timeout: /],
  ];
  for (const [limits, message] of cases) {
    const res = await platform.request("PUT", api("actions/badlimits"), { exec: { kind: "nodejs", code: ECHO_JS }, limits });
    t.is(res.status, 400, JSON.stringify(limits));
    t.regex(res.body.error, message);
  }
  t.is((await platform.request("GET", api("actions/badlimits"))).status, 404);
});

test("malformed parameters, annotations, exec and publish are 400s naming the field", async (t) => {
  const exec = { kind: "nodejs", code: ECHO_JS };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ exec, parameters: { a: 1 } }, /^parameters: /],
    [{ exec, parameters: [{ key: "a" }] }, /parameters\.0\.value: /],
    [{ exec, parameters: [{ key: "", value: 1 }] }, /parameters\.0\.key: /],
    [{ exec, annotations: [{ key: "a", value: 1, extra: 2 }] }, /annotations\.0: /],
    [{ exec, publish: "yes" }, /publish: /],
    // binary: the code must be a base64 zip (test/zip-actions.test.ts has the zip cases).
    [{ exec: { kind: "nodejs", code: ECHO_JS, binary: true } }, /^exec\.code: .*base64/],
    [{ exec: { kind: "java", code: "class A {}" } }, /exec\.kind: /],
    [{ parameters: [] }, /exec: is required/],
  ];
  for (const [body, message] of cases) {
    const res = await platform.request("PUT", api("actions/malformed"), body);
    t.is(res.status, 400, JSON.stringify(body));
    t.regex(res.body.error, message);
  }
  t.is((await platform.request("GET", api("actions/malformed"))).status, 404);
});

test("limits.logs 0 keeps no logs; the limits are in the listing", async (t) => {
  const res = await platform.request("PUT", api("actions/quiet"), { exec: { kind: "nodejs", code: ECHO_JS }, limits: { logs: 0 } });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body.limits, { timeout: 60_000, memory: 256, logs: 0 });
  const ran = await platform.request("POST", api("actions/quiet?blocking=true"), {});
  t.is(ran.status, 200);
  t.deepEqual(ran.body.logs, []);
  const list = await platform.request("GET", api("actions"));
  const listed = list.body.find((a: { name: string }) => a.name === "quiet");
  t.deepEqual(listed.limits, { timeout: 60_000, memory: 256, logs: 0 });
  t.false(listed.publish);
});

test("missing actions are 404 on every verb; bad names are 400 naming the name", async (t) => {
  for (const method of ["GET", "DELETE", "POST"]) {
    t.is((await platform.request(method, api("actions/nope"), method === "POST" ? {} : undefined)).status, 404, method);
  }
  const bad = await platform.request("GET", api("actions/.hidden"));
  t.is(bad.status, 400);
  t.regex(bad.body.error, /^name: /);
  const updateMissing = await platform.request("PUT", api("actions/nope?overwrite=true"), { parameters: [] });
  t.is(updateMissing.status, 400, "overwrite of a missing action still needs exec");
});

test("odd names on every action and package route are 4xx JSON errors, never a 5xx, and store nothing", async (t) => {
  const names = ["..", ".a", "é", "a%2Fb", "x".repeat(257), "%20a", "a%20", "a%00b", "%E2%80%AE"];
  const exec = { kind: "nodejs", code: ECHO_JS };
  for (const name of names) {
    for (const path of [`actions/${name}`, `actions/${name}/x`, `actions/x/${name}`, `packages/${name}`]) {
      for (const method of ["GET", "PUT", "DELETE", "POST"]) {
        const body = method === "PUT" ? (path.startsWith("packages") ? {} : { exec }) : method === "POST" ? {} : undefined;
        const res = await platform.request(method, api(path), body);
        t.true(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status}`);
        t.is(typeof res.body.error, "string", `${method} ${path}`);
      }
    }
  }
  const listed = await platform.request("GET", api("packages"));
  t.false(listed.body.some((p: { name: string }) => names.includes(p.name)));
});

// Sequences (issue 4, item 2): `exec: {kind: "sequence", components}` runs each component in its own
// virtine, the output of one the input of the next, mixing C and JavaScript and packaged actions.
// The sequence's activation lists the component activations; each of those names its cause.
import test from "ava";
import { api, waitForActivation, annotation, startPlatform, type Platform } from "./harness.ts";
import { DOUBLE_C } from "./fixtures.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  const make = async (path: string, body: unknown) => {
    const res = await platform.request("PUT", api(path), body);
    if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  await make("actions/inc", { exec: { kind: "nodejs", code: INC_JS } });
  await make("actions/double", { exec: { kind: "c", code: DOUBLE_C }, parameters: [{ key: "factor", value: 2 }] });
  await make("packages/math", { parameters: [{ key: "offset", value: 100 }] });
  await make("actions/math/square", { exec: { kind: "nodejs:20", code: SQUARE_JS } });
  await make("actions/fail", { exec: { kind: "nodejs", code: `function main() { return { error: "stop here" }; }` } });
});
test.after.always(async () => {
  await platform?.stop();
});

const INC_JS = `function main({ n }) { console.log("inc", n); return { n: n + 1 }; }`;
/** Squares n and adds the package's `offset` default. */
const SQUARE_JS = `function main({ n, offset }) { return { n: n * n + offset }; }`;


test("a sequence of three actions (JS, C, packaged JS) passes each result on and lists its components", async (t) => {
  const created = await platform.request("PUT", api("actions/pipeline"), {
    exec: { kind: "sequence", components: ["/_/inc", "/_/double", "/guest/math/square"] },
  });
  t.is(created.status, 200, JSON.stringify(created.body));
  t.deepEqual(created.body.exec, { kind: "sequence", components: ["/_/inc", "/_/double", "/guest/math/square"] });

  const res = await platform.request("POST", api("actions/pipeline?blocking=true"), { n: 1 });
  t.is(res.status, 200, JSON.stringify(res.body));
  // (1 + 1) * 2 = 4; 4² + 100 = 116
  t.deepEqual(res.body.response.result, { n: 116 });
  t.is(annotation(res.body, "kind"), "sequence");
  t.is(annotation(res.body, "topmost"), true);
  t.is(res.body.logs.length, 3);

  const names = [];
  for (const id of res.body.logs) {
    const component = await waitForActivation(platform, id);
    t.is(component.cause, res.body.activationId);
    t.is(annotation(component, "causedBy"), "sequence");
    t.true(component.response.success);
    names.push(component.name);
  }
  t.deepEqual(names, ["inc", "double", "math/square"]);
  const first = await waitForActivation(platform, res.body.logs[0]);
  t.true(first.logs.some((l: string) => l.endsWith("stdout: inc 1")), first.logs.join("\n"));

  const resultOnly = await platform.request("POST", api("actions/pipeline?blocking=true&result=true"), { n: 2 });
  t.deepEqual(resultOnly.body, { n: 136 });
});

test("a failing component stops the sequence with its error; the later ones do not run", async (t) => {
  t.is((await platform.request("PUT", api("actions/broken"), { exec: { kind: "sequence", components: ["/_/inc", "/_/fail", "/_/double"] } })).status, 200);
  const res = await platform.request("POST", api("actions/broken?blocking=true"), { n: 1 });
  t.is(res.status, 502);
  t.like(res.body.response, { status: "application error", success: false, result: { error: "stop here" } });
  t.is(res.body.logs.length, 2);
});

test("nested sequences run flattened; a non-blocking sequence is recorded", async (t) => {
  t.is((await platform.request("PUT", api("actions/twice"), { exec: { kind: "sequence", components: ["/_/inc", "/_/inc"] } })).status, 200);
  t.is((await platform.request("PUT", api("actions/outer"), { exec: { kind: "sequence", components: ["/_/twice", "/_/double"] } })).status, 200);
  const res = await platform.request("POST", api("actions/outer?blocking=true&result=true"), { n: 0 });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.deepEqual(res.body, { n: 4 });

  const queued = await platform.request("POST", api("actions/outer"), { n: 1 });
  t.is(queued.status, 202);
  const record = await waitForActivation(platform, queued.body.activationId);
  t.deepEqual(record.response.result, { n: 6 });
  t.is(record.logs.length, 3);
});

test("bad components are 400s naming them, and store nothing", async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [["/_/inc", "/_/missing"], /^exec\.components\.1: action \/_\/missing does not exist/],
    [["inc"], /^exec\.components\.0: /],
    [["/other/inc"], /^exec\.components\.0: \/other\/inc is not in your namespace/],
    [[], /^exec\.components: /],
    [["/_/a/b/c"], /^exec\.components\.0: /],
  ];
  for (const [components, message] of cases) {
    const res = await platform.request("PUT", api("actions/badseq"), { exec: { kind: "sequence", components } });
    t.is(res.status, 400, JSON.stringify(components));
    t.regex(res.body.error, message);
  }
  const withCode = await platform.request("PUT", api("actions/badseq"), { exec: { kind: "sequence", components: ["/_/inc"], code: "x" } });
  t.is(withCode.status, 400);
  t.is((await platform.request("GET", api("actions/badseq"))).status, 404);
});

test("a sequence made to contain itself is refused at invocation with a 400, not a loop", async (t) => {
  t.is((await platform.request("PUT", api("actions/selfish"), { exec: { kind: "sequence", components: ["/_/inc"] } })).status, 200);
  t.is((await platform.request("PUT", api("actions/selfish?overwrite=true"), { exec: { kind: "sequence", components: ["/_/selfish"] } })).status, 200);
  const res = await platform.request("POST", api("actions/selfish?blocking=true"), { n: 1 });
  t.is(res.status, 400);
  t.regex(res.body.error, /nest deeper than 10 levels/);
});

// Results the runner cannot store as given (issue 8, finding 3 and the contained items): a result
// nested 100k deep overflowed JSON.stringify's stack in runner/activation.ts, the record was never
// written and GET answered 404 forever; a 900 KB result that is not JSON became a 5.4M-character
// error. Now every accepted call ends in a record, and the record names the bound.
import test from "ava";
import { MAX_JSON_DEPTH } from "../contracts/index.ts";
import { MAX_ERROR_CHARS } from "../runner/activation.ts";
import { api, startPlatform, waitForActivation, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
});
test.after.always(async () => {
  await platform?.stop();
});

async function put(name: string, kind: "c" | "nodejs", code: string) {
  const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind, code } });
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Queued without blocking, as in the finding: 202, then the record must appear. */
async function invokeQueued(name: string) {
  const res = await platform.request("POST", api(`actions/${name}`), {});
  if (res.status !== 202) throw new Error(`invoke ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return waitForActivation(platform, res.body.activationId);
}

/** A C action returning `{"deep": [[[…]]]}` with `levels` arrays. */
const deepC = (levels: number) => `#include <stdlib.h>
#include <string.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    int n = ${levels};
    char *out = malloc(2 * (size_t)n + 16), *p = out;
    p += strlen(strcpy(p, "{\\"deep\\":"));
    memset(p, '[', n); p += n;
    memset(p, ']', n); p += n;
    strcpy(p, "}");
    return out;
}`;

const boundMessage = new RegExp(`nests arrays and objects deeper than the limit of ${MAX_JSON_DEPTH} levels`);

test("a C result nested 100k deep ends in a developer-error record naming the bound, which GET finds", async (t) => {
  await put("deep-c", "c", deepC(100_000));
  const record = await invokeQueued("deep-c");
  t.like(record.response, { status: "action developer error", statusCode: 2, success: false });
  t.regex(record.response.result.error, boundMessage);
  // Blocking callers get the same record (502, OpenWhisk's status for a failed blocking call).
  const blocking = await platform.request("POST", api("actions/deep-c?blocking=true"), {});
  t.is(blocking.status, 502);
  t.regex(blocking.body.response.result.error, boundMessage);
});

test("a JS result nested 100k deep ends in a developer-error record too", async (t) => {
  await put("deep-js", "nodejs", `function main() { let v = []; for (let i = 0; i < 100000; i++) v = [v]; return { deep: v }; }`);
  const record = await invokeQueued("deep-js");
  t.like(record.response, { status: "action developer error", success: false });
  // QuickJS may give up serialising it first (its own stack); either way the call has its record.
  t.log(record.response.result.error);
  t.true(typeof record.response.result.error === "string" && record.response.result.error.length < 4096);
});

test("a result exactly at the bound is stored as it is; one level more is refused", async (t) => {
  // The result object is level 1: MAX_JSON_DEPTH - 1 arrays inside it reach the bound exactly.
  await put("at-bound", "c", deepC(MAX_JSON_DEPTH - 1));
  const ok = await invokeQueued("at-bound");
  t.is(ok.response.status, "success");
  let depth = 1;
  for (let v = ok.response.result.deep; Array.isArray(v); v = v[0]) depth++;
  t.is(depth, MAX_JSON_DEPTH);
  await put("past-bound", "c", deepC(MAX_JSON_DEPTH));
  const refused = await invokeQueued("past-bound");
  t.regex(refused.response.result.error, boundMessage);
});

test("a 900 KB result that is not JSON gives a short error quoting its start", async (t) => {
  // Control characters, each six in JSON: the message grew to 5.4M characters.
  await put("not-json", "c", `#include <string.h>
#include <vespid.h>
static char out[900 * 1024 + 1];
const char *vespid_main(const char *params) {
    memset(out, 1, sizeof out - 1);
    memcpy(out, "not json", 8);
    return out;
}`);
  const record = await invokeQueued("not-json");
  t.is(record.response.status, "action developer error");
  const error: string = record.response.result.error;
  t.true(error.startsWith("The action did not produce a valid JSON response: not json"), error.slice(0, 80));
  t.true(error.length < MAX_ERROR_CHARS + 200, `${error.length} characters`);
  t.regex(error, new RegExp(`cut at ${MAX_ERROR_CHARS} of ${900 * 1024} characters`));
});

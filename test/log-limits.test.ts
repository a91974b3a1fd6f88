// The action's `limits.logs` (MB) decides how many log bytes its activations keep: real C and JS
// actions write more than their limit, on a whole platform with a real nats-server and KVM virtines.
import test from "ava";
import { LOG_LIMIT_UNIT, MAX_RECORD_LOG_BYTES, logLimitBytes, truncatedLogsMarker } from "../runner/logs-format.ts";
import { api, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
});
test.after.always(async () => {
  await platform?.stop();
});

/** A C action that prints `lines` lines of 1023 x's (1 KiB with the newline each). */
const writer = (lines: number) => `#include <stdio.h>
#include <string.h>
#include <vespid.h>
const char *vespid_main(const char *params) {
    static char line[1024];
    memset(line, 'x', 1023);
    for (int i = 0; i < ${lines}; i++) printf("%s\\n", line);
    return "{\\"done\\": true}";
}`;

async function run(name: string, code: string, logs: number | undefined, kind = "c") {
  const put = await platform.request("PUT", api(`actions/${name}`), { exec: { kind, code }, ...(logs !== undefined && { limits: { logs } }) });
  if (put.status !== 200) throw new Error(`PUT ${name}: ${put.status} ${JSON.stringify(put.body)}`);
  const res = await platform.request("POST", api(`actions/${name}?blocking=true`), {});
  if (res.status !== 200) throw new Error(`invoke ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { activationId: string; logs: string[]; response: { result: unknown } };
}

/** Bytes of output kept, without the timestamp and stream prefix of each entry. */
const keptBytes = (logs: string[]) => logs.reduce((sum, l) => sum + l.length - l.indexOf(": ") - 2 + 1, 0);
const isMarker = (l: string) => l.includes("Logs were truncated");

test("limits.logs 1: a 3 MB writer keeps at most 1 MB and ends with OpenWhisk's marker naming 1048576 bytes", async (t) => {
  const record = await run("three-mb-limit-one", writer(3 * 1024), 1);
  t.deepEqual(record.response.result, { done: true });
  t.true(record.logs.at(-1)!.endsWith(`stderr: ${truncatedLogsMarker(LOG_LIMIT_UNIT)}`), record.logs.at(-1));
  t.is(truncatedLogsMarker(LOG_LIMIT_UNIT), "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes.");
  t.is(record.logs.filter(isMarker).length, 1);
  const kept = keptBytes(record.logs.slice(0, -1));
  t.true(kept <= LOG_LIMIT_UNIT && kept > LOG_LIMIT_UNIT * 0.9, `${kept} bytes kept`);
});

test("limits.logs 3 keeps three times as much as 1 from the same writer", async (t) => {
  const record = await run("five-mb-limit-three", writer(5 * 1024), 3);
  t.true(record.logs.at(-1)!.endsWith(truncatedLogsMarker(3 * LOG_LIMIT_UNIT)));
  const kept = keptBytes(record.logs.slice(0, -1));
  t.true(kept <= 3 * LOG_LIMIT_UNIT && kept > 3 * LOG_LIMIT_UNIT * 0.9, `${kept} bytes kept`);
});

test("the default limit (10) keeps all of a 3 MB writer's output, no marker", async (t) => {
  const record = await run("three-mb-default", writer(3 * 1024), undefined);
  t.is(record.logs.length, 3 * 1024);
  t.false(record.logs.some(isMarker));
  t.true(record.logs.every((l) => /Z stdout: x{1023}$/.test(l)));
});

test("limits.logs 10 is capped at what one record carries: a 5 MB writer keeps 4 MiB and the marker says so", async (t) => {
  const record = await run("five-mb-limit-ten", writer(5 * 1024), 10);
  t.deepEqual(record.response.result, { done: true });
  t.true(record.logs.at(-1)!.endsWith(truncatedLogsMarker(MAX_RECORD_LOG_BYTES)), record.logs.at(-1));
  const kept = keptBytes(record.logs.slice(0, -1));
  t.true(kept <= MAX_RECORD_LOG_BYTES && kept > MAX_RECORD_LOG_BYTES * 0.9, `${kept} bytes kept`);
  // The record as stored is the one the caller got, logs and all.
  const stored = await platform.request("GET", api(`activations/${record.activationId}/logs`));
  t.is(stored.status, 200);
  t.is(stored.body.logs.length, record.logs.length);
});

test("limits.logs 0 keeps nothing, not even the marker, from a 3 MB writer in C or JS", async (t) => {
  const c = await run("three-mb-limit-zero", writer(3 * 1024), 0);
  t.deepEqual(c.logs, []);
  t.deepEqual(c.response.result, { done: true });
  const js = await run("js-limit-zero", `function main() { for (let i = 0; i < 100; i++) console.log("line " + i); return { ok: true }; }`, 0, "nodejs");
  t.deepEqual(js.logs, []);
  t.deepEqual(js.response.result, { ok: true });
});

test("a JS action's console output is cut at its limit too", async (t) => {
  const code = `function main() { const line = "y".repeat(1023); for (let i = 0; i < 2048; i++) console.log(line); return { ok: true }; }`;
  const record = await run("js-limit-one", code, 1, "nodejs");
  t.deepEqual(record.response.result, { ok: true });
  t.true(record.logs.at(-1)!.endsWith(truncatedLogsMarker(LOG_LIMIT_UNIT)));
  const kept = keptBytes(record.logs.slice(0, -1));
  t.true(kept <= LOG_LIMIT_UNIT && kept > LOG_LIMIT_UNIT * 0.9, `${kept} bytes kept`);
});

test("the cap follows the server's max_payload: half of it, never more than 4 MiB", (t) => {
  const embedded = 8 * 1024 * 1024;
  t.is(logLimitBytes(0, embedded), 0);
  t.is(logLimitBytes(1, embedded), 1024 * 1024);
  t.is(logLimitBytes(4, embedded), 4 * 1024 * 1024);
  t.is(logLimitBytes(10, embedded), MAX_RECORD_LOG_BYTES);
  // nats-server's default max_payload (1 MiB): a record keeps at most 512 KiB of logs.
  t.is(logLimitBytes(1, 1024 * 1024), 512 * 1024);
  t.is(logLimitBytes(10, 64 * 1024 * 1024), MAX_RECORD_LOG_BYTES);
});

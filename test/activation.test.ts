// Activation records that must fit one NATS message.
import test from "ava";
import type { Activation } from "../contracts/index.ts";
import { fitActivation } from "../runner/activation.ts";

const record = (result: Record<string, unknown>, logs: string[]): Activation => ({
  activationId: "a".repeat(32),
  namespace: "guest",
  name: "big",
  version: "0.0.1",
  start: 1,
  end: 2,
  duration: 1,
  response: { status: "success", statusCode: 0, success: true, result },
  logs,
  annotations: [],
});

test("a record that fits is left alone", (t) => {
  const small = record({ ok: true }, ["line"]);
  t.is(fitActivation(small, 10_000), small);
});

test("too big: the logs go first, then the result becomes OpenWhisk's too-long error", (t) => {
  const noisy = fitActivation(record({ ok: true }, ["x".repeat(5_000)]), 2_000);
  t.true(noisy.response.success);
  t.is(noisy.logs.length, 1);
  t.regex(noisy.logs[0]!, /dropped/);

  const huge = fitActivation(record({ blob: "y".repeat(5_000) }, []), 2_000);
  t.like(huge.response, { status: "action developer error", statusCode: 2, success: false });
  t.regex(String(huge.response.result.error), /^The action produced a response that exceeded the allowed length: \d+ > 2000 bytes\.$/);
  t.true(Buffer.byteLength(JSON.stringify(huge)) <= 2_000);
});

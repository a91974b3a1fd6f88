// A record that cannot be stored is not acknowledged as if it were (issue 10, item 1): the recorder
// tries again for a few seconds, then says so; the runner answers "retry" so the event is
// redelivered, and the waiting caller is sent nothing it could not read back. The failure is real:
// the activations bucket's stream is deleted under a real nats-server.
import test from "ava";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { ACTIONS_BUCKET, ACTIVATIONS_BUCKET, type InvocationEvent } from "../contracts/index.ts";
import { buildActivation } from "../runner/activation.ts";
import { runInvocation } from "../runner/invocation.ts";
import { ActivationRecorder } from "../runner/recorder.ts";
import { startProvisionedNats } from "./harness.ts";

test("no bucket to write to: tried again, then 'failed', nothing sent to the caller, and the runner asks for a retry", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-record-failure-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "record-failure-test");
  const logger = pino({ level: "silent" });
  try {
    const kvm = new Kvm(nc);
    const activations = await kvm.open(ACTIVATIONS_BUCKET);
    const actions = await kvm.open(ACTIONS_BUCKET);
    const recorder = new ActivationRecorder(nc, activations, logger);
    await (await jetstreamManager(nc)).streams.delete(`KV_${ACTIVATIONS_BUCKET}`);

    const replyTo = `record-failure.${randomBytes(4).toString("hex")}`;
    let sent = 0;
    const sub = nc.subscribe(replyTo, {
      callback: () => {
        sent++;
      },
    });
    const event: InvocationEvent = { activationId: randomBytes(16).toString("hex"), namespace: "guest", name: "gone", params: {}, published: Date.now(), replyTo };
    const started = Date.now();
    const outcome = await recorder.record(buildActivation({ event, start: started, end: started, verdict: { status: "success", result: {} } }), replyTo);
    t.deepEqual(outcome, { outcome: "failed" });
    t.true(Date.now() - started >= 3_000, "tried again for ~3 s before giving up");

    // The runner's path: the action does not exist, so its record is an internal error, which
    // cannot be stored either.
    const { openNativeEngine } = await import("../runner/engine-native.ts");
    const engine = openNativeEngine({ threads: 1 });
    try {
      const images = (await import("../runner/image-store.ts")).createImageStore({ dataDir, logger, engine });
      const reply = await runInvocation({ ...event, activationId: randomBytes(16).toString("hex") }, { actions, images, engine, recorder, logger });
      t.deepEqual(reply, { ok: false, error: "the activation record could not be stored", retry: true });
    } finally {
      engine.close();
    }
    await nc.flush();
    t.is(sent, 0, "the caller was sent no record that was not stored");
    sub.unsubscribe();
  } finally {
    await nc.close().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

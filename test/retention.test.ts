// Activation retention: records expire through the bucket's max age (KV TTL) on the real server,
// the configured retention reaches the bucket, and provisioning again changes an existing bucket.
import test from "ava";
import { Kvm } from "@nats-io/kv";
import { ACTIVATIONS_BUCKET } from "../contracts/index.ts";
import { loadConfig } from "../infra/config.ts";
import { provision } from "../infra/provision.ts";
import { api, startPlatform, type Platform } from "./harness.ts";

/** Long enough to read a record back after the call, short enough to watch it expire. */
const RETENTION_MS = 3_000;

let platform: Platform;
test.before(async () => {
  platform = await startPlatform({ activationRetentionMs: RETENTION_MS });
});
test.after.always(async () => {
  await platform?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial("the activations bucket has the configured max age", async (t) => {
  const status = await (await new Kvm(platform.nc).open(ACTIVATIONS_BUCKET)).status();
  t.is(status.ttl, RETENTION_MS);
});

test.serial("a record can be read while retained, and is gone from reads and listings once expired", async (t) => {
  const put = await platform.request("PUT", api("actions/brief"), { exec: { kind: "nodejs", code: "function main() { return { ok: true }; }" } });
  t.is(put.status, 200, JSON.stringify(put.body));
  const res = await platform.request("POST", api("actions/brief?blocking=true"), {});
  t.is(res.status, 200, JSON.stringify(res.body));
  const id = res.body.activationId;
  const recorded = Date.now();

  t.is((await platform.request("GET", api(`activations/${id}`))).status, 200);
  t.deepEqual((await platform.request("GET", api("activations?name=brief"))).body.map((a: any) => a.activationId), [id]);

  // The server sweeps expired messages about once a second; allow a few sweeps past the max age.
  let status = 200;
  while (status === 200 && Date.now() - recorded < RETENTION_MS + 10_000) {
    await sleep(250);
    status = (await platform.request("GET", api(`activations/${id}`))).status;
  }
  t.is(status, 404, "expired record is gone");
  t.true(Date.now() - recorded >= RETENTION_MS - 500, "not before its retention");
  t.deepEqual((await platform.request("GET", api("activations?name=brief"))).body, []);
  t.is((await platform.request("GET", api(`activations/${id}/result`))).status, 404);
});

test.serial("provisioning with another retention updates the existing bucket", async (t) => {
  const kv = await new Kvm(platform.nc).open(ACTIVATIONS_BUCKET);
  const retention = 2 * 24 * 60 * 60 * 1000;
  t.is(loadConfig({ VESPID_ACTIVATION_RETENTION: "2d" }).activationRetentionMs, retention);
  await provision(platform.nc, { activationRetentionMs: retention });
  t.is((await kv.status()).ttl, retention);
  // Without a retention given (a process started without VESPID_ACTIVATION_RETENTION, the admin
  // command), the bucket keeps the one it has.
  await provision(platform.nc);
  t.is((await kv.status()).ttl, retention);
  t.is(loadConfig({}).activationRetentionMs, undefined);
  // Back to the file's setting, so the platform ends as it began.
  await provision(platform.nc, { activationRetentionMs: RETENTION_MS });
  t.is((await kv.status()).ttl, RETENTION_MS);
});

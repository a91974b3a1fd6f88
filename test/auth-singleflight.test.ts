// A burst of requests with one key that is not in the cache runs one scrypt verification, not one
// each (issue 10, item 5); failures are shared only while they run, never remembered. Real keys in
// the real vespid_auth bucket; the verifications are keys.ts' own, counted through the hook.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm, type KV } from "@nats-io/kv";
import { AUTH_BUCKET } from "../contracts/index.ts";
import { createAuthenticator } from "../gateway/authenticator.ts";
import { createApiKey, formatApiKey, verifyApiKey, type ApiKey } from "../gateway/keys.ts";
import { startProvisionedNats } from "./harness.ts";

let dataDir: string;
let stopNats: () => Promise<void>;
let closeNc: () => Promise<void>;
let kv: KV;

test.before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "vespid-auth-singleflight-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "auth-singleflight-test");
  stopNats = nats.stop;
  closeNc = () => nc.close();
  kv = await new Kvm(nc).open(AUTH_BUCKET);
});

test.after.always(async () => {
  await closeNc?.();
  await stopNats?.();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const header = (apiKey: ApiKey) => `Basic ${Buffer.from(formatApiKey(apiKey)).toString("base64")}`;

function counted(cacheTtlMs: number) {
  let verifications = 0;
  const authenticate = createAuthenticator(kv, {
    cacheTtlMs,
    cacheMaxEntries: 100,
    verify: (bucket, apiKey) => {
      verifications++;
      return verifyApiKey(bucket, apiKey);
    },
  });
  return { authenticate, verifications: () => verifications };
}

test("50 concurrent requests with one key on a cold cache run one verification; after expiry, one more", async (t) => {
  const apiKey = await createApiKey(kv, "burst");
  const { authenticate, verifications } = counted(300);
  const answers = await Promise.all(Array.from({ length: 50 }, () => authenticate(header(apiKey))));
  t.deepEqual(new Set(answers), new Set(["burst"]));
  t.is(verifications(), 1);
  t.is(await authenticate(header(apiKey)), "burst");
  t.is(verifications(), 1, "cached");
  await new Promise((resolve) => setTimeout(resolve, 350));
  const again = await Promise.all(Array.from({ length: 50 }, () => authenticate(header(apiKey))));
  t.deepEqual(new Set(again), new Set(["burst"]));
  t.is(verifications(), 2, "the cache expired: one verification for the whole burst");
});

test("a wrong key: a burst shares one failed verification, and the failure is not remembered", async (t) => {
  const apiKey = await createApiKey(kv, "wrong");
  const wrong = { ...apiKey, key: apiKey.key.replace(/^./, (c) => (c === "0" ? "1" : "0")) };
  const { authenticate, verifications } = counted(30_000);
  const answers = await Promise.all(Array.from({ length: 20 }, () => authenticate(header(wrong))));
  t.deepEqual(new Set(answers), new Set([undefined]));
  t.is(verifications(), 1);
  t.is(await authenticate(header(wrong)), undefined);
  t.is(verifications(), 2, "a failure is checked again on the next request");
  t.is(await authenticate(header(apiKey)), "wrong", "the right key of the same uuid is its own entry");
});

test("different keys do not share a verification", async (t) => {
  const [a, b] = await Promise.all([createApiKey(kv, "ns-a"), createApiKey(kv, "ns-b")]);
  const { authenticate, verifications } = counted(30_000);
  const answers = await Promise.all([a, b, a, b].map((key) => authenticate(header(key))));
  t.deepEqual(answers, ["ns-a", "ns-b", "ns-a", "ns-b"]);
  t.is(verifications(), 2);
});

test("a verification that throws (bucket unreadable) fails its burst and is not remembered", async (t) => {
  const apiKey = await createApiKey(kv, "flaky");
  let calls = 0;
  const authenticate = createAuthenticator(kv, {
    cacheTtlMs: 30_000,
    cacheMaxEntries: 100,
    verify: async (bucket, key) => {
      if (calls++ === 0) throw new Error("bucket unreadable");
      return verifyApiKey(bucket, key);
    },
  });
  const burst = await Promise.allSettled(Array.from({ length: 10 }, () => authenticate(header(apiKey))));
  t.true(burst.every((r) => r.status === "rejected"));
  t.is(calls, 1);
  t.is(await authenticate(header(apiKey)), "flaky");
  t.is(calls, 2);
});

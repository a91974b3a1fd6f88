// Every 503 the gateway sends carries Retry-After (issue 10, item 5), whichever part of the
// platform is missing: no runner to check code, the invocation or fire stream gone, NATS down.
// Real nats-server and gateway; the failures are real (streams deleted, the server stopped).
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { ACTIONS_BUCKET, actionKey, FIRES_STREAM, INVOCATIONS_STREAM, type Action } from "../contracts/index.ts";
import { startGateway } from "../gateway/index.ts";
import { startProvisionedNats } from "./harness.ts";

test("503s carry Retry-After: no runner, no invocation stream, no fire stream, NATS down (health too)", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-retry-after-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "retry-after-test");
  const logger = pino({ level: "silent" });
  try {
    const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger });
    const auth = `Basic ${Buffer.from(gateway.apiKey!).toString("base64")}`;
    const call = (method: string, path: string, body?: unknown) =>
      fetch(new URL(path, gateway.url), {
        method,
        headers: { authorization: auth, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    const expect503 = async (res: Response, what: string) => {
      t.is(res.status, 503, `${what}: ${await res.clone().text()}`);
      t.regex(res.headers.get("retry-after") ?? "", /^[1-9]\d*$/, `${what}: Retry-After`);
    };

    // No runner is up: code cannot be checked.
    await expect503(await call("PUT", "/api/v1/namespaces/_/actions/checked", { exec: { kind: "nodejs", code: "function main() { return {}; }" } }), "PUT without a runner");

    // An action stored as a runner would have built it, so invocations get as far as the queue.
    const action: Action = {
      namespace: "guest", name: "echo", version: "0.0.1",
      exec: { kind: "nodejs", code: "function main(p) { return p; }", binary: false },
      limits: { timeout: 60_000, memory: 256, logs: 10 }, parameters: [], annotations: [], publish: false,
      codeHash: "retry-after-test", updated: Date.now(),
    };
    await (await new Kvm(nc).open(ACTIONS_BUCKET)).put(actionKey("guest", "echo"), JSON.stringify(action));
    t.is((await call("PUT", "/api/v1/namespaces/_/triggers/tick", {})).status, 200);
    t.is((await call("PUT", "/api/v1/namespaces/_/rules/tick-echo", { trigger: "/_/tick", action: "/_/echo" })).status, 200);

    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(INVOCATIONS_STREAM);
    await expect503(await call("POST", "/api/v1/namespaces/_/actions/echo"), "invoke without the invocation stream");
    await expect503(await call("POST", "/api/v1/namespaces/_/actions/echo?blocking=true"), "blocking invoke without the invocation stream");
    await jsm.streams.delete(FIRES_STREAM);
    await expect503(await call("POST", "/api/v1/namespaces/_/triggers/tick", { a: 1 }), "fire without the fire stream");

    await nats.stop();
    await expect503(await call("GET", "/api/v1/namespaces/_/actions"), "a read with NATS down");
    await expect503(await call("GET", "/health"), "health with NATS down");
    await gateway.close();
  } finally {
    await nc.close().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

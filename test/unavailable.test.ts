// When NATS goes away under a running gateway, requests that need it are answered 503 with
// Retry-After (clients retry those), not 500, and the gateway keeps serving what needs no NATS.
import test from "ava";
import { startProvisionedNats } from "./harness.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startGateway } from "../gateway/index.ts";

test("NATS down: 503 with Retry-After for what needs it, health says so, the rest still answers", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-unavailable-"));
  const { nats, nc } = await startProvisionedNats(dataDir, "unavailable-test");
  const logger = pino({ level: "silent" });
  try {
    const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger });
    const auth = { authorization: `Basic ${Buffer.from(gateway.apiKey!).toString("base64")}` };
    const get = (path: string) => fetch(new URL(path, gateway.url), { headers: auth, signal: AbortSignal.timeout(30_000) });
    t.is((await get("/api/v1/namespaces/_/actions")).status, 200, "up: the key is verified and cached");

    await nats.stop();
    const res = await get("/api/v1/namespaces/_/actions");
    t.is(res.status, 503, await res.clone().text());
    t.is(res.headers.get("retry-after"), "1");
    const body = (await res.json()) as { error: string; code: string };
    t.regex(body.error, /try again/);
    t.is(typeof body.code, "string");
    t.is((await get("/health")).status, 503);
    t.is((await get("/api/v1")).status, 200);
    await gateway.close();
  } finally {
    await nc.close().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

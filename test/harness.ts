// A whole Vespid platform inside the test process, on a real nats-server in a fresh temp directory.
// One platform per test file: start it in test.before, stop it in test.after.always.
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import openwhisk from "openwhisk";
import { startGateway } from "../gateway/index.ts";
import { startRunner } from "../runner/index.ts";
import { startScheduler } from "../scheduler/index.ts";
import { startTriggers } from "../triggers/index.ts";
import { loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { createLogger } from "../infra/logger.ts";
import { findNatsServer, startLocalNats } from "../infra/nats-server.ts";
import { provision } from "../infra/provision.ts";

export interface PlatformOptions {
  /** Runners to start (default 1); each gets its own data directory, `<dataDir>/runner-<i>`. */
  runners?: number;
  /** Capacity of each runner (default 2). */
  runnerCapacity?: number;
  /**
   * The tier each runner asks for (default "auto"): one value for all, or one per runner. A tier
   * the host cannot give makes startPlatform throw, as a runner refuses to start then.
   */
  runnerIsolation?: RunnerIsolation | RunnerIsolation[];
  /** Max age of activation records, ms (provision's default: 7 days). */
  activationRetentionMs?: number;
  /** How long blocking invocations wait before 202, ms (the gateway's default: 60 s). */
  blockingWaitMs?: number;
  /** Blocking calls go straight to runners (the gateway's default: true). */
  directCalls?: boolean;
}

export type RunnerIsolation = NonNullable<Parameters<typeof startRunner>[0]["isolation"]>;

export interface TestResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** Parsed JSON when the response says it is JSON, else the text. `any`: tests index into it freely. */
  body: any;
}

export interface RequestOptions {
  /** `uuid:key` to authenticate with instead of the platform's, or false to send no credentials. */
  auth?: string | false;
}

export interface Platform {
  /** Gateway base URL, e.g. http://127.0.0.1:41234 (paths start with /api/v1). */
  url: string;
  /** `uuid:key` of the default namespace. */
  apiKey: string;
  nc: NatsConnection;
  dataDir: string;
  runnerIds: string[];
  /**
   * An HTTP request to the gateway with Basic auth by the platform's key. An object body is sent as
   * JSON; a string as is. An `authorization` header in `headers` replaces the default credentials.
   */
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>, options?: RequestOptions): Promise<TestResponse>;
  /** Stops everything and deletes the data directory (kept when VESPID_KEEP_TEST_DATA is set). */
  stop(): Promise<void>;
}

/**
 * A real nats-server storing under `<dataDir>/nats` (the binary from PATH or what `npm run setup`
 * fetched), a connection to it named `name`, and the stream and buckets provisioned.
 */
export async function startProvisionedNats(dataDir: string, name: string, provisionOptions?: Parameters<typeof provision>[1]) {
  const nats = await startLocalNats({ dataDir: join(dataDir, "nats"), natsServer: await findNatsServer(loadConfig().dataDir) });
  try {
    const nc = await connectNats(nats.url, name);
    await provision(nc, provisionOptions);
    return { nats, nc };
  } catch (err) {
    await nats.stop();
    throw err;
  }
}

export async function startPlatform(opts: PlatformOptions = {}): Promise<Platform> {
  const config = loadConfig();
  // Quiet by default so test output stays readable; VESPID_LOG_LEVEL=debug shows everything.
  const logger = createLogger(process.env.VESPID_LOG_LEVEL ? config.logLevel : "warn");
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-test-"));

  const closers: Array<() => Promise<void>> = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const close of closers.reverse()) await close();
      if (!process.env.VESPID_KEEP_TEST_DATA) await rm(dataDir, { recursive: true, force: true });
    })());

  try {
    const { nats, nc } = await startProvisionedNats(dataDir, "vespid-test", { activationRetentionMs: opts.activationRetentionMs });
    closers.push(nats.stop);
    closers.push(() => nc.drain());

    const runnerIds: string[] = [];
    for (let i = 0; i < (opts.runners ?? 1); i++) {
      const runnerDir = join(dataDir, `runner-${i}`);
      await mkdir(runnerDir, { recursive: true });
      const isolation = Array.isArray(opts.runnerIsolation) ? opts.runnerIsolation[i] : opts.runnerIsolation;
      const runner = await startRunner({ nc, dataDir: runnerDir, capacity: opts.runnerCapacity ?? 2, logger, ...(isolation && { isolation }) });
      closers.push(runner.close);
      runnerIds.push(runner.runnerId);
    }
    const scheduler = await startScheduler({ nc, logger });
    closers.push(scheduler.close);
    const triggers = await startTriggers({ nc, logger });
    closers.push(triggers.stop);
    const gateway = await startGateway({ nc, port: 0, host: "127.0.0.1", dataDir, logger, blockingWaitMs: opts.blockingWaitMs, directCalls: opts.directCalls });
    closers.push(gateway.close);
    if (!gateway.apiKey) throw new Error("the gateway made no API key in a fresh data directory");
    const apiKey = gateway.apiKey;

    return {
      url: gateway.url,
      apiKey,
      nc,
      dataDir,
      runnerIds,
      request: (method, path, body, headers, options) => request(gateway.url, options?.auth ?? apiKey, method, path, body, headers),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function request(baseUrl: string, auth: string | false, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
  const sent = new Headers(headers);
  if (auth !== false && !sent.has("authorization")) sent.set("authorization", `Basic ${Buffer.from(auth).toString("base64")}`);
  let payload: string | undefined;
  if (typeof body === "string") payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    if (!sent.has("content-type")) sent.set("content-type", "application/json");
  }
  // A hung gateway fails this request, not the whole suite at AVA's inactivity timeout.
  const res = await fetch(new URL(path, baseUrl), { method, headers: sent, body: payload, signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  let parsed: unknown = text;
  if (res.headers.get("content-type")?.includes("json") && text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      // a broken JSON body stays text, for the test to see
    }
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), body: parsed };
}

/** A path in the caller's own namespace: `api("actions/x")` → `/api/v1/namespaces/_/actions/x`. */
export const api = (path: string): string => `/api/v1/namespaces/_/${path}`;

/** The value of an activation's (or action's) annotation `key`. */
export const annotation = (record: { annotations: Array<{ key: string; value: unknown }> }, key: string): any =>
  record.annotations.find((a) => a.key === key)?.value;

/** Polls `GET …/activations/{id}` until the runner has stored it (10 s at most). */
export async function waitForActivation(platform: Platform, id: string): Promise<any> {
  for (let i = 0; i < 200; i++) {
    const res = await platform.request("GET", api(`activations/${id}`));
    if (res.status === 200) return res.body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`activation ${id} never appeared`);
}

/** The `openwhisk` npm client, unmodified, on the platform, in the key's own namespace (`_`). */
export const openwhiskClient = (platform: Platform, apiKey = platform.apiKey): ReturnType<typeof openwhisk> =>
  openwhisk({ apihost: platform.url, api_key: apiKey, namespace: "_" });

/**
 * The error a call of the `openwhisk` client fails with. Its OpenWhiskError is not an Error
 * subclass, so ava's throwsAsync cannot take it.
 */
export async function clientFailure(promise: Promise<unknown>): Promise<{ statusCode: number; message: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { statusCode: number; message: string };
  }
  throw new Error("the call succeeded");
}

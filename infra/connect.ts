// The one way components connect to NATS: it refuses servers Vespid cannot work correctly with,
// with a message saying why, instead of failing later in obscure ways.
import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { isElectionError, retryDuringElection } from "./retry-jetstream.ts";
import { MIN_NATS_SERVER_VERSION, isVersionAtLeast } from "./version.ts";

/** How long the first connection may take before connectNats gives up (ms). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: url.split(","),
      name,
      timeout: DEFAULT_CONNECT_TIMEOUT_MS,
      // A long-running service rides out server restarts instead of dying after the default 10 tries.
      maxReconnectAttempts: -1,
      // Otherwise every request builds an Error up front for its stack trace: measured at ~0.25 ms
      // of CPU per invocation on the hot path (gateway, scheduler and runner all make requests).
      noAsyncTraces: true,
    });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${url}: ${(err as Error).message}`);
  }
  try {
    assertServerVersion(nc.info?.version);
    await assertJetStream(nc, url);
    return nc;
  } catch (err) {
    await nc.close();
    throw err;
  }
}

export function assertServerVersion(version: string | undefined): void {
  if (version && isVersionAtLeast(version, MIN_NATS_SERVER_VERSION)) return;
  throw new Error(
    `nats-server ${version ?? "(unknown version)"} is too old: Vespid needs ≥ ${MIN_NATS_SERVER_VERSION} ` +
      `(JetStream pull consumers lose requests under redelivery in 2.9)`,
  );
}

async function assertJetStream(nc: NatsConnection, url: string): Promise<void> {
  try {
    // Checks the JetStream API answers. A cluster that is electing its JetStream leader (just
    // started, or a node just died) times out or says "temporarily unavailable" for a few
    // seconds: wait for it. A server without JetStream has no responders: that fails at once.
    await retryDuringElection(() => jetstreamManager(nc), {
      deadlineMs: DEFAULT_CONNECT_TIMEOUT_MS,
      retryIf: (err) => err instanceof errors.TimeoutError || (isElectionError(err) && !(err instanceof Error && err.name === "JetStreamNotEnabled")),
    });
  } catch (err) {
    throw new Error(`JetStream is not enabled on the NATS server at ${url} (start it with -js): ${(err as Error).message}`);
  }
}

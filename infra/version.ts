// nats-server version checks, shared by the launcher (which binary to run) and the client (which
// server to accept).

/** Oldest nats-server Vespid accepts: 2.9 loses JetStream pull requests under redelivery. */
export const MIN_NATS_SERVER_VERSION = "2.10.0";

/**
 * True when `version` (e.g. "2.10.27", "v2.11.0-RC.1") is at least `min` (e.g. "2.10.0").
 * Only major.minor.patch are compared: a pre-release counts as its release. Unparseable → false,
 * so an unknown server is refused rather than trusted.
 */
export function isVersionAtLeast(version: string, min: string): boolean {
  const have = parseVersion(version);
  const want = parseVersion(min);
  if (!have || !want) return false;
  for (let i = 0; i < 3; i++) {
    if (have[i]! !== want[i]!) return have[i]! > want[i]!;
  }
  return true;
}

function parseVersion(text: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

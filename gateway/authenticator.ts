// Turns an Authorization header into the caller's namespace. scrypt takes tens of milliseconds by
// design, so a verified header is remembered for a short while (keyed by its sha256, never the key),
// and a burst of requests with one header that is not remembered runs a single verification that
// they all wait for (singleflight): 50 concurrent calls after the cache expired cost one scrypt,
// not 50. A failed verification is shared only by the requests that arrived while it ran; it is
// not remembered after. A key whose record changes or is deleted is forgotten at once (`forget`,
// fed by a watch of the keys bucket: gateway/services.ts), so a deleted key stops working within
// milliseconds on every gateway; the time limit is only a backstop for a watch that lags.
import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { parseApiKey, verifyApiKey, type ApiKey } from "./keys.ts";

/** The namespace the header's credentials belong to, or undefined when they are missing or wrong. */
export type Authenticate = (authorization: string | undefined) => Promise<string | undefined>;

export interface Authenticator extends Authenticate {
  /** The key `uuid` changed or was deleted: verify it again next time. */
  forget(uuid: string): void;
}

export interface AuthenticatorOptions {
  /** How long a verified header stays trusted, ms: the bound on a deleted key that the watch missed. */
  cacheTtlMs: number;
  /** Entries kept at most; the oldest go first. */
  cacheMaxEntries: number;
  /** Checks a key against the bucket (default: keys.ts `verifyApiKey`, scrypt). */
  verify?: (kv: KV, apiKey: ApiKey) => Promise<string | undefined>;
}

export const defaultAuthenticatorOptions = (): AuthenticatorOptions => ({
  cacheTtlMs: 30_000,
  cacheMaxEntries: 10_000,
});

export function createAuthenticator(kv: KV, options = defaultAuthenticatorOptions()): Authenticator {
  // Map iteration order is insertion order, which makes the first entry the oldest.
  const verified = new Map<string, { namespace: string; uuid: string; expires: number }>();
  // Verifications running now, by header digest; an entry lives exactly as long as its promise.
  const verifying = new Map<string, Promise<string | undefined>>();
  const verify = options.verify ?? verifyApiKey;

  const verifyOnce = (digest: string, apiKey: ApiKey): Promise<string | undefined> => {
    let running = verifying.get(digest);
    if (running) return running;
    const generation = forgotten;
    running = verify(kv, apiKey)
      .then((namespace) => {
        // A key forgotten while it was being verified may have been read before its change.
        if (namespace !== undefined && generation === forgotten) {
          if (verified.size >= options.cacheMaxEntries) verified.delete(verified.keys().next().value!);
          verified.set(digest, { namespace, uuid: apiKey.uuid, expires: Date.now() + options.cacheTtlMs });
        }
        return namespace;
      })
      .finally(() => verifying.delete(digest));
    verifying.set(digest, running);
    return running;
  };

  /** Counts forget() calls, so a verification that overlapped one is not remembered. */
  let forgotten = 0;
  const authenticate = async function authenticate(authorization: string | undefined) {
    if (authorization === undefined) return undefined;
    const apiKey = parseBasicCredentials(authorization);
    if (!apiKey) return undefined;
    const digest = createHash("sha256").update(authorization).digest("hex");
    const cached = verified.get(digest);
    if (cached && cached.expires > Date.now()) return cached.namespace;
    verified.delete(digest);

    return verifyOnce(digest, apiKey);
  };
  return Object.assign(authenticate, {
    forget(uuid: string) {
      forgotten++;
      for (const [digest, entry] of verified) if (entry.uuid === uuid) verified.delete(digest);
    },
  });
}

function parseBasicCredentials(authorization: string) {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  return match ? parseApiKey(Buffer.from(match[1]!, "base64").toString("utf8")) : undefined;
}

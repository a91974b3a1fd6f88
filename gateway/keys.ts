// API keys: `uuid:key` pairs where the bucket keeps only scrypt(key, salt) under the uuid.
import { randomBytes, randomUUID, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import type { KV } from "@nats-io/kv";
import { AuthRecord } from "../contracts/index.ts";

const scryptAsync = promisify(scrypt) as (key: string, salt: Buffer, keylen: number) => Promise<Buffer>;
const HASH_BYTES = 64;
const SALT_BYTES = 16;
/** OpenWhisk's keys are 64 characters; 32 random bytes in hex. */
const KEY_BYTES = 32;

export interface ApiKey {
  uuid: string;
  key: string;
}

export const formatApiKey = ({ uuid, key }: ApiKey): string => `${uuid}:${key}`;

export function parseApiKey(text: string): ApiKey | undefined {
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  return { uuid: text.slice(0, colon), key: text.slice(colon + 1) };
}

/** Creates a key for `namespace`; `kv.create` refuses to replace an existing uuid. */
export async function createApiKey(kv: KV, namespace: string): Promise<ApiKey> {
  const apiKey = { uuid: randomUUID(), key: randomBytes(KEY_BYTES).toString("hex") };
  const salt = randomBytes(SALT_BYTES);
  const keyHash = await scryptAsync(apiKey.key, salt, HASH_BYTES);
  const record: AuthRecord = {
    namespace,
    keyHash: keyHash.toString("hex"),
    salt: salt.toString("hex"),
    created: Date.now(),
  };
  await kv.create(apiKey.uuid, JSON.stringify(record));
  return apiKey;
}

export async function readAuthRecord(kv: KV, uuid: string): Promise<AuthRecord | undefined> {
  // A uuid can only name a bucket key if it is a valid key token; anything else cannot match.
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(uuid)) return undefined;
  const entry = await kv.get(uuid);
  if (!entry || entry.operation !== "PUT") return undefined;
  const parsed = AuthRecord.safeParse(entry.json());
  return parsed.success ? parsed.data : undefined;
}

/** The namespace `apiKey` belongs to, or undefined when the key is unknown or wrong. */
export async function verifyApiKey(kv: KV, apiKey: ApiKey): Promise<string | undefined> {
  const record = await readAuthRecord(kv, apiKey.uuid);
  if (!record) return undefined;
  const expected = Buffer.from(record.keyHash, "hex");
  const actual = await scryptAsync(apiKey.key, Buffer.from(record.salt, "hex"), expected.length);
  return timingSafeEqual(actual, expected) ? record.namespace : undefined;
}

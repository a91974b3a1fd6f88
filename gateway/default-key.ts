// The default namespace's key: made on first start and kept in `<dataDir>/auth.key` so that later
// starts can print it again (the bucket only holds its hash).
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { createApiKey, formatApiKey, parseApiKey, readAuthRecord, verifyApiKey } from "./keys.ts";

export const DEFAULT_NAMESPACE = "guest";
const KEY_FILE = "auth.key";

/**
 * The default namespace's `uuid:key`: the one in the key file while the bucket still accepts it,
 * else a new one when the bucket has none for the namespace. Undefined when the bucket has a key
 * this data directory does not know (another installation made it).
 */
export async function ensureDefaultApiKey(kv: KV, dataDir: string, logger: Logger): Promise<string | undefined> {
  const keyFile = join(dataDir, KEY_FILE);
  const saved = parseApiKey((await readOptional(keyFile))?.trim() ?? "");
  if (saved && (await verifyApiKey(kv, saved)) === DEFAULT_NAMESPACE) return formatApiKey(saved);

  if (await namespaceHasKey(kv, DEFAULT_NAMESPACE)) {
    logger.warn({ keyFile }, `namespace ${DEFAULT_NAMESPACE} has a key that is not in the key file`);
    return undefined;
  }
  const created = formatApiKey(await createApiKey(kv, DEFAULT_NAMESPACE));
  await mkdir(dataDir, { recursive: true });
  // Written aside and renamed, so a crash never leaves a half-written key file behind. A leftover
  // from such a crash is removed first: writeFile applies the mode only to a file it creates.
  await rm(`${keyFile}.tmp`, { force: true });
  await writeFile(`${keyFile}.tmp`, `${created}\n`, { mode: 0o600 });
  await rename(`${keyFile}.tmp`, keyFile);
  logger.info({ keyFile }, `created the API key of namespace ${DEFAULT_NAMESPACE}`);
  return created;
}

async function namespaceHasKey(kv: KV, namespace: string): Promise<boolean> {
  const uuids: string[] = [];
  for await (const uuid of await kv.keys()) uuids.push(uuid);
  const records = await Promise.all(uuids.map((uuid) => readAuthRecord(kv, uuid)));
  return records.some((record) => record?.namespace === namespace);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

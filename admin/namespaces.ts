// Namespaces, their API keys, invocation limits and isolation requirement: what `vespid admin` manages. Plain
// functions over a NATS connection, so tests and the CLI (bin/admin.ts) share one implementation.
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AUTH_BUCKET,
  EntityName,
  Isolation,
  NAMESPACES_BUCKET,
  NamespaceLimits,
  NamespaceRecord,
  namespaceKey,
} from "../contracts/index.ts";
import { createApiKey, formatApiKey, readAuthRecord } from "../gateway/keys.ts";

/** A refusal the operator should read (unknown namespace, bad name, ...); the CLI exits 1 with it. */
export class AdminError extends Error {
  override name = "AdminError";
}

export interface KeyInfo {
  uuid: string;
  namespace: string;
  created: number;
}

export interface NamespaceInfo {
  name: string;
  created?: number;
  keys: number;
  /** Limits set for this namespace; absent ones are the gateways' defaults. */
  limits: Partial<NamespaceLimits>;
  /** The weakest tier its actions may run on; absent: any runner. */
  isolation?: Isolation;
}

export class Admin {
  private constructor(
    private readonly namespaces: KV,
    private readonly auth: KV,
  ) {}

  /** Opens the buckets; provision() must have run on this NATS (every Vespid process runs it). */
  static async open(nc: NatsConnection): Promise<Admin> {
    const kvm = new Kvm(nc);
    const [namespaces, auth] = await Promise.all([kvm.open(NAMESPACES_BUCKET), kvm.open(AUTH_BUCKET)]);
    return new Admin(namespaces, auth);
  }

  /** Creates `name` and a first key for it; returns that key's `uuid:key` (shown once, never stored). */
  async createNamespace(name: string): Promise<{ namespace: string; apiKey: string }> {
    const namespace = checkName(name);
    if (!(await this.ensureNamespace(namespace))) throw new AdminError(`namespace ${namespace} already exists`);
    return { namespace, apiKey: formatApiKey(await createApiKey(this.auth, namespace)) };
  }

  /** Records `namespace` if it is not yet; false when it already was. Used for the default one too. */
  async ensureNamespace(namespace: string): Promise<boolean> {
    const record: NamespaceRecord = { name: namespace, created: Date.now() };
    try {
      await this.namespaces.create(namespaceKey(namespace), JSON.stringify(record));
      return true;
    } catch (err) {
      if (await this.readNamespace(namespace)) return false;
      throw err;
    }
  }

  /**
   * Deletes the namespace's keys (callers lose access once gateways' auth caches expire, 30 s) and
   * its record. Its actions, packages and activations stay in their buckets (activations expire).
   */
  async deleteNamespace(name: string): Promise<{ keysDeleted: number }> {
    const namespace = checkName(name);
    const keys = await this.listKeys(namespace);
    if (!(await this.readNamespace(namespace)) && keys.length === 0) throw new AdminError(`no namespace ${namespace}`);
    for (const key of keys) await this.auth.delete(key.uuid);
    await this.namespaces.delete(namespaceKey(namespace));
    return { keysDeleted: keys.length };
  }

  /** Every namespace with a record or a key (older data directories have keys only), by name. */
  async listNamespaces(): Promise<NamespaceInfo[]> {
    const byName = new Map<string, NamespaceInfo>();
    for (const key of await this.namespaces.keys().then(collect)) {
      const record = await this.readRecordByKey(key);
      if (record) byName.set(record.name, { name: record.name, created: record.created, keys: 0, limits: record.limits ?? {}, ...(record.isolation && { isolation: record.isolation }) });
    }
    for (const key of await this.listKeys()) {
      const info = byName.get(key.namespace) ?? { name: key.namespace, keys: 0, limits: {} };
      info.keys++;
      byName.set(key.namespace, info);
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A new key for an existing namespace; returns its `uuid:key`. */
  async createKey(name: string): Promise<string> {
    const namespace = checkName(name);
    await this.requireNamespace(namespace);
    return formatApiKey(await createApiKey(this.auth, namespace));
  }

  async deleteKey(uuid: string): Promise<KeyInfo> {
    const record = await readAuthRecord(this.auth, uuid);
    if (!record) throw new AdminError(`no key ${uuid}`);
    await this.auth.delete(uuid);
    return { uuid, namespace: record.namespace, created: record.created };
  }

  /** Keys (uuids only: the secrets are not stored) of one namespace or of all. */
  async listKeys(namespace?: string): Promise<KeyInfo[]> {
    const keys: KeyInfo[] = [];
    for (const uuid of await this.auth.keys().then(collect)) {
      const record = await readAuthRecord(this.auth, uuid);
      if (record && (namespace === undefined || record.namespace === namespace)) {
        keys.push({ uuid, namespace: record.namespace, created: record.created });
      }
    }
    return keys.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.created - b.created);
  }

  /** Sets some of a namespace's limits (the others keep their value); returns the ones now set. */
  async setLimits(name: string, limits: Partial<NamespaceLimits>): Promise<Partial<NamespaceLimits>> {
    const namespace = checkName(name);
    const parsed = NamespaceLimits.partial().safeParse(limits);
    if (!parsed.success) {
      throw new AdminError(parsed.error.issues.map((i) => `${i.path.join(".") || "limits"}: ${i.message}`).join("; "));
    }
    await this.requireNamespace(namespace);
    const next = await this.updateRecord(namespace, (current) => ({ ...current, limits: { ...current.limits, ...parsed.data } }));
    return next.limits!;
  }

  /**
   * Sets the weakest tier the namespace's actions may run on: `kvm` keeps them off process-tier
   * runners (gateways check their code on, and schedulers place them on, kvm runners only);
   * `process` lifts the requirement (any runner). Gateways apply it within moments.
   */
  async setIsolation(name: string, isolation: string): Promise<Isolation | undefined> {
    const namespace = checkName(name);
    const parsed = Isolation.safeParse(isolation);
    if (!parsed.success) throw new AdminError(`isolation must be "kvm" or "process", got ${JSON.stringify(isolation)}`);
    await this.requireNamespace(namespace);
    const next = await this.updateRecord(namespace, ({ isolation: _, ...rest }) => ({
      ...rest,
      // "process" is what every runner gives: stored as no requirement at all.
      ...(parsed.data === "kvm" && { isolation: parsed.data }),
    }));
    return next.isolation;
  }

  /** The tier the namespace requires, or undefined when any runner may run its actions. */
  async getIsolation(name: string): Promise<Isolation | undefined> {
    const namespace = checkName(name);
    await this.requireNamespace(namespace);
    return (await this.readNamespace(namespace))?.isolation;
  }

  /** Rewrites the namespace's record with `change`, compare-and-set: two admins at once both take effect. */
  private async updateRecord(namespace: string, change: (current: NamespaceRecord) => NamespaceRecord): Promise<NamespaceRecord> {
    for (;;) {
      const entry = await this.namespaces.get(namespaceKey(namespace));
      const record = entry?.operation === "PUT" ? NamespaceRecord.safeParse(entry.json()) : undefined;
      const current = record?.success ? record.data : { name: namespace, created: Date.now() };
      const next = change(current);
      try {
        if (entry?.operation === "PUT") await this.namespaces.update(namespaceKey(namespace), JSON.stringify(next), entry.revision);
        else await this.namespaces.create(namespaceKey(namespace), JSON.stringify(next));
        return next;
      } catch (err) {
        // Someone wrote in between: read again. Anything else (NATS down) is not ours to retry.
        if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      }
    }
  }

  /** The limits set for a namespace (absent ones are the gateways' defaults). */
  async getLimits(name: string): Promise<Partial<NamespaceLimits>> {
    const namespace = checkName(name);
    await this.requireNamespace(namespace);
    return (await this.readNamespace(namespace))?.limits ?? {};
  }

  private async requireNamespace(namespace: string): Promise<void> {
    if (await this.readNamespace(namespace)) return;
    // A namespace from before namespace records existed has keys only: adopt it.
    if ((await this.listKeys(namespace)).length > 0) {
      await this.ensureNamespace(namespace);
      return;
    }
    throw new AdminError(`no namespace ${namespace}; create it with \`vespid admin namespace create ${namespace}\``);
  }

  private readNamespace(namespace: string): Promise<NamespaceRecord | undefined> {
    return this.readRecordByKey(namespaceKey(namespace));
  }

  private async readRecordByKey(key: string): Promise<NamespaceRecord | undefined> {
    const entry = await this.namespaces.get(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const parsed = NamespaceRecord.safeParse(entry.json());
    return parsed.success ? parsed.data : undefined;
  }
}

function checkName(name: string): string {
  const parsed = EntityName.safeParse(name);
  if (!parsed.success) throw new AdminError(`namespace name ${JSON.stringify(name)} ${parsed.error.issues[0]!.message}`);
  // `_` stands for "the caller's own namespace" in API paths, so no namespace may be called that.
  if (name === "_") throw new AdminError(`"_" is reserved: it means the caller's own namespace`);
  return parsed.data;
}

async function collect(keys: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const key of keys) all.push(key);
  return all;
}

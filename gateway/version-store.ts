// Every stored version of every action (beyond OpenWhisk, which keeps only the current one), in
// ACTION_VERSIONS_BUCKET, one key per version, so old versions can be listed, fetched, invoked
// and rolled back to. Bounded: only the newest MAX_VERSIONS of an action are kept.
import type { KV } from "@nats-io/kv";
import { Action, actionKey, actionVersionKey } from "../contracts/index.ts";

/** Versions kept per action; older ones are purged when a new one is stored. */
export const MAX_VERSIONS = 20;

export class VersionStore {
  constructor(private readonly kv: KV) {}

  /** Stores `action` as one of its versions and drops the oldest beyond MAX_VERSIONS. */
  async add(action: Action): Promise<void> {
    await this.kv.put(actionVersionKey(action.namespace, action.name, action.version), JSON.stringify(action));
    const versions = await this.list(action.namespace, action.name);
    for (const old of versions.slice(MAX_VERSIONS)) {
      await this.kv.purge(actionVersionKey(old.namespace, old.name, old.version));
    }
  }

  async get(namespace: string, name: string, version: string): Promise<Action | undefined> {
    const entry = await this.kv.get(actionVersionKey(namespace, name, version));
    return entry?.operation === "PUT" ? Action.parse(entry.json()) : undefined;
  }

  /** Newest first. Listing is a KV key scan of this action's keys (one consumer per call). */
  async list(namespace: string, name: string): Promise<Action[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys(`${actionKey(namespace, name)}.*`)) keys.push(key);
    const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
    const actions = entries.flatMap((e) => (e?.operation === "PUT" ? [Action.parse(e.json())] : []));
    return actions.sort((a, b) => compareVersions(b.version, a.version));
  }

  /** Forgets every version of an action (it was deleted; a new one starts again at 0.0.1). */
  async removeAll(namespace: string, name: string): Promise<void> {
    for (const action of await this.list(namespace, name)) {
      await this.kv.purge(actionVersionKey(namespace, name, action.version));
    }
  }
}

/** Semantic versions compared numerically, field by field. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

// Named records of one kind in a KV bucket (actions, packages): read with their revision, listed
// by key filter, and written only if unchanged since that revision, so of two concurrent writers
// exactly one wins and the loser learns it (the routes answer 409).
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { z } from "zod";
import { decodeOnce } from "../infra/kv-cache.ts";

export interface Stored<T> {
  value: T;
  /** KV revision the record was read at; the precondition of a later replace or remove. */
  revision: number;
}

export class KvEntities<T> {
  /** Parsed records by entry, for entries a KV cache hands out again (infra/kv-cache.ts). */
  private readonly parsed = new WeakMap<object, unknown>();

  constructor(
    private readonly kv: KV,
    private readonly schema: z.ZodType<T>,
    private readonly keyOf: (namespace: string, name: string) => string,
  ) {}

  async get(namespace: string, name: string): Promise<Stored<T> | undefined> {
    const entry = await this.kv.get(this.keyOf(namespace, name));
    if (!entry || entry.operation !== "PUT") return undefined;
    return { value: decodeOnce(this.parsed, entry, () => this.schema.parse(entry.json())), revision: entry.revision };
  }

  /** Every record whose key matches `keyFilter` (a KV key pattern such as `ns.*`). */
  async list(keyFilter: string): Promise<T[]> {
    // A key written while the listing runs (e.g. the catalog installed by a gateway starting now)
    // can come twice from the keys() consumer: each is read once.
    const keys = new Set<string>();
    for await (const key of await this.kv.keys(keyFilter)) keys.add(key);
    const entries = await Promise.all([...keys].map((key) => this.kv.get(key)));
    return entries.flatMap((entry) => (entry?.operation === "PUT" ? [decodeOnce(this.parsed, entry, () => this.schema.parse(entry.json()))] : []));
  }

  /** False when a record by that name already exists. */
  create(namespace: string, name: string, value: T): Promise<boolean> {
    return ifUnchanged(() => this.kv.create(this.keyOf(namespace, name), JSON.stringify(value)));
  }

  /** False when the record changed since `revision`. */
  replace(namespace: string, name: string, value: T, revision: number): Promise<boolean> {
    return ifUnchanged(() => this.kv.update(this.keyOf(namespace, name), JSON.stringify(value), revision));
  }

  /** False when the record changed since `revision`. */
  remove(namespace: string, name: string, revision: number): Promise<boolean> {
    return ifUnchanged(() => this.kv.delete(this.keyOf(namespace, name), { previousSeq: revision }));
  }
}

export async function ifUnchanged(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (err) {
    if (err instanceof JetStreamApiError && isWrongLastSequence(err.code)) return false;
    throw err;
  }
}

const isWrongLastSequence = (code: number) =>
  code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;

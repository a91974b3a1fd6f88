// Actions in ACTIONS_BUCKET. Writes are conditional on the revision the caller read, so two
// concurrent writers cannot both win: the loser learns it and the route answers 409.
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Action, actionKey, subjectToken } from "../contracts/index.ts";

export interface StoredAction {
  action: Action;
  /** KV revision the action was read at; the precondition of a later replace or remove. */
  revision: number;
}

export class ActionStore {
  constructor(private readonly kv: KV) {}

  async get(namespace: string, name: string): Promise<StoredAction | undefined> {
    const entry = await this.kv.get(actionKey(namespace, name));
    if (!entry || entry.operation !== "PUT") return undefined;
    return { action: Action.parse(entry.json()), revision: entry.revision };
  }

  async list(namespace: string): Promise<Action[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys(`${subjectToken(namespace)}.*`)) keys.push(key);
    const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
    return entries.flatMap((entry) => (entry?.operation === "PUT" ? [Action.parse(entry.json())] : []));
  }

  /** False when an action by that name already exists. */
  async create(action: Action): Promise<boolean> {
    return ifUnchanged(() => this.kv.create(actionKey(action.namespace, action.name), JSON.stringify(action)));
  }

  /** False when the action changed since `revision`. */
  async replace(action: Action, revision: number): Promise<boolean> {
    return ifUnchanged(() => this.kv.update(actionKey(action.namespace, action.name), JSON.stringify(action), revision));
  }

  /** False when the action changed since `revision`. */
  async remove(action: Action, revision: number): Promise<boolean> {
    return ifUnchanged(() => this.kv.delete(actionKey(action.namespace, action.name), { previousSeq: revision }));
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

// Actions in ACTIONS_BUCKET under `<namespace>.<name>`, written only if unchanged since read.
import type { KV } from "@nats-io/kv";
import { Action, actionKey, subjectToken } from "../contracts/index.ts";
import { KvEntities } from "./kv-entities.ts";

export interface StoredAction {
  action: Action;
  /** KV revision the action was read at; the precondition of a later replace or remove. */
  revision: number;
}

export class ActionStore {
  private readonly entities: KvEntities<Action>;
  constructor(kv: KV) {
    this.entities = new KvEntities(kv, Action, actionKey);
  }

  async get(namespace: string, name: string): Promise<StoredAction | undefined> {
    const stored = await this.entities.get(namespace, name);
    return stored && { action: stored.value, revision: stored.revision };
  }

  list(namespace: string): Promise<Action[]> {
    return this.entities.list(`${subjectToken(namespace)}.*`);
  }

  /** False when an action by that name already exists. */
  create(action: Action): Promise<boolean> {
    return this.entities.create(action.namespace, action.name, action);
  }

  /** False when the action changed since `revision`. */
  replace(action: Action, revision: number): Promise<boolean> {
    return this.entities.replace(action.namespace, action.name, action, revision);
  }

  /** False when the action changed since `revision`. */
  remove(action: Action, revision: number): Promise<boolean> {
    return this.entities.remove(action.namespace, action.name, revision);
  }
}

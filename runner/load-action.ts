// The stored action an invocation runs: the current `namespace/name`, or the event's target (the
// action behind a package binding, or a pinned version from ACTION_VERSIONS_BUCKET).
import type { KV } from "@nats-io/kv";
import { Action, actionKey, actionVersionKey, type InvocationEvent } from "../contracts/index.ts";
import { decodeOnce, type KvReadCache } from "../infra/kv-cache.ts";

/** Parsed actions by cached KV entry: parsed once per revision, not once per invocation. */
const parsed = new WeakMap<object, unknown>();

/** `actionsCache`: current actions served from memory, at least as new as the event's actionRevision. */
export async function loadAction(event: InvocationEvent, kv: { actions: KV; versions?: KV; actionsCache?: KvReadCache }): Promise<Action | undefined> {
  const where = event.target ?? { namespace: event.namespace, name: event.name, version: undefined };
  const current = async () => {
    const key = actionKey(where.namespace, where.name);
    const entry = kv.actionsCache ? await kv.actionsCache.get(key, event.actionRevision) : await kv.actions.get(key);
    return entry?.operation === "PUT" ? decodeOnce(parsed, entry, () => Action.parse(entry.json())) : undefined;
  };
  if (where.version === undefined) return current();
  const entry = await kv.versions?.get(actionVersionKey(where.namespace, where.name, where.version));
  if (entry?.operation === "PUT") return Action.parse(entry.json());
  // An action stored before version history existed has only its current record.
  const action = await current();
  return action?.version === where.version ? action : undefined;
}

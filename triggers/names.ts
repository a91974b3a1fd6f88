// How rules name their trigger and action: OpenWhisk's fully qualified names, `/ns/name` or
// `/ns/pkg/name`, where `_` is the caller's namespace; a name without a leading slash is in the
// caller's namespace. Stored fully qualified, shown as `{name, path}`.
import { EntityName } from "../contracts/index.ts";
import type { ActionAddress } from "../gateway/resolve-action.ts";

/** The address a rule's `trigger` or `action` names, or the reason it is no valid name. */
export function parseEntityPath(text: string, caller: string): { ok: true; at: ActionAddress } | { ok: false; reason: string } {
  const absolute = text.startsWith("/");
  const parts = (absolute ? text.slice(1) : text).split("/");
  if (absolute ? parts.length < 2 || parts.length > 3 : parts.length > 2) {
    return { ok: false, reason: `"${text.slice(0, 100)}" is not a valid name: use /namespace/name, /namespace/package/name or name` };
  }
  const [namespace, ...rest] = absolute ? parts : [caller, ...parts];
  for (const part of [namespace === "_" ? caller : namespace!, ...rest]) {
    if (!EntityName.safeParse(part).success) return { ok: false, reason: `"${text.slice(0, 100)}" is not a valid name: "${part.slice(0, 100)}" is no entity name` };
  }
  const ns = namespace === "_" ? caller : namespace!;
  return { ok: true, at: rest.length === 2 ? { namespace: ns, pkg: rest[0]!, name: rest[1]! } : { namespace: ns, name: rest[0]! } };
}

/** `/ns/name` or `/ns/pkg/name`. */
export const qualifiedName = (at: ActionAddress): string => `/${at.namespace}/${at.pkg !== undefined ? `${at.pkg}/` : ""}${at.name}`;

/** A stored `/ns/[pkg/]name` as an address (stored names were validated when the rule was written). */
export function addressOf(qualified: string): ActionAddress {
  const [namespace = "", a = "", b] = qualified.slice(1).split("/");
  return b === undefined ? { namespace, name: a } : { namespace, pkg: a, name: b };
}

/** OpenWhisk's view of a name: `{name, path}`, path being `ns` or `ns/pkg`. */
export function pathView(qualified: string): { name: string; path: string } {
  const at = addressOf(qualified);
  return { name: at.name, path: at.pkg !== undefined ? `${at.namespace}/${at.pkg}` : at.namespace };
}

/** `ns/name` (no leading slash), as OpenWhisk writes rule and action names in trigger logs. */
export const unslashed = (qualified: string): string => qualified.replace(/^\//, "");

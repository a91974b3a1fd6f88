// What to queue for "run the action at this address for this caller": the one place that turns a
// resolved action into an InvocationRequest, used by `POST …/actions/{name}` and by the triggers
// component's rules, so a fired rule runs exactly what an API invocation of the action would.
import { annotatedIsolation, strongestIsolation, type Isolation } from "../contracts/index.ts";
import type { InvocationRequest } from "./invoke.ts";
import { flattenSequence, resolveAction, storedName, type ActionAddress, type EntityStores } from "./resolve-action.ts";

export interface InvocationDeps extends EntityStores {
  /** The weakest tier a namespace's actions may run on, when its admin set one. */
  namespaceIsolation: (namespace: string) => Isolation | undefined;
}

/**
 * The request for `caller` running the action at `at` with `params` (merged over the action's
 * defaults), or undefined when the action (or a pinned `version`) does not exist. Whether the
 * caller may use an action in another namespace is the caller's check; a sequence whose components
 * went missing fails with flattenSequence's 400.
 */
export async function invocationRequest(
  deps: InvocationDeps,
  caller: string,
  at: ActionAddress,
  params: Record<string, unknown>,
  version?: string,
): Promise<InvocationRequest | undefined> {
  const resolved = await resolveAction(deps, at, version);
  if (!resolved) return undefined;
  const { action, defaults, binding, revision } = resolved;
  const name = storedName(at);
  const sequence = action.exec.kind === "sequence" ? await flattenSequence(deps, action.namespace, action.exec.components) : undefined;
  // The activation is the caller's, even for another namespace's shared action: it is listed
  // and read there, and counts against the caller's limits (OpenWhisk's rule).
  // The runner loads `namespace/name` unless told otherwise: a binding, another namespace's
  // shared action or a pinned version.
  const elsewhere = action.namespace !== caller || action.name !== name || version !== undefined;
  // Placed only on runners of the strongest tier anyone involved asks for: the action, the
  // caller's namespace, the namespace the code lives in, and for a sequence each component
  // and its namespace (a sequence runs on one runner).
  const isolation = strongestIsolation(
    annotatedIsolation(action.annotations),
    deps.namespaceIsolation(caller),
    deps.namespaceIsolation(action.namespace),
    ...(sequence ?? []).flatMap((step) => [step.isolation, deps.namespaceIsolation(step.namespace)]),
  );
  return {
    namespace: caller,
    name,
    // OpenWhisk's merge: invoke parameters override the defaults.
    params: { ...defaults, ...params },
    ...(elsewhere && { target: { namespace: action.namespace, name: action.name, ...(version !== undefined && { version }) } }),
    ...(binding && { binding }),
    // The runner's cached copy of the action must be at least this new (infra/kv-cache.ts).
    ...(revision !== undefined && { actionRevision: revision }),
    ...(sequence && { sequence }),
    ...(isolation && { isolation }),
  };
}

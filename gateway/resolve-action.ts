// Finds the stored action a request means, through packages and bindings, with the default
// parameters OpenWhisk merges under the invoke parameters: package < binding < action.
import { annotatedIsolation, keyValuesToObject, strongestIsolation, type Action, type InvocationEvent } from "../contracts/index.ts";
import type { ActionStore } from "./action-store.ts";
import { ApiError } from "./errors.ts";
import type { PackageStore } from "./package-store.ts";
import { isShared } from "./sharing.ts";
import type { VersionStore } from "./version-store.ts";

export interface EntityStores {
  actions: ActionStore;
  packages: PackageStore;
  versions: VersionStore;
}

/** An action as addressed in a path: `name` or `pkg/name` in `namespace`. */
export interface ActionAddress {
  namespace: string;
  pkg?: string;
  name: string;
}

export interface ResolvedAction {
  /** The record to run; its namespace/name say where the code lives (the bound package's, for a binding). */
  action: Action;
  /** Default parameters, package's then binding's then action's. */
  defaults: Record<string, unknown>;
  /** `namespace/binding` when reached through a package binding: OpenWhisk's `binding` annotation. */
  binding?: string;
  /** The KV revision of the current action record read (not for a pinned version). */
  revision?: number;
}

/** The name an action is stored under: `name`, or `pkg/name` inside a package. */
export const storedName = ({ pkg, name }: { pkg?: string; name: string }): string => (pkg ? `${pkg}/${name}` : name);

/** Undefined when the action, its package or the package a binding names does not exist. */
export async function resolveAction(stores: EntityStores, at: ActionAddress, version?: string): Promise<ResolvedAction | undefined> {
  let codeNamespace = at.namespace;
  let codeName = at.name;
  let defaults: Record<string, unknown> = {};
  let binding: string | undefined;
  if (at.pkg !== undefined) {
    const pkg = (await stores.packages.get(at.namespace, at.pkg))?.pkg;
    if (!pkg) return undefined;
    if (pkg.binding) {
      const bound = (await stores.packages.get(pkg.binding.namespace, pkg.binding.name))?.pkg;
      // Another namespace's package is reachable only when published (OpenWhisk's rule).
      if (!bound || bound.binding || (bound.namespace !== at.namespace && !bound.publish)) return undefined;
      codeNamespace = bound.namespace;
      codeName = storedName({ pkg: bound.name, name: at.name });
      defaults = { ...keyValuesToObject(bound.parameters), ...keyValuesToObject(pkg.parameters) };
      binding = `${pkg.namespace}/${pkg.name}`;
    } else {
      codeName = storedName(at);
      defaults = keyValuesToObject(pkg.parameters);
    }
  }
  const current = version === undefined ? await stores.actions.get(codeNamespace, codeName) : undefined;
  const action = version === undefined ? current?.action : await stores.versions.get(codeNamespace, codeName, version);
  if (!action) return undefined;
  return { action, defaults: { ...defaults, ...keyValuesToObject(action.parameters) }, ...(binding && { binding }), ...(current && { revision: current.revision }) };
}

/** Longest chain of nested sequences, and most components once flattened. */
const MAX_SEQUENCE_DEPTH = 10;
export const MAX_SEQUENCE_COMPONENTS = 50;

/** `/ns/action` or `/ns/pkg/action` as an address; `_` is the caller's namespace. */
export function parseComponent(component: string, callerNamespace: string): ActionAddress {
  const [, ns = "", a = "", b] = component.split("/");
  const namespace = ns === "_" ? callerNamespace : ns;
  return b === undefined ? { namespace, name: a } : { namespace, pkg: a, name: b };
}


type SequenceSteps = NonNullable<InvocationEvent["sequence"]>;

/**
 * Whether `caller` may run the action at `at`: its own, or one in another namespace's published
 * package (OpenWhisk shares packages, never loose actions). Whether the action exists is not asked.
 */
async function mayUse(stores: EntityStores, caller: string, at: ActionAddress): Promise<boolean> {
  if (at.namespace === caller) return true;
  if (at.pkg === undefined) return false;
  const pkg = (await stores.packages.get(at.namespace, at.pkg))?.pkg;
  return pkg !== undefined && isShared(pkg);
}

/**
 * The primitive actions a sequence runs, in order, nested sequences flattened. Fails with 400
 * naming the component that is missing, foreign, or makes the sequence too deep or too long.
 * `owner` is the namespace the components were written in: `_` is theirs, and a component outside
 * it must be in a published package. A nested sequence is its owner's: its components answer to it.
 */
export async function flattenSequence(stores: EntityStores, owner: string, components: readonly string[], depth = 0): Promise<SequenceSteps> {
  if (depth >= MAX_SEQUENCE_DEPTH) throw new ApiError(400, `exec.components: sequences nest deeper than ${MAX_SEQUENCE_DEPTH} levels`);
  const steps: SequenceSteps = [];
  for (const [i, component] of components.entries()) {
    const at = parseComponent(component, owner);
    // One answer for unpublished and missing packages: another namespace's private names stay unknown.
    if (!(await mayUse(stores, owner, at))) {
      throw new ApiError(400, `exec.components.${i}: ${component} is not in your namespace nor in a published package`);
    }
    const resolved = await resolveAction(stores, at);
    if (!resolved) throw new ApiError(400, `exec.components.${i}: action ${component} does not exist`);
    const { action, defaults, binding } = resolved;
    if (action.exec.kind === "sequence") {
      steps.push(...(await flattenSequence(stores, action.namespace, action.exec.components, depth + 1)));
    } else {
      const isolation = strongestIsolation(annotatedIsolation(action.annotations));
      steps.push({ namespace: action.namespace, name: action.name, version: action.version, params: defaults, ...(binding && { binding }), ...(isolation && { isolation }) });
    }
    if (steps.length > MAX_SEQUENCE_COMPONENTS) {
      throw new ApiError(400, `exec.components: the sequence runs more than ${MAX_SEQUENCE_COMPONENTS} actions`);
    }
  }
  return steps;
}

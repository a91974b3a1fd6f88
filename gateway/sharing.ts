// What one namespace shares with the others, as OpenWhisk does: its published packages, which any
// authenticated caller may read, and whose actions they may read and invoke. Nothing else crosses
// namespaces (auth.ts refuses every other foreign path; sequences use the same rule).
import type { Package } from "../contracts/index.ts";
import { ApiError, Messages } from "./errors.ts";
import type { PackageStore } from "./package-store.ts";

/**
 * Whether other namespaces may read the package and read and invoke its actions: published, and
 * not a binding (OpenWhisk lets only a binding's owner follow it).
 */
export const isShared = (pkg: Package): boolean => pkg.publish && pkg.binding === undefined;

/**
 * Fails with 403 unless package `pkg` of `namespace` is shared. A private package and a missing
 * one get the same answer (OpenWhisk's 403 to non-owners), so private names stay unknown.
 */
export async function requireSharedPackage(packages: PackageStore, namespace: string, pkg: string | undefined): Promise<void> {
  const stored = pkg === undefined ? undefined : await packages.get(namespace, pkg);
  if (!stored || !isShared(stored.pkg)) throw new ApiError(403, Messages.forbidden);
}

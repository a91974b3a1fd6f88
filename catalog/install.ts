// Stores the catalog (catalog/manifest.ts) at every gateway start: namespace `whisk.system`, its
// packages and actions. Idempotent and safe with several gateways starting at once: every write
// is conditional (create-if-absent, or replace-at-revision), an entity already as the manifest
// says is left alone, and a lost race is re-read and re-compared. A newer Vespid whose catalog
// code changed replaces the stored action as a new version (0.0.1 → 0.0.2), like any update.
import { createHash } from "node:crypto";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Admin } from "../admin/namespaces.ts";
import { ACTION_VERSIONS_BUCKET, ACTIONS_BUCKET, ActionLimits, PACKAGES_BUCKET, type Action, type Package } from "../contracts/index.ts";
import { ActionStore } from "../gateway/action-store.ts";
import { PackageStore } from "../gateway/package-store.ts";
import { VersionStore } from "../gateway/version-store.ts";
import { CATALOG, SYSTEM_NAMESPACE, type CatalogAction, type CatalogPackage } from "./manifest.ts";

/** Conflicting writers tolerated per entity before giving up (only gateways starting race here). */
const MAX_ATTEMPTS = 10;

export async function installCatalog(nc: NatsConnection, logger: Logger): Promise<void> {
  await (await Admin.open(nc)).ensureNamespace(SYSTEM_NAMESPACE);
  const kvm = new Kvm(nc);
  const actions = new ActionStore(await kvm.open(ACTIONS_BUCKET));
  const packages = new PackageStore(await kvm.open(PACKAGES_BUCKET));
  const versions = new VersionStore(await kvm.open(ACTION_VERSIONS_BUCKET));
  let changed = 0;
  for (const pkg of CATALOG) {
    if (await installPackage(packages, pkg)) changed++;
    for (const action of pkg.actions) {
      const stored = await installAction(actions, pkg, action);
      if (stored) {
        changed++;
        await versions.add(stored);
      }
    }
  }
  if (changed > 0) logger.info({ namespace: SYSTEM_NAMESPACE, changed }, "installed the system catalog");
}

/** The package as the manifest says; the stored one when it already is. */
async function installPackage(store: PackageStore, spec: CatalogPackage): Promise<boolean> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await store.get(SYSTEM_NAMESPACE, spec.name);
    const want: Package = {
      namespace: SYSTEM_NAMESPACE,
      name: spec.name,
      version: existing ? existing.pkg.version : "0.0.1",
      publish: true,
      parameters: [],
      annotations: spec.annotations,
      updated: Date.now(),
    };
    if (existing && sameContent(existing.pkg, want, ["publish", "parameters", "annotations", "binding"])) return false;
    const next = existing ? { ...want, version: nextPatch(existing.pkg.version) } : want;
    if (existing ? await store.replace(next, existing.revision) : await store.create(next)) return true;
  }
  throw new Error(`could not install package /${SYSTEM_NAMESPACE}/${spec.name}: it kept changing`);
}

/** Stores the action when it is missing or differs; returns what was stored, if anything. */
async function installAction(store: ActionStore, pkg: CatalogPackage, spec: CatalogAction): Promise<Action | undefined> {
  const name = `${pkg.name}/${spec.name}`;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await store.get(SYSTEM_NAMESPACE, name);
    const want: Action = {
      namespace: SYSTEM_NAMESPACE,
      name,
      version: "0.0.1",
      exec: { kind: spec.exec.kind, code: spec.exec.code, binary: false },
      limits: ActionLimits.parse({ timeout: 10_000, memory: 64 }),
      parameters: [],
      annotations: [...spec.annotations, { key: "exec", value: spec.exec.kind }],
      publish: false,
      // The runner's image-store hash of JS code (it names the image; informative here).
      codeHash: spec.exec.kind.startsWith("builtin:") ? "" : createHash("sha256").update(`nodejs\0\0${spec.exec.code}`).digest("hex"),
      updated: Date.now(),
    };
    if (existing && sameContent(existing.action, want, ["exec", "limits", "parameters", "annotations", "publish"])) return undefined;
    const next = existing ? { ...want, version: nextPatch(existing.action.version) } : want;
    if (existing ? await store.replace(next, existing.revision) : await store.create(next)) return next;
  }
  throw new Error(`could not install action /${SYSTEM_NAMESPACE}/${name}: it kept changing`);
}

function sameContent<T extends object>(a: T, b: T, fields: Array<keyof T>): boolean {
  return fields.every((f) => JSON.stringify(a[f]) === JSON.stringify(b[f]));
}

function nextPatch(version: string): string {
  const [major = 0, minor = 0, patch = 0] = version.split(".").map(Number);
  return `${major}.${minor}.${patch + 1}`;
}

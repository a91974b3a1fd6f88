// Packages in PACKAGES_BUCKET, with the same conditional writes as actions (a lost race is a 409).
import type { KV } from "@nats-io/kv";
import { Package, packageKey, subjectToken } from "../contracts/index.ts";
import { ifUnchanged } from "./action-store.ts";

export interface StoredPackage {
  pkg: Package;
  revision: number;
}

export class PackageStore {
  constructor(private readonly kv: KV) {}

  async get(namespace: string, name: string): Promise<StoredPackage | undefined> {
    const entry = await this.kv.get(packageKey(namespace, name));
    if (!entry || entry.operation !== "PUT") return undefined;
    return { pkg: Package.parse(entry.json()), revision: entry.revision };
  }

  async list(namespace: string): Promise<Package[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys(`${subjectToken(namespace)}.*`)) keys.push(key);
    const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
    return entries.flatMap((entry) => (entry?.operation === "PUT" ? [Package.parse(entry.json())] : []));
  }

  /**
   * Every namespace's published packages (`GET …/packages?public=true`). A scan of the whole
   * bucket: packages are few next to actions and activations, and only this listing needs it.
   */
  async listPublished(): Promise<Package[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys("*.*")) keys.push(key);
    const entries = await Promise.all(keys.map((key) => this.kv.get(key)));
    return entries.flatMap((entry) => {
      if (entry?.operation !== "PUT") return [];
      const pkg = Package.parse(entry.json());
      return pkg.publish ? [pkg] : [];
    });
  }

  async create(pkg: Package): Promise<boolean> {
    return ifUnchanged(() => this.kv.create(packageKey(pkg.namespace, pkg.name), JSON.stringify(pkg)));
  }

  async replace(pkg: Package, revision: number): Promise<boolean> {
    return ifUnchanged(() => this.kv.update(packageKey(pkg.namespace, pkg.name), JSON.stringify(pkg), revision));
  }

  async remove(pkg: Package, revision: number): Promise<boolean> {
    return ifUnchanged(() => this.kv.delete(packageKey(pkg.namespace, pkg.name), { previousSeq: revision }));
  }
}

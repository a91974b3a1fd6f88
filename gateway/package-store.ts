// Packages in PACKAGES_BUCKET, with the same conditional writes as actions (a lost race is a 409).
import type { KV } from "@nats-io/kv";
import { Package, packageKey, subjectToken } from "../contracts/index.ts";
import { KvEntities } from "./kv-entities.ts";

export interface StoredPackage {
  pkg: Package;
  revision: number;
}

export class PackageStore {
  private readonly entities: KvEntities<Package>;
  constructor(kv: KV) {
    this.entities = new KvEntities(kv, Package, packageKey);
  }

  async get(namespace: string, name: string): Promise<StoredPackage | undefined> {
    const stored = await this.entities.get(namespace, name);
    return stored && { pkg: stored.value, revision: stored.revision };
  }

  list(namespace: string): Promise<Package[]> {
    return this.entities.list(`${subjectToken(namespace)}.*`);
  }

  /**
   * Every namespace's published packages (`GET …/packages?public=true`). A scan of the whole
   * bucket: packages are few next to actions and activations, and only this listing needs it.
   */
  async listPublished(): Promise<Package[]> {
    return (await this.entities.list("*.*")).filter((pkg) => pkg.publish);
  }

  create(pkg: Package): Promise<boolean> {
    return this.entities.create(pkg.namespace, pkg.name, pkg);
  }

  replace(pkg: Package, revision: number): Promise<boolean> {
    return this.entities.replace(pkg.namespace, pkg.name, pkg, revision);
  }

  remove(pkg: Package, revision: number): Promise<boolean> {
    return this.entities.remove(pkg.namespace, pkg.name, revision);
  }
}

// /api/v1/namespaces/{ns}/packages: create, update, read, list and delete packages and bindings.
// A package groups actions (`/actions/{pkg}/{name}`) and gives them default parameters; a binding
// stands for another package, with its own parameters on top of that package's.
import { Hono } from "hono";
import { z } from "zod";
import { EntityName, PackagePut, type Package } from "../../contracts/index.ts";
import type { ActionStore } from "../action-store.ts";
import { limitBody, readJsonBody } from "../body.ts";
import type { GatewayEnv } from "../env.ts";
import { nextVersion } from "../entity-version.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import type { PackageStore } from "../package-store.ts";
import { flag } from "../query.ts";
import { isShared } from "../sharing.ts";

export interface PackageRoutesDeps {
  actions: ActionStore;
  packages: PackageStore;
}

const DEFAULT_PAGE = 30;
const ListQuery = z.object({
  limit: z.coerce.number().int().min(0).max(200).default(0).transform((n) => n || DEFAULT_PAGE),
  skip: z.coerce.number().int().min(0).default(0),
  public: flag,
});
const PutQuery = z.object({ overwrite: flag });

/** OpenWhisk's shape: `binding` is `{}` for a plain package. */
function packageView(pkg: Package, actions?: Array<{ name: string; version: string; annotations: unknown[] }>) {
  return {
    namespace: pkg.namespace,
    name: pkg.name,
    version: pkg.version,
    publish: pkg.publish,
    parameters: pkg.parameters,
    annotations: pkg.annotations,
    binding: pkg.binding ?? {},
    ...(actions && { actions }),
    updated: pkg.updated,
  };
}

export function packageRoutes(deps: PackageRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  /** The actions stored in a package, as OpenWhisk lists them in the package. */
  const actionsIn = async (namespace: string, pkg: string) =>
    (await deps.actions.list(namespace))
      .filter((a) => a.name.startsWith(`${pkg}/`))
      .map((a) => ({ name: a.name.slice(pkg.length + 1), version: a.version, annotations: a.annotations }));

  app.get("/", async (c) => {
    const { limit, skip, public: withShared } = validate(ListQuery, c.req.query(), "query");
    const namespace = c.get("namespace");
    const owner = c.get("pathNamespace");
    if (owner !== namespace) {
      // Another namespace's listing shows what it shares and nothing else, as OpenWhisk's does:
      // its published packages (bindings are never readable by others, so they are left out).
      const shared = (await deps.packages.list(owner)).filter(isShared);
      shared.sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
      return c.json(shared.slice(skip, skip + limit).map((p) => packageView(p)));
    }
    const packages = await deps.packages.list(namespace);
    // `public=true` adds what other namespaces share, as OpenWhisk's listing of public packages.
    if (withShared) packages.push(...(await deps.packages.listPublished()).filter((p) => p.namespace !== namespace));
    packages.sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
    return c.json(packages.slice(skip, skip + limit).map((p) => packageView(p)));
  });

  app.get("/:name", async (c) => {
    const namespace = c.get("pathNamespace");
    const foreign = namespace !== c.get("namespace");
    const stored = await deps.packages.get(namespace, validate(EntityName, c.req.param("name"), "name"));
    // Another namespace's private package is refused exactly like a missing one, as OpenWhisk
    // does (403 to non-owners), so its name is not revealed.
    if (foreign && !(stored && isShared(stored.pkg))) throw new ApiError(403, Messages.forbidden);
    if (!stored) throw new ApiError(404, Messages.notFound);
    const { pkg } = stored;
    // A binding shows the actions of the package it stands for.
    const source = pkg.binding ?? { namespace, name: pkg.name };
    return c.json(packageView(pkg, await actionsIn(source.namespace, source.name)));
  });

  app.put("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = validate(EntityName, c.req.param("name"), "name");
    const { overwrite } = validate(PutQuery, c.req.query(), "query");
    const put = validate(PackagePut, await readJsonBody(c, { whenEmpty: {} }));
    const existing = await deps.packages.get(namespace, name);
    if (existing && !overwrite) throw new ApiError(409, Messages.exists);

    const binding = put.binding && "name" in put.binding ? { namespace: put.binding.namespace as string, name: put.binding.name as string } : undefined;
    if (binding) {
      const bound = await deps.packages.get(binding.namespace === "_" ? namespace : binding.namespace, binding.name);
      if (!bound || (bound.pkg.namespace !== namespace && !bound.pkg.publish)) {
        throw new ApiError(400, `binding: package /${binding.namespace}/${binding.name} does not exist or is not shared`);
      }
      if (bound.pkg.binding) throw new ApiError(400, "binding: cannot bind to another binding");
      if (bound.pkg.namespace === namespace && bound.pkg.name === name) throw new ApiError(400, "binding: a package cannot bind to itself");
      binding.namespace = bound.pkg.namespace;
    }
    if (existing && Boolean(binding) !== Boolean(existing.pkg.binding) && put.binding !== undefined) {
      throw new ApiError(400, "binding: a package cannot be turned into a binding or back");
    }

    const pkg: Package = {
      namespace,
      name,
      version: nextVersion(existing?.pkg.version),
      publish: put.publish ?? existing?.pkg.publish ?? false,
      parameters: put.parameters ?? existing?.pkg.parameters ?? [],
      annotations: put.annotations ?? existing?.pkg.annotations ?? [],
      ...(existing?.pkg.binding && { binding: existing.pkg.binding }),
      ...(binding && { binding: { namespace: binding.namespace, name: binding.name } }),
      updated: Date.now(),
    };
    const stored = existing ? await deps.packages.replace(pkg, existing.revision) : await deps.packages.create(pkg);
    if (!stored) throw new ApiError(409, existing ? Messages.concurrentModification : Messages.exists);
    return c.json(packageView(pkg));
  });

  app.delete("/:name", async (c) => {
    const namespace = c.get("namespace");
    const stored = await deps.packages.get(namespace, validate(EntityName, c.req.param("name"), "name"));
    if (!stored) throw new ApiError(404, Messages.notFound);
    // OpenWhisk refuses to orphan actions: delete them first.
    const contained = stored.pkg.binding ? 0 : (await actionsIn(namespace, stored.pkg.name)).length;
    if (contained > 0) throw new ApiError(409, `Package not empty (contains ${contained} entities)`);
    if (!(await deps.packages.remove(stored.pkg, stored.revision))) throw new ApiError(409, Messages.concurrentModification);
    return c.json(packageView(stored.pkg));
  });

  return app;
}

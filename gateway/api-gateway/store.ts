// API gateway routes (`wsk api create /base /path get action`): one API per namespace and base
// path in KV bucket ROUTES_BUCKET, holding its operations (a method and a path template under the
// base path, mapped to a web action of the namespace). Every gateway keeps all of them in memory,
// fed by a KV watch, so a route created or deleted through any gateway is served by every other
// one within the watch's delivery time (milliseconds) and requests to routes cost no NATS lookup.
import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { z } from "zod";
import { EntityName, namespaceKeyFilter, routeApiKey } from "../../contracts/index.ts";
import { KvEntities } from "../kv-entities.ts";
import { followBucket } from "../kv-watch.ts";
import { EXTENSIONS } from "../web/respond.ts";

export const ROUTE_METHODS = ["get", "post", "put", "delete", "patch", "head", "options"] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];

/** Bounds that keep one API within one KV value and a namespace's routes within memory. */
export const MAX_OPERATIONS_PER_API = 200;
export const MAX_APIS_PER_NAMESPACE = 100;

/** A literal path segment: what a URL path may hold unencoded, less `{}`. */
const LITERAL = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/;
/** A path parameter segment: `{name}`. */
const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** `/`, or `/a/b` with literal segments. */
export const BasePath = z
  .string()
  .max(256)
  .transform((p) => (p.length > 1 ? p.replace(/\/+$/, "") : p))
  .refine((p) => p === "/" || (p.startsWith("/") && p.slice(1).split("/").every((s) => LITERAL.test(s))), {
    message: "must be / or start with / and hold only URL path characters between the slashes, e.g. /club",
  });

/** `/books` or `/books/{id}`: literal segments and `{name}` parameters; a missing leading / is added. */
export const RelPath = z
  .string()
  .min(1)
  .max(512)
  .transform((p) => {
    const withSlash = p.startsWith("/") ? p : `/${p}`;
    return withSlash.length > 1 ? withSlash.replace(/\/+$/, "") : withSlash;
  })
  .refine((p) => p === "/" || p.slice(1).split("/").every((s) => LITERAL.test(s) || PARAM.test(s)), {
    message: "must be a path such as /books or /books/{id}: URL path characters, and {name} for a path parameter",
  });

export const RouteOperation = z.object({
  path: z.string(),
  method: z.enum(ROUTE_METHODS),
  action: z.object({ namespace: EntityName, pkg: EntityName.optional(), name: EntityName }),
  /** The web action extension the route answers with (`--response-type`). */
  responseType: z.enum(EXTENSIONS),
  /** Sent to the action as X-Require-Whisk-Auth (`--secure-key`), for `require-whisk-auth: "<key>"`. */
  secureKey: z.string().max(1024).optional(),
});
export type RouteOperation = z.infer<typeof RouteOperation>;

export const RouteApi = z.object({
  namespace: EntityName,
  basePath: z.string(),
  /** `-n "Book Club"`; the base path when none was given. */
  name: z.string(),
  operations: z.array(RouteOperation).max(MAX_OPERATIONS_PER_API),
  created: z.number(),
  updated: z.number(),
});
export type RouteApi = z.infer<typeof RouteApi>;

/** The parameters of a path template, in order: `/books/{id}` → ["id"]. */
export const pathParams = (template: string): string[] =>
  template.split("/").flatMap((s) => {
    const m = PARAM.exec(s);
    return m ? [m[1]!] : [];
  });

export type RouteMatch =
  | { kind: "found"; api: RouteApi; operation: RouteOperation; params: Record<string, string>; relPath: string }
  | { kind: "wrong-method"; allowed: string[] }
  | { kind: "none" };

/** KV access for the management endpoints, and the watched table the route server reads. */
export class RouteStore {
  private readonly entities: KvEntities<RouteApi>;
  /** namespace → base path → API, as last seen; with the revision each key was last applied at. */
  private readonly table = new Map<string, Map<string, RouteApi>>();
  private readonly applied = new Map<string, number>();
  private stopWatch?: () => void;

  constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
  ) {
    this.entities = new KvEntities(kv, RouteApi, routeApiKey);
  }

  /** Starts the watch; resolves once the current routes are loaded. */
  async start(): Promise<void> {
    const follower = await followBucket(this.kv, (entry) => this.applyEntry(entry), this.logger, "API routes");
    this.stopWatch = () => void follower.stop();
    // The watch gives no sign of having delivered the current values; read them so routes are
    // served from the first request on.
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) keys.push(key);
    for (const key of keys) {
      const entry = await this.kv.get(key);
      if (entry) this.applyEntry(entry);
    }
  }

  close(): void {
    this.stopWatch?.();
  }

  get(namespace: string, basePath: string) {
    return this.entities.get(namespace, basePath);
  }

  /** The namespace's APIs as stored (not the watched copy: a management read sees its own writes). */
  async list(namespace: string): Promise<RouteApi[]> {
    const apis = await this.entities.list(namespaceKeyFilter(namespace));
    return apis.sort((a, b) => a.basePath.localeCompare(b.basePath));
  }

  /** Writes `api` if unchanged since `revision` (absent: if new); false when another write won. */
  async write(api: RouteApi, revision?: number): Promise<boolean> {
    const ok = revision === undefined
      ? await this.entities.create(api.namespace, api.basePath, api)
      : await this.entities.replace(api.namespace, api.basePath, api, revision);
    // Applied here at once too, so this gateway serves its own change before the watch brings it.
    if (ok) await this.refresh(api.namespace, api.basePath);
    return ok;
  }

  async remove(namespace: string, basePath: string, revision: number): Promise<boolean> {
    const ok = await this.entities.remove(namespace, basePath, revision);
    if (ok) await this.refresh(namespace, basePath);
    return ok;
  }

  private async refresh(namespace: string, basePath: string): Promise<void> {
    const entry = await this.kv.get(routeApiKey(namespace, basePath));
    if (entry) this.applyEntry(entry);
  }

  private applyEntry(entry: KvEntry): void {
    // The watch and the loads above may deliver one key in either order: the newest wins.
    if ((this.applied.get(entry.key) ?? 0) >= entry.revision) return;
    this.applied.set(entry.key, entry.revision);
    if (entry.operation !== "PUT") {
      for (const apis of this.table.values()) {
        for (const [basePath, api] of apis) if (routeApiKey(api.namespace, basePath) === entry.key) apis.delete(basePath);
      }
      return;
    }
    const parsed = RouteApi.safeParse(entry.json());
    if (!parsed.success) {
      this.logger.warn({ key: entry.key }, "an API route record does not parse; it is not served");
      return;
    }
    const api = parsed.data;
    let apis = this.table.get(api.namespace);
    if (!apis) this.table.set(api.namespace, (apis = new Map()));
    apis.set(api.basePath, api);
  }

  /**
   * The operation serving `method path` (the URL path after `/api/{namespace}`) in the namespace:
   * the longest base path that prefixes the path, then an operation whose template matches the
   * rest, literal segments preferred to parameters.
   */
  match(namespace: string, path: string, method: string): RouteMatch {
    const apis = this.table.get(namespace);
    if (!apis) return { kind: "none" };
    const segments = path.split("/").filter((s) => s !== "").map(decodeSegment);
    const candidates = [...apis.values()].sort((a, b) => b.basePath.length - a.basePath.length);
    for (const api of candidates) {
      const base = api.basePath === "/" ? [] : api.basePath.slice(1).split("/");
      if (!base.every((s, i) => segments[i] === s)) continue;
      const rest = segments.slice(base.length);
      const matching = api.operations
        .map((operation) => ({ operation, params: matchTemplate(operation.path, rest) }))
        .filter((m): m is { operation: RouteOperation; params: Record<string, string> } => m.params !== undefined)
        .sort((a, b) => Object.keys(a.params).length - Object.keys(b.params).length);
      if (matching.length === 0) continue;
      const lower = method.toLowerCase();
      const hit = matching.find((m) => m.operation.method === lower);
      if (hit) return { kind: "found", api, operation: hit.operation, params: hit.params, relPath: `/${rest.join("/")}` };
      return { kind: "wrong-method", allowed: [...new Set(matching.map((m) => m.operation.method.toUpperCase()))] };
    }
    return { kind: "none" };
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The path parameters when `segments` (decoded) fit `template`, else undefined. */
function matchTemplate(template: string, segments: string[]): Record<string, string> | undefined {
  const parts = template === "/" ? [] : template.slice(1).split("/");
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of parts.entries()) {
    const param = PARAM.exec(part);
    if (param) params[param[1]!] = segments[i]!;
    else if (part !== segments[i]) return undefined;
  }
  return params;
}

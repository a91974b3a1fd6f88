// A small client of Vespid's OpenWhisk REST API: Basic auth with `uuid:key`, JSON in and out,
// errors turned into CliErrors with a hint. Paths are relative to `{apihost}/api/v1/`.
import { ApiError, CliError, hintForStatus } from "./errors.ts";
import type { Resolved } from "./config.ts";

/** How long one request may take; a blocking invoke waits up to the gateway's own 60 s first. */
const REQUEST_TIMEOUT_MS = 330_000;

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** The entity noun for hints (`action` → "see what exists: vespid action list"). */
  entity?: string;
  /** Statuses returned as `{status, body}` instead of thrown. */
  accept?: number[];
}

export interface Response {
  status: number;
  body: any;
}

export class Client {
  readonly apihost: string;
  readonly auth: string;
  readonly namespace: string;

  constructor(config: Resolved) {
    if (!config.apihost) throw new CliError("no API host configured", 1, "set it: vespid property set --apihost http://127.0.0.1:8989 (or start a platform here with npm start)");
    if (!config.auth) throw new CliError("no API key configured", 1, "set it: vespid property set --auth uuid:key (npm start prints the key)");
    this.apihost = config.apihost;
    this.auth = config.auth;
    this.namespace = config.namespace;
  }

  /** `actions/x` → `namespaces/{ns}/actions/x`, the namespace from the config. */
  ns(path: string, namespace = this.namespace): string {
    return `namespaces/${encodeURIComponent(namespace)}/${path}`;
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = new URL(`${this.apihost}/api/v1/${path}`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: `Basic ${Buffer.from(this.auth).toString("base64")}`, accept: "application/json" };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] = "application/json";
    }
    let res: globalThis.Response;
    try {
      res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      throw connectionError(this.apihost, err);
    }
    const text = await res.text();
    let parsed: unknown = text;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: kept as text for the message
      }
    }
    if (res.ok || options.accept?.includes(res.status)) return { status: res.status, body: parsed };
    const message = typeof parsed === "object" && parsed && "error" in parsed ? String((parsed as { error: unknown }).error) : text || res.statusText;
    throw new ApiError(res.status, `${message} (HTTP ${res.status})`, parsed, hintForStatus(res.status, options.entity));
  }

  get = (path: string, options?: RequestOptions) => this.request("GET", path, options);
  put = (path: string, options?: RequestOptions) => this.request("PUT", path, options);
  post = (path: string, options?: RequestOptions) => this.request("POST", path, options);
  delete = (path: string, options?: RequestOptions) => this.request("DELETE", path, options);
}

function connectionError(apihost: string, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code === "ECONNREFUSED") return new CliError(`cannot connect to ${apihost}: connection refused`, 1, "is the platform running? start it with npm start, or check the host: vespid property get");
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new CliError(`cannot resolve the host of ${apihost}`, 1, "check the host: vespid property get");
  if ((err as Error).name === "TimeoutError") return new CliError(`${apihost} did not answer in time`, 1, "is the platform overloaded? retry, or check vespid activation list");
  if (code && /CERT|SSL|TLS/.test(code)) return new CliError(`TLS with ${apihost} failed: ${cause?.message ?? code}`, 1, "for a self-signed certificate add -i (--insecure)");
  return new CliError(`request to ${apihost} failed: ${cause?.message ?? (err as Error).message}`, 1, "check the host: vespid property get");
}

/** An entity name as wsk takes it: `name`, `pkg/name`, `/ns/name` or `/ns/pkg/name`. */
export interface EntityName {
  namespace?: string;
  /** The path under the collection, e.g. `pkg/name` (each part URL-encoded). */
  path: string;
  /** `/ns/pkg/name` with `_` when no namespace was given. */
  qualified: string;
}

export function parseName(name: string, defaultNamespace = "_"): EntityName {
  const parts = name.split("/");
  let namespace: string | undefined;
  let rest: string[];
  if (name.startsWith("/")) {
    namespace = parts[1];
    rest = parts.slice(2);
  } else rest = parts;
  if (!namespace && name.startsWith("/")) throw new CliError(`"${name}" is not a name: expected name, package/name or /namespace/[package/]name`, 2);
  if (rest.length < 1 || rest.length > 2 || rest.some((p) => p === "")) {
    throw new CliError(`"${name}" is not a name: expected name, package/name or /namespace/[package/]name`, 2);
  }
  return {
    namespace,
    path: rest.map(encodeURIComponent).join("/"),
    qualified: `/${namespace ?? defaultNamespace}/${rest.join("/")}`,
  };
}

/** `{collection}/{path}` in the name's own namespace, or the configured one. */
export function entityPath(client: Client, collection: string, name: EntityName): string {
  return client.ns(`${collection}/${name.path}`, name.namespace ?? client.namespace);
}

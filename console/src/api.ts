// The console talks to the same REST API as every other client, with the namespace key as Basic
// auth. credentials: "omit" keeps the browser from answering a 401 with its own login dialog.

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The gateway's request id (the error body's `code`), for looking the request up in its logs. */
    readonly requestId?: string,
  ) {
    super(message);
  }
}

export interface ApiResponse {
  status: number;
  body: any;
}

/** `uuid:key`: two parts, the way `vespid admin` prints keys. */
export const KEY_PATTERN = /^[^:\s]+:[^:\s]+$/;

export class Api {
  constructor(readonly key: string) {}

  /** A request that answers whatever the status is (invocations read 502's activation record). */
  async request(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const headers: Record<string, string> = { authorization: `Basic ${btoa(this.key)}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new ApiFailure(0, `the gateway did not answer (${(err as Error).message}); is the platform running?`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    if (text && res.headers.get("content-type")?.includes("json")) {
      try {
        parsed = JSON.parse(text);
      } catch {
        // kept as text: shown as such
      }
    }
    return { status: res.status, body: parsed };
  }

  /** A request that must succeed (2xx); anything else throws ApiFailure with the API's message. */
  async call(method: string, path: string, body?: unknown): Promise<any> {
    const res = await this.request(method, path, body);
    if (res.status >= 200 && res.status < 300) return res.body;
    throw failure(res);
  }

  get = (path: string): Promise<any> => this.call("GET", path);
}

export function failure(res: ApiResponse): ApiFailure {
  const body = res.body as { error?: unknown; code?: unknown } | string;
  const message = typeof body === "object" && body && typeof body.error === "string" ? body.error : typeof body === "string" && body ? body.slice(0, 300) : "no message";
  const code = typeof body === "object" && body && typeof body.code === "string" ? body.code : undefined;
  return new ApiFailure(res.status, `${res.status}: ${message}`, code);
}

/** `/api/v1/namespaces/_/<collection>/<name…>`, each part of `name` (pkg/action) encoded. */
export function entityPath(collection: string, name?: string, query?: Record<string, string | number | boolean | undefined>): string {
  let path = `/api/v1/namespaces/_/${collection}`;
  if (name) path += "/" + name.split("/").map(encodeURIComponent).join("/");
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

const STORAGE_KEY = "vespid.key";

/** The key lives in sessionStorage: gone when the tab closes, never sent anywhere but the API. */
export const session = {
  load: (): string | null => sessionStorage.getItem(STORAGE_KEY),
  save: (key: string): void => sessionStorage.setItem(STORAGE_KEY, key),
  clear: (): void => sessionStorage.removeItem(STORAGE_KEY),
};

// The web console: its page at `/` and its bundled script and stylesheet at /console/<name-hash>.
// Built in memory on the first request (console/bundle.ts) and kept; no path from the request ever
// reaches the file system. Every response carries a strict Content-Security-Policy: the page
// loads only its own files and talks only to this origin's API.
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { Hono, type Context } from "hono";
import { bundleConsole, type ConsoleBundle, type ConsoleFile } from "../../console/bundle.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages } from "../errors.ts";

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
} as const;

interface Served extends ConsoleFile {
  gzipped: Uint8Array<ArrayBuffer>;
}

const compress = promisify(gzip);

async function load(): Promise<{ page: Served; assets: Map<string, Served> }> {
  const bundle: ConsoleBundle = await bundleConsole();
  const withGzip = async (f: ConsoleFile): Promise<Served> => ({ ...f, gzipped: new Uint8Array(await compress(f.body)) });
  const assets = new Map<string, Served>();
  for (const [name, f] of bundle.assets) assets.set(name, await withGzip(f));
  return { page: await withGzip(bundle.page), assets };
}

function send(c: Context<GatewayEnv>, f: Served, cacheControl: string): Response {
  const headers: Record<string, string> = { ...SECURITY_HEADERS, "content-type": f.type, etag: f.etag, "cache-control": cacheControl, vary: "accept-encoding" };
  if (c.req.header("if-none-match") === f.etag) return c.body(null, 304, headers);
  // 600 kB of script shrinks to about a quarter.
  if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) return c.body(f.gzipped, 200, { ...headers, "content-encoding": "gzip" });
  return c.body(f.body, 200, headers);
}

export function consoleRoutes(): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  let built: ReturnType<typeof load> | undefined;
  // One build shared by all requests; a failed build is retried by the next request.
  const bundle = () => {
    if (!built) {
      built = load();
      built.catch(() => (built = undefined));
    }
    return built;
  };

  // The page is revalidated each time (cheap: a 304), so a restarted gateway's new assets are seen.
  app.get("/", async (c) => send(c, (await bundle()).page, "no-cache"));
  app.get("/console/:file", async (c) => {
    const asset = (await bundle()).assets.get(c.req.param("file"));
    if (!asset) throw new ApiError(404, Messages.notFound);
    return send(c, asset, "public, max-age=31536000, immutable");
  });
  return app;
}

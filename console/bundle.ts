// Builds the console (src/main.ts and its CSS, with CodeMirror and uPlot from node_modules) into
// memory with esbuild: no build step, no files written, nothing fetched from a CDN. The gateway
// builds it once, on the first request for the console, and serves it from memory.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const CONSOLE_DIR = dirname(fileURLToPath(import.meta.url));

export interface ConsoleFile {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  /** A strong ETag from the content's hash. */
  etag: string;
}

export interface ConsoleBundle {
  /** index.html, naming the hashed script and stylesheet. */
  page: ConsoleFile;
  /** By file name (`main-ABCD1234.js`): the only files served under /console/. */
  assets: Map<string, ConsoleFile>;
}

const TYPES: Record<string, string> = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

const file = (body: Uint8Array<ArrayBuffer>, type: string): ConsoleFile => ({ body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` });

export async function bundleConsole(): Promise<ConsoleBundle> {
  // Imported here, not at the top: a gateway that never serves the console never loads esbuild.
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [join(CONSOLE_DIR, "src/main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome110", "firefox110", "safari16"],
    minify: true,
    // The hash in the name lets the assets be cached for good: a new build has new names.
    entryNames: "[name]-[hash]",
    outdir: "/console",
    write: false,
    logLevel: "silent",
    legalComments: "none",
  });
  const assets = new Map<string, ConsoleFile>();
  let script: string | undefined;
  let style: string | undefined;
  for (const out of result.outputFiles) {
    const name = basename(out.path);
    const ext = name.slice(name.lastIndexOf("."));
    const type = TYPES[ext];
    if (!type) continue;
    assets.set(name, file(new Uint8Array(out.contents), type));
    if (ext === ".js") script = name;
    else style = name;
  }
  if (!script || !style) throw new Error(`the console build produced no ${script ? "stylesheet" : "script"}`);
  const template = await readFile(join(CONSOLE_DIR, "index.html"), "utf8");
  const html = template.replace("{{script}}", `/console/${script}`).replace("{{style}}", `/console/${style}`);
  return { page: file(new TextEncoder().encode(html), "text/html; charset=utf-8"), assets };
}

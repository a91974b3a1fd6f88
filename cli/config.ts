// Where the CLI sends its requests and with which key. Sources, strongest first: the command's
// flags (--apihost, -u/--auth), OpenWhisk's environment variables (__OW_API_HOST, __OW_API_KEY,
// __OW_NAMESPACE), the user's properties file, and last a platform started with `npm start` in
// the current directory (its `.vespid/auth.key`), so that a fresh checkout works with no setup.
// The properties file has `wsk`'s format (KEY=value lines: APIHOST, AUTH, NAMESPACE), so a
// `~/.wskprops` can be copied over; it is a separate file so that pointing `vespid` at Vespid never
// changes where a real `wsk` points.
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { DEFAULT_DATA_DIR, DEFAULT_PORT } from "../infra/config.ts";

/** The properties `property set|get|unset` handle, by flag name, with their key in the file. */
export const PROPERTIES = { apihost: "APIHOST", auth: "AUTH", namespace: "NAMESPACE" } as const;
export type Property = keyof typeof PROPERTIES;

/** Where each effective value came from, for `property get`. */
export type Source = "flag" | "environment" | "properties file" | "local platform" | "default";

export interface Resolved {
  apihost?: string;
  auth?: string;
  namespace: string;
  insecure: boolean;
  sources: Partial<Record<Property, Source>>;
  /** The properties file read (it may not exist). */
  file: string;
}

export interface GlobalFlags {
  apihost?: string;
  auth?: string;
  insecure?: boolean;
}

/** `$VESPID_CONFIG_FILE`, else `~/.vespidprops`. */
export function propertiesFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.VESPID_CONFIG_FILE ? resolve(env.VESPID_CONFIG_FILE) : join(env.HOME || homedir(), ".vespidprops");
}

/** KEY=value lines; blank lines and `#` comments skipped, unknown keys kept (wsk writes others). */
export function parseProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    if (eq <= 0) continue;
    props.set(trimmed.slice(0, eq).trim(), trimmed.slice(eq + 1).trim());
  }
  return props;
}

export async function readProperties(file: string): Promise<Map<string, string>> {
  try {
    return parseProperties(await readFile(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw err;
  }
}

/** Writes the file whole (aside, then renamed) with mode 0600: it holds a key. */
export async function writeProperties(file: string, props: Map<string, string>): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const text = [...props].map(([k, v]) => `${k}=${v}`).join("\n");
  await writeFile(`${file}.tmp`, text ? `${text}\n` : "", { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** The key and URL of a platform started with `npm start` from this directory, if there is one. */
function localPlatform(env: NodeJS.ProcessEnv): { apihost: string; auth: string } | undefined {
  const dataDir = env.VESPID_DATA_DIR || DEFAULT_DATA_DIR;
  let key: string;
  try {
    key = readFileSync(join(dataDir, "auth.key"), "utf8").trim();
  } catch {
    return undefined;
  }
  if (!key) return undefined;
  const port = env.VESPID_PORT && /^\d+$/.test(env.VESPID_PORT) ? env.VESPID_PORT : String(DEFAULT_PORT);
  return { apihost: `http://127.0.0.1:${port}`, auth: key };
}

export async function resolveConfig(flags: GlobalFlags, env: NodeJS.ProcessEnv = process.env): Promise<Resolved> {
  const file = propertiesFile(env);
  const props = await readProperties(file);
  const sources: Resolved["sources"] = {};
  const pick = (name: Property, flag: string | undefined, envName: string): string | undefined => {
    if (flag) return (sources[name] = "flag"), flag;
    if (env[envName]) return (sources[name] = "environment"), env[envName];
    const fromFile = props.get(PROPERTIES[name]);
    if (fromFile) return (sources[name] = "properties file"), fromFile;
    return undefined;
  };
  let apihost = pick("apihost", flags.apihost, "__OW_API_HOST");
  let auth = pick("auth", flags.auth, "__OW_API_KEY");
  let namespace = pick("namespace", undefined, "__OW_NAMESPACE");
  // The local platform fills in only when neither the host nor the key is set anywhere: its key
  // is no good for another host, nor its host for another key.
  if (!apihost && !auth) {
    const local = localPlatform(env);
    if (local) {
      apihost = local.apihost;
      auth = local.auth;
      sources.apihost = sources.auth = "local platform";
    }
  }
  if (!namespace) {
    namespace = "_";
    sources.namespace = "default";
  }
  return { apihost: apihost && normalizeHost(apihost), auth, namespace, insecure: flags.insecure ?? false, sources, file };
}

/**
 * wsk's rule for a host without a scheme is https; a loopback host gets http, since that is what
 * a local Vespid speaks.
 */
export function normalizeHost(host: string): string {
  const trimmed = host.replace(/\/+$/, "");
  if (/^https?:\/\//i.test(trimmed)) return trimmed;
  return /^(localhost|127\.|\[::1\])/.test(trimmed) ? `http://${trimmed}` : `https://${trimmed}`;
}

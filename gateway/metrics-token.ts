// The bearer token GET /metrics asks for: VESPID_METRICS_TOKEN, or else one made on first start
// and kept in `<dataDir>/metrics.token` (mode 0600, like auth.key), where a Prometheus server's
// `credentials_file` can point.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const METRICS_TOKEN_FILE = "metrics.token";

/** The metrics token and where it comes from (the file's path, or the environment variable). */
export async function ensureMetricsToken(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<{ token: string; source: string }> {
  const fromEnv = env.VESPID_METRICS_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: "VESPID_METRICS_TOKEN" };
  const file = join(dataDir, METRICS_TOKEN_FILE);
  const saved = await readFile(file, "utf8").then((s) => s.trim(), (err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return "";
    throw err;
  });
  if (saved) return { token: saved, source: file };
  const token = randomBytes(24).toString("base64url");
  await mkdir(dataDir, { recursive: true });
  // Written aside and renamed, so a crash never leaves a half-written token behind.
  await rm(`${file}.tmp`, { force: true });
  await writeFile(`${file}.tmp`, `${token}\n`, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
  return { token, source: file };
}

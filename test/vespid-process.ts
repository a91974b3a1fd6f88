// `vespid all` as a user runs it: a child process of bin/vespid.ts with its own data directory and
// a free port, stdout and stderr captured apart, for tests of what the process itself prints
// (test/logging.test.ts) and of the README run against it (test/readme.test.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const CHECKOUT = dirname(dirname(fileURLToPath(import.meta.url)));

export interface VespidProcess {
  /** Gateway base URL, e.g. http://127.0.0.1:41234. */
  url: string;
  port: number;
  /** `uuid:key` of namespace guest, read from `<dataDir>/auth.key`. */
  apiKey: string;
  dataDir: string;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** SIGTERM, then SIGKILL after 20 s; resolves with the exit code. Removes the data directory. */
  stop(): Promise<number | null>;
}

/** A TCP port nobody listens on right now (the gateway takes it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `vespid all` and waits (up to `readyMs`) for its banner on stdout. */
export async function startVespidProcess(env: Record<string, string> = {}, readyMs = 120_000): Promise<VespidProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), "vespid-proc-"));
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ["--import=tsx", join(CHECKOUT, "bin/vespid.ts"), "all"], {
    cwd: CHECKOUT,
    env: { ...process.env, VESPID_DATA_DIR: dataDir, VESPID_PORT: String(port), VESPID_RUNNER_CAPACITY: "2", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const code = await exited;
      clearTimeout(killer);
      await rm(dataDir, { recursive: true, force: true });
      return code;
    }
    await rm(dataDir, { recursive: true, force: true });
    return child.exitCode;
  };

  const deadline = Date.now() + readyMs;
  while (!out.includes("Stop with Ctrl-C.")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`vespid all did not start (exit ${child.exitCode}); stdout:\n${out}\nstderr:\n${err.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const apiKey = (await readFile(join(dataDir, "auth.key"), "utf8")).trim();
  return { url: `http://127.0.0.1:${port}`, port, apiKey, dataDir, stdout: () => out, stderr: () => err, stop };
}

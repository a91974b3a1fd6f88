// The embedded nats-server: `vespid all` and the tests run their own JetStream-enabled server as a
// child process, so a single command brings the whole platform up.
import { execFile, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, readFile, rm, stat, writeFile, open } from "node:fs/promises";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { MIN_NATS_SERVER_VERSION, isVersionAtLeast } from "./version.ts";

/** How long a starting server may take to listen (ms). JetStream recovery of a big store is the slow part. */
export const DEFAULT_START_TIMEOUT_MS = 30_000;
/** How long stop() waits after SIGTERM before SIGKILL (ms). */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Largest message the embedded server accepts (bytes): action code may be up to 4 MiB, plus its JSON record. */
export const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024;
/** nats-server's own "pick a free port" value for -p. */
const RANDOM_PORT = -1;

export interface LocalNats {
  /** Client URL, e.g. nats://127.0.0.1:4222. */
  url: string;
  /** Resolves when the server process has ended, for whatever reason (exit code, or null if killed). */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it does not end in time. Safe to call twice. */
  stop(): Promise<void>;
}

export interface LocalNatsOptions {
  /** Holds the JetStream store (`<dataDir>/jetstream`), the config and `nats-server.log`. */
  dataDir: string;
  /** Client port; 0 or absent picks a free one, and so does a busy one. */
  port?: number;
  /** nats-server binary; found with findNatsServer(dataDir) when absent. */
  natsServer?: string;
  startTimeoutMs?: number;
}

/** Where `npm run setup` puts nats-server when VESPID_DATA_DIR is not set. */
const SETUP_DEFAULT_BIN_DIR = fileURLToPath(new URL("../.vespid/bin/", import.meta.url));

/**
 * The nats-server to run: the one on PATH if it is recent enough, else the one `npm run setup`
 * fetched into `<dataDir>/bin` (or into the default data directory, for a --data-dir given later).
 */
export async function findNatsServer(dataDir: string, searchPath = process.env.PATH ?? "", setupBinDir = SETUP_DEFAULT_BIN_DIR): Promise<string> {
  const dirs = [...searchPath.split(delimiter).filter(Boolean), join(dataDir, "bin"), setupBinDir];
  const tooOld: string[] = [];
  for (const path of new Set(dirs.map((dir) => join(dir, "nats-server")))) {
    if (!(await isExecutable(path))) continue;
    const version = await natsServerVersion(path);
    if (version && isVersionAtLeast(version, MIN_NATS_SERVER_VERSION)) return path;
    tooOld.push(`${path} is ${version ?? "of unknown version"}`);
  }
  throw new Error(
    `no nats-server ≥ ${MIN_NATS_SERVER_VERSION} found${tooOld.length ? ` (${tooOld.join(", ")})` : ""}: ` +
      `run \`npm run setup\` to fetch one (into $VESPID_DATA_DIR/bin, default ./.vespid/bin)`,
  );
}

/** The x.y.z a nats-server binary reports, or undefined if it does not run. */
export async function natsServerVersion(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await promisify(execFile)(binary, ["--version"], { timeout: 5_000 });
    return /\d+\.\d+\.\d+\S*/.exec(stdout)?.[0];
  } catch {
    return undefined;
  }
}

export async function startLocalNats(opts: LocalNatsOptions): Promise<LocalNats> {
  const { dataDir } = opts;
  const binary = opts.natsServer ?? (await findNatsServer(dataDir));
  await mkdir(dataDir, { recursive: true });
  const logFile = join(dataDir, "nats-server.log");
  const configFile = join(dataDir, "nats-server.conf");
  // max_payload has no command-line flag; everything else is passed as flags below.
  await writeFile(configFile, `# Written by Vespid at each start of the embedded server.\nmax_payload: ${DEFAULT_MAX_PAYLOAD}\n`);
  const logStart = await fileSize(logFile); // the log is appended to; report only this run's lines
  const port = opts.port && (await isPortFree(opts.port)) ? opts.port : RANDOM_PORT;

  // Own process group: a terminal's Ctrl-C reaches only Vespid, which then drains its connections
  // before stopping the server, instead of the server vanishing under it.
  const child = spawn(
    binary,
    ["-c", configFile, "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dataDir, "-l", logFile, "--ports_file_dir", dataDir],
    { stdio: "ignore", detached: true },
  );
  child.unref(); // the server must not keep a finished Node process alive; the exit hook stops it
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let spawnError: Error | undefined;
  child.once("error", (err) => (spawnError = err));
  const running = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  const portsFile = join(dataDir, `nats-server_${child.pid}.ports`);

  // Stop the server when this process ends. On SIGINT/SIGTERM act only if nobody else listens for
  // them: a listener (like the CLI's) owns the shutdown order and calls stop() itself.
  const killOnExit = () => child.kill("SIGTERM");
  const onSignal = (signal: NodeJS.Signals) => {
    if (process.listenerCount(signal) > 1) return;
    child.kill("SIGTERM");
    removeHooks();
    process.kill(process.pid, signal); // the default action, now that our listener is gone
  };
  const removeHooks = () => {
    process.off("exit", killOnExit);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  process.on("exit", killOnExit);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      removeHooks();
      if (running()) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), DEFAULT_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      await rm(portsFile, { force: true }); // nats-server leaves it behind
    })());

  try {
    const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const url = await readPortsFile(portsFile);
      if (url) return { url, exited, stop };
      if (spawnError) throw spawnError;
      if (!running()) throw new Error(`exited with code ${child.exitCode ?? child.signalCode} while starting`);
      if (Date.now() > deadline) throw new Error(`not listening after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } catch (err) {
    await stop();
    const log = await readLogSince(logFile, logStart);
    throw new Error(`nats-server (${binary}) did not start: ${(err as Error).message}${log ? `\n--- ${logFile} ---\n${log}` : ""}`);
  }
}

/** nats-server writes `{"nats":["nats://127.0.0.1:PORT"]}` once its client listener is bound. */
async function readPortsFile(path: string): Promise<string | undefined> {
  try {
    const ports = JSON.parse(await readFile(path, "utf8")) as { nats?: string[] };
    return ports.nats?.[0];
  } catch {
    return undefined; // not written yet, or half written
  }
}

async function isPortFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** The last lines written to the log after `offset`, for error messages. */
async function readLogSince(path: string, offset: number): Promise<string> {
  try {
    const file = await open(path);
    try {
      const { size } = await file.stat();
      const buf = Buffer.alloc(Math.max(0, size - offset));
      await file.read(buf, 0, buf.length, offset);
      return buf.toString("utf8").trimEnd().split("\n").slice(-20).join("\n");
    } finally {
      await file.close();
    }
  } catch {
    return "";
  }
}

// A Vespid platform as separate real processes on loopback, for the fault-injection suite: its own
// nats-server (one, or a 3-node cluster: infra/cluster/local-cluster.ts), gateways, a scheduler and
// runners, each `node --import=tsx bin/vespid.ts <component> --nats …`, as an operator runs them
// (docs/deployment.md). Every process can be killed with SIGKILL and started again.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startLocalCluster, type LocalCluster } from "../infra/cluster/local-cluster.ts";
import { loadConfig } from "../infra/config.ts";
import { findNatsServer } from "../infra/nats-server.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/** A component may take long to start on a loaded 2-core machine: tsx compiles, the runner probes its engine. */
const READY_TIMEOUT_MS = 120_000;

type Mode = "gateway" | "scheduler" | "runner";

/** What a component prints on stdout once it serves (bin/vespid.ts). */
const READY_LINE: Record<Mode, RegExp> = {
  gateway: /Vespid gateway listening on (\S+)/,
  scheduler: /Vespid scheduler serving/,
  runner: /Vespid runner (\S+) serving/,
};

export class Component {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** The gateway's base URL, once started. */
  url = "";
  starts = 0;

  constructor(
    readonly name: string,
    private readonly mode: Mode,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    /** stdout and stderr (JSON log lines) of every start, appended. */
    readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    const child = this.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  async start(): Promise<void> {
    if (this.pid !== undefined) return;
    this.starts++;
    const log = createWriteStream(this.logFile, { flags: "a" });
    // Its own process group, so that cleanup can end whatever it started (sandboxes) with it.
    const child = spawn(process.execPath, ["--import=tsx", "bin/vespid.ts", this.mode, ...this.args], {
      cwd: REPO,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    const killGroup = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
    };
    process.on("exit", killGroup);
    this.exited = new Promise((resolve) => child.once("exit", () => (process.off("exit", killGroup), resolve())));
    child.stderr!.pipe(log);
    let stdout = "";
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} not ready after ${READY_TIMEOUT_MS} ms; see ${this.logFile}`)), READY_TIMEOUT_MS);
      child.stdout!.on("data", (chunk: Buffer) => {
        log.write(chunk);
        stdout += chunk.toString();
        const match = READY_LINE[this.mode].exec(stdout);
        if (match) {
          if (this.mode === "gateway") this.url = match[1]!;
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited while starting (${code ?? signal}); see ${this.logFile}`));
      });
    });
    await ready;
  }

  /** kill -9 of the component's own process (not its group: a crash leaves its children to fend). */
  async kill(): Promise<void> {
    if (this.pid === undefined) return;
    this.child!.kill("SIGKILL");
    await this.exited;
  }

  /** Ends the component and anything it started. */
  async cleanup(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
    await this.exited;
  }

  /** How many of its log lines (all starts) have this message. */
  async countLogLines(message: string): Promise<number> {
    let text = "";
    try {
      text = await readFile(this.logFile, "utf8");
    } catch {
      return 0;
    }
    let count = 0;
    for (const line of text.split("\n")) if (line.includes(`"msg":${JSON.stringify(message)}`)) count++;
    return count;
  }
}

export interface ChaosPlatformOptions {
  /** nats-server nodes: 1 (default) or 3 (a cluster). */
  natsNodes?: 1 | 3;
  gateways?: number;
  runners?: number;
  /** Calls one runner runs at once (VESPID_RUNNER_CAPACITY). */
  runnerCapacity?: number;
  /** VESPID_REPLICAS for every component; unset: the default from the cluster size. */
  replicas?: number;
}

export interface ChaosPlatform {
  dir: string;
  nats: LocalCluster;
  natsUrls: string;
  gateways: Component[];
  scheduler: Component;
  runners: Component[];
  apiKey: string;
  /** A connection of the test's own, to read buckets and streams. */
  nc: NatsConnection;
  stop(): Promise<void>;
}

export async function startChaosPlatform(opts: ChaosPlatformOptions = {}): Promise<ChaosPlatform> {
  const dir = await mkdtemp(join(tmpdir(), "vespid-chaos-"));
  const nats = await startLocalCluster({ dataDir: join(dir, "nats"), size: opts.natsNodes ?? 1, natsServer: await findNatsServer(loadConfig().dataDir) });
  const components: Component[] = [];
  let nc: NatsConnection | undefined;
  const stop = async () => {
    await nc?.close().catch(() => {});
    await Promise.all(components.map((component) => component.cleanup()));
    await nats.stop();
    if (!process.env.VESPID_KEEP_TEST_DATA) await rm(dir, { recursive: true, force: true });
  };
  try {
    if ((opts.natsNodes ?? 1) > 1) await waitForRoutes(nats.urls, opts.natsNodes!);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NATS_URL: nats.urls,
      VESPID_LOG_LEVEL: "info",
      VESPID_RUNNER_CAPACITY: String(opts.runnerCapacity ?? 2),
      ...(opts.replicas !== undefined && { VESPID_REPLICAS: String(opts.replicas) }),
    };
    delete env.VESPID_PORT;
    const logs = join(dir, "logs");
    await mkdir(logs, { recursive: true });
    const component = (name: string, mode: Mode, args: string[]) => {
      const made = new Component(name, mode, args, env, join(logs, `${name}.log`));
      components.push(made);
      return made;
    };
    // All gateways share one data directory: the first makes the default namespace's key file.
    const gatewayDir = join(dir, "gateway");
    const gateways = Array.from({ length: opts.gateways ?? 1 }, (_, i) => component(`gateway-${i + 1}`, "gateway", ["--port", "0", "--data-dir", gatewayDir]));
    const scheduler = component("scheduler", "scheduler", ["--data-dir", join(dir, "scheduler")]);
    const runners = Array.from({ length: opts.runners ?? 2 }, (_, i) => component(`runner-${i + 1}`, "runner", ["--data-dir", join(dir, `runner-${i + 1}`)]));
    // The first gateway alone first: it provisions and makes the key; then the rest together.
    await gateways[0]!.start();
    await Promise.all([...gateways.slice(1), scheduler, ...runners].map((c) => c.start()));
    const apiKey = (await readFile(join(gatewayDir, "auth.key"), "utf8")).trim();
    nc = await connect({ servers: nats.urls.split(","), name: "chaos-observer", maxReconnectAttempts: -1 });
    return { dir, nats, natsUrls: nats.urls, gateways, scheduler, runners, apiKey, nc, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Until a server's INFO lists every node: then components see the whole cluster. */
async function waitForRoutes(urls: string, size: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const nc = await connect({ servers: urls.split(",") });
    const seen = new Set(nc.info?.connect_urls ?? []).size;
    await nc.close();
    if (seen >= size) return;
    if (Date.now() > deadline) throw new Error(`the cluster's nodes did not route to each other within 60 s (${seen} of ${size})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

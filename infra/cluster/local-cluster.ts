// nats-server nodes on loopback that a test (or a person) can kill -9 and start again on the same
// store: one JetStream server, or a cluster of several with routes between them. The fault-injection
// suite (chaos/) uses it; infra/cluster/node-*.conf and start-local-cluster.sh are the same
// configuration with fixed ports, for starting a cluster by hand.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { DEFAULT_MAX_PAYLOAD, findNatsServer } from "../nats-server.ts";

/** How long a node may take to accept connections after a (re)start, ms: JetStream recovers its store first. */
const START_TIMEOUT_MS = 60_000;

export interface NodeConfigOptions {
  /** Server name, unique in the cluster (JetStream's Raft groups use it). */
  name: string;
  port: number;
  /** JetStream store of this node; never shared between nodes. */
  storeDir: string;
  /** For a cluster: its name, this node's route port, and every node's route port (its own included). */
  cluster?: { name: string; port: number; routes: number[] };
  host?: string;
}

/**
 * A nats-server configuration file: JetStream on a store of its own and, for a cluster, routes to
 * every node (listing its own route is allowed and keeps the files alike).
 */
export function nodeConfig(opts: NodeConfigOptions): string {
  const host = opts.host ?? "127.0.0.1";
  const lines = [
    `server_name: ${opts.name}`,
    `listen: ${host}:${opts.port}`,
    // Action code may be up to 4 MiB, plus its JSON record (infra/nats-server.ts).
    `max_payload: ${DEFAULT_MAX_PAYLOAD}`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(opts.storeDir)}`,
    `}`,
  ];
  if (opts.cluster) {
    lines.push(
      `cluster {`,
      `  name: ${opts.cluster.name}`,
      `  listen: ${host}:${opts.cluster.port}`,
      `  routes: [`,
      ...opts.cluster.routes.map((port) => `    nats-route://${host}:${port}`),
      `  ]`,
      `}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export interface LocalNode {
  name: string;
  /** nats://127.0.0.1:<port>; the same after a restart. */
  url: string;
  /** Process id of the running server, undefined while it is down. */
  readonly pid: number | undefined;
  /** Sends a signal (default SIGKILL) and waits for the process to end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and store; resolves once it accepts connections. */
  start(): Promise<void>;
}

export interface LocalCluster {
  nodes: LocalNode[];
  /** Every node's client URL, comma-separated: what NATS_URL / --nats takes. */
  urls: string;
  /** Kills every node still running (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
}

export interface LocalClusterOptions {
  /** Each node keeps its config, log and store under `<dataDir>/<name>`. */
  dataDir: string;
  /** 1: a single server without cluster block. Default 3. */
  size?: number;
  natsServer?: string;
}

/** Starts `size` nodes on free loopback ports and waits until each accepts connections. */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const size = opts.size ?? 3;
  const binary = opts.natsServer ?? (await findNatsServer(opts.dataDir));
  const clientPorts = await freePorts(size);
  const routePorts = size > 1 ? await freePorts(size) : [];
  const nodes = clientPorts.map((port, i) => {
    const name = `n${i + 1}`;
    const dir = join(opts.dataDir, name);
    const config = nodeConfig({
      name,
      port,
      storeDir: join(dir, "jetstream"),
      ...(size > 1 && { cluster: { name: "vespid", port: routePorts[i]!, routes: routePorts } }),
    });
    return new Node(name, port, dir, config, binary);
  });
  try {
    // Together: a cluster's JetStream waits for its peers before it settles.
    await Promise.all(nodes.map((node) => node.start()));
  } catch (err) {
    await Promise.all(nodes.map((node) => node.kill("SIGKILL")));
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((node) => node.url).join(","),
    stop: () => Promise.all(nodes.map((node) => node.stop())).then(() => undefined),
  };
}

class Node implements LocalNode {
  url: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly port: number,
    private readonly dir: string,
    private readonly config: string,
    private readonly binary: string,
  ) {
    this.url = `nats://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.child && this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  async start(): Promise<void> {
    if (this.pid !== undefined) return;
    await mkdir(this.dir, { recursive: true });
    const configFile = join(this.dir, "nats-server.conf");
    await writeFile(configFile, this.config);
    const child = spawn(this.binary, ["-c", configFile, "-l", join(this.dir, "nats-server.log")], { stdio: "ignore", detached: true });
    child.unref();
    const killOnExit = () => child.kill("SIGKILL");
    process.on("exit", killOnExit);
    this.exited = new Promise((resolve) => child.once("exit", () => (process.off("exit", killOnExit), resolve())));
    child.once("error", () => {});
    this.child = child;
    const deadline = Date.now() + START_TIMEOUT_MS;
    // The client port accepting connections is the sign: the store is recovered by then.
    while (!(await accepts(this.port))) {
      if (this.pid === undefined) throw new Error(`nats-server ${this.name} exited while starting; see ${join(this.dir, "nats-server.log")}`);
      if (Date.now() > deadline) throw new Error(`nats-server ${this.name} not listening on ${this.port} after ${START_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.pid === undefined) return;
    this.child!.kill(signal);
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.pid === undefined) return;
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), 10_000);
    await this.kill("SIGTERM");
    clearTimeout(timer);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = connect(port, "127.0.0.1");
    conn.once("connect", () => (conn.destroy(), resolve(true)));
    conn.once("error", () => resolve(false));
  });
}

/** `count` distinct ports that were free a moment ago. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

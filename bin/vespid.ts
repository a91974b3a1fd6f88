#!/usr/bin/env -S node --import=tsx
// Vespid's command line: the whole platform in one process (`all`), or one component of it joining
// a shared NATS server, so that more schedulers and runners can be added on other machines.
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ConfigError, loadConfig, type Config } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { createLogger } from "../infra/logger.ts";
import { startLocalNats } from "../infra/nats-server.ts";
import { provision } from "../infra/provision.ts";

/** Port the embedded nats-server prefers, so extra components can be pointed at a known URL. */
const DEFAULT_EMBEDDED_NATS_PORT = 4222;
/** How long a clean shutdown may take before the process exits anyway (ms). */
const SHUTDOWN_TIMEOUT_MS = 20_000;

const MODES = ["all", "gateway", "scheduler", "runner", "triggers"] as const;
type Mode = (typeof MODES)[number];

const USAGE = `Usage: vespid [all|gateway|scheduler|runner|triggers] [options]
       vespid admin <command>   (namespaces, keys, limits: vespid admin --help)
       vespid property|action|activation|trigger|rule|api|package|namespace <verb> …
                                wsk's everyday verbs against a running platform (cli/;
                                vespid action --help, …)

  all         (default) the whole platform in one process: an embedded nats-server unless
              --nats or NATS_URL is given, the HTTP gateway, a scheduler, a runner and the
              triggers component
  gateway     the HTTP API only
  scheduler   a scheduler only
  runner      a runner only
  triggers    the triggers component only (trigger fires, rules, feeds)

Options:
  --nats <url>        NATS server, e.g. nats://host:4222 (required except for all; env NATS_URL)
  --port <n>          gateway HTTP port (env VESPID_PORT, default 8989)
  --data-dir <dir>    state directory (env VESPID_DATA_DIR, default ./.vespid)
  --isolation <tier>  all and runner: auto (default: kvm if /dev/kvm is usable, else process),
                      kvm or process; a tier the host cannot give stops the start (env
                      VESPID_ISOLATION)
  -h, --help          this text

Other settings: VESPID_ACTIVATION_RETENTION, VESPID_NAMESPACE_CONCURRENT, VESPID_NAMESPACE_PER_MINUTE, VESPID_IDEMPOTENCY_WINDOW, VESPID_MAX_QUEUE, VESPID_MAX_BLOCKING_WAITS, VESPID_REPLICAS, VESPID_HOST, VESPID_RUNNER_CAPACITY, VESPID_RUNNER_QUEUE, VESPID_DIRECT_CALLS, VESPID_POOL_MB, VESPID_LOG_LEVEL, VESPID_LOG_FORMAT (see README.md).

What is printed for people (this banner, what runs) goes to stdout; the log goes to stderr, as
JSON lines, or readable lines when stderr is a terminal (VESPID_LOG_FORMAT=json|pretty chooses).`;

class UsageError extends Error {}

/** Something started that must be stopped at shutdown, in reverse start order. */
interface Closer {
  name: string;
  close(): Promise<void>;
}

function parseCommandLine(argv: string[]): { help: true } | { help: false; mode: Mode; config: Config } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        nats: { type: "string" },
        port: { type: "string" },
        "data-dir": { type: "string" },
        isolation: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  if (positionals.length > 1) throw new UsageError(`one command at a time, got: ${positionals.join(" ")}`);
  const mode = (positionals[0] ?? "all") as Mode;
  if (!MODES.includes(mode)) throw new UsageError(`unknown command "${positionals[0]}"`);
  if (values.isolation !== undefined && mode !== "all" && mode !== "runner") {
    throw new UsageError(`--isolation is a runner's setting: it applies to "all" and "runner", not "${mode}"`);
  }

  // Flags win over the environment; loadConfig validates both the same way.
  const env = { ...process.env };
  if (values.nats !== undefined) env.NATS_URL = values.nats;
  if (values.port !== undefined) env.VESPID_PORT = values.port;
  if (values["data-dir"] !== undefined) env.VESPID_DATA_DIR = values["data-dir"];
  if (values.isolation !== undefined) env.VESPID_ISOLATION = values.isolation;
  const config = loadConfig(env);
  if (mode !== "all" && !config.natsUrl) {
    throw new UsageError(`"${mode}" joins an existing platform: give its NATS server with --nats nats://host:4222 or NATS_URL`);
  }
  return { help: false, mode, config };
}

async function start(mode: Mode, config: Config, logger: Logger, closers: Closer[]): Promise<void> {
  let natsUrl = config.natsUrl;
  let embedded = false;
  if (!natsUrl) {
    const nats = await startLocalNats({ dataDir: config.dataDir, port: DEFAULT_EMBEDDED_NATS_PORT });
    closers.push({ name: "nats-server", close: nats.stop });
    void nats.exited.then((code) => {
      if (!shuttingDown) fail(logger, closers, new Error(`the embedded nats-server ${code === null ? "was killed" : `exited with code ${code}`}; see ${config.dataDir}/nats-server.log`));
    });
    natsUrl = nats.url;
    embedded = true;
    logger.info({ url: natsUrl }, "embedded nats-server started");
  }

  const nc = await connectNats(natsUrl, `vespid-${mode}`);
  closers.push({ name: "NATS connection", close: () => nc.drain() });
  void nc.closed().then((err) => {
    if (!shuttingDown) fail(logger, closers, new Error(`the NATS connection closed${err ? `: ${err.message}` : ""}`));
  });
  // Every mode provisions, so components can be started in any order.
  await provision(nc, { activationRetentionMs: config.activationRetentionMs, idempotencyWindowMs: config.idempotencyWindowMs, replicas: config.replicas });

  const { gateway, runner } = await startComponents(mode, config, nc, logger, closers);
  logger.info({ mode, nats: natsUrl }, "vespid is ready");
  if (mode === "all" && gateway) printWelcome(config, natsUrl, embedded, gateway, runner);
  else if (gateway) console.log(`Vespid gateway listening on ${gateway.url}${gateway.apiKey ? `\n  API key  ${gateway.apiKey}` : ""}`);
  else if (runner) console.log(`Vespid runner ${runner.runnerId} serving ${natsUrl}, ${config.runnerCapacity} at a time, isolation ${runner.isolation}`);
  else if (mode === "triggers") console.log(`Vespid triggers serving ${natsUrl}`);
  else console.log(`Vespid scheduler serving ${natsUrl}`);
}

interface Started {
  gateway?: { url: string; apiKey?: string };
  runner?: { runnerId: string; isolation: string };
}

async function startComponents(mode: Mode, config: Config, nc: NatsConnection, logger: Logger, closers: Closer[]): Promise<Started> {
  const started: Started = {};
  // Each component tags its own log lines (logger.child({ component })), so they get the root logger.
  // Runner first and gateway last: by the time requests arrive, someone can run them. Components
  // are imported on demand: a runner machine need not load the HTTP stack, nor a gateway the engine.
  if (mode === "all" || mode === "runner") {
    const { startRunner, describeIsolation } = await import("../runner/index.ts");
    const runner = await startRunner({ nc, dataDir: config.dataDir, capacity: config.runnerCapacity, queueLimit: config.runnerQueue, poolMb: config.poolMb, isolation: config.isolation, logger });
    closers.push({ name: "runner", close: runner.close });
    started.runner = runner;
    // The one line that says how invocations are isolated here, and why; before the banner.
    console.log(describeIsolation(runner.isolation, runner.isolationReason));
  }
  if (mode === "all" || mode === "scheduler") {
    const { startScheduler } = await import("../scheduler/index.ts");
    const scheduler = await startScheduler({ nc, logger, maxRetries: config.maxRetries });
    closers.push({ name: "scheduler", close: scheduler.close });
  }
  if (mode === "all" || mode === "triggers") {
    const { startTriggers } = await import("../triggers/index.ts");
    const triggers = await startTriggers({ nc, logger, namespaceLimits: config.namespaceLimits });
    closers.push({ name: "triggers", close: triggers.stop });
  }
  if (mode === "all" || mode === "gateway") {
    const { startGateway } = await import("../gateway/index.ts");
    const gateway = await startGateway({ nc, port: config.port, host: config.host, dataDir: config.dataDir, logger, namespaceLimits: config.namespaceLimits, maxQueue: config.maxQueue, maxBlockingWaits: config.maxBlockingWaits, directCalls: config.directCalls });
    closers.push({ name: "gateway", close: gateway.close });
    started.gateway = gateway;
  }
  return started;
}

function printWelcome(config: Config, natsUrl: string, embedded: boolean, gateway: { url: string; apiKey?: string }, runner?: Started["runner"]): void {
  const key = gateway.apiKey;
  const keyFile = join(config.dataDir, "auth.key");
  // Printed on stdout, the log on stderr: `vespid all 2>vespid.log` leaves just this on screen.
  const lines = [
    "",
    "Vespid is running: gateway, scheduler, runner and triggers in this process.",
    `  API        ${gateway.url}/api/v1   (docs: ${gateway.url}/docs)`,
    `  NATS       ${natsUrl}${embedded ? ` (embedded, data in ${config.dataDir})` : ""}`,
    `  Runner     ${runner ? `${runner.runnerId}, ${config.runnerCapacity} at a time, isolation ${runner.isolation}` : "-"}`,
    key
      ? `  API key    ${key}\n             (namespace guest; saved in ${keyFile})`
      : `  API key    unknown: namespace guest has a key that ${keyFile} does not hold (see the log)`,
    `  Metrics    ${gateway.url}/metrics, Bearer token ${process.env.VESPID_METRICS_TOKEN ? "VESPID_METRICS_TOKEN" : `in ${join(config.dataDir, "metrics.token")}`} (docs/telemetry.md)`,
    "",
    "Try it, from another terminal in this directory:",
    "  npx vespid action list",
    `  curl -u "$(cat ${keyFile})" ${gateway.url}/api/v1/namespaces/_/actions`,
    "",
    "Namespaces, keys and limits: npx vespid admin --help. Everything else: npx vespid --help.",
    `Add a runner: npx vespid runner --nats ${natsUrl}`,
    "Stop with Ctrl-C.",
    "",
  ];
  console.log(lines.join("\n"));
}

let shuttingDown = false;
let shutdownDone: Promise<boolean> | undefined;

/** Closes everything started, newest first; a close that fails is logged and the rest still run. */
function shutdown(logger: Logger, closers: Closer[]): Promise<boolean> {
  shuttingDown = true;
  return (shutdownDone ??= (async () => {
    const timer = setTimeout(() => {
      logger.error(`shutdown took longer than ${SHUTDOWN_TIMEOUT_MS} ms; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    let clean = true;
    for (const closer of [...closers].reverse()) {
      try {
        await closer.close();
      } catch (err) {
        clean = false;
        logger.error({ err }, `closing the ${closer.name} failed`);
      }
    }
    return clean;
  })());
}

function fail(logger: Logger, closers: Closer[], err: Error): void {
  logger.fatal({ err }, err.message);
  void shutdown(logger, closers).then(() => process.exit(1));
}

async function main(): Promise<void> {
  // `admin` is a client of a running platform, not a component: it has its own parser (admin/cli.ts).
  if (process.argv[2] === "admin") {
    const { runAdmin } = await import("../admin/cli.ts");
    process.exit(await runAdmin(process.argv.slice(3)));
  }
  // wsk's verbs (`vespid action create …`) are a client of a running platform too (cli/index.ts).
  const { isUserCommand } = await import("../cli/commands.ts");
  if (isUserCommand(process.argv.slice(2))) {
    const { runCli } = await import("../cli/index.ts");
    process.exit(await runCli(process.argv.slice(2)));
  }
  let commandLine;
  try {
    commandLine = parseCommandLine(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof ConfigError)) throw err;
    console.error(`vespid: ${err.message}\nRun \`vespid --help\` for usage.`);
    process.exit(2);
  }
  if (commandLine.help) {
    console.log(USAGE);
    return;
  }
  const { mode, config } = commandLine;

  // A runner that cannot have the tier it asks for refuses before anything starts, with the reason.
  if (mode === "all" || mode === "runner") {
    const { chooseIsolation } = await import("../runner/engine-native.ts");
    try {
      chooseIsolation(config.isolation);
    } catch (err) {
      const hint = config.isolation === "kvm" ? "\n(--isolation auto or VESPID_ISOLATION=auto runs on the process tier where /dev/kvm is missing)" : "";
      console.error(`vespid: cannot start a runner: ${(err as Error).message}${hint}`);
      process.exit(1);
    }
  }

  const logger = createLogger(config.logLevel, config.logFormat);
  const closers: Closer[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      logger.warn(`${signal} again: exiting without finishing the shutdown`);
      process.exit(1);
    }
    logger.info(`${signal}: shutting down`);
    void shutdown(logger, closers).then((clean) => process.exit(clean ? 0 : 1));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    await start(mode, config, logger, closers);
  } catch (err) {
    if (shuttingDown) return; // a signal arrived during startup and is handling the exit
    fail(logger, closers, err as Error);
  }
}

await main();

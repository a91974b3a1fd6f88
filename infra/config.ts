// Process configuration from environment variables. Every setting has a default, so `npm start`
// works with none set; a bad value stops startup with a message naming the variable.
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./logger.ts";

/** HTTP port of the gateway (TCP port; 0 picks a free one). */
export const DEFAULT_PORT = 8989;
/** Interface the gateway listens on: loopback only, unless told otherwise. */
export const DEFAULT_HOST = "127.0.0.1";
/** Directory for the embedded NATS store, its log, runner caches and fetched tools (relative to the cwd). */
export const DEFAULT_DATA_DIR = ".vespid";
/** Level of the JSON logs on stderr. */
export const DEFAULT_LOG_LEVEL: LogLevel = "info";
/** Invocations one runner runs at once (count); one per CPU, as each occupies a vCPU thread. */
export const DEFAULT_RUNNER_CAPACITY = availableParallelism();
/** Memory a runner's engine keeps for snapshots and idle VMs (MiB); least recently used go first. */
export const DEFAULT_POOL_MB = 2048;
/**
 * The isolation tier a runner asks for: `auto` takes the strongest the host offers (kvm where
 * /dev/kvm is usable, else process); `kvm` or `process` is that tier or a refusal to start.
 */
export const ISOLATION_CHOICES = ["auto", "kvm", "process"] as const;
export type IsolationChoice = (typeof ISOLATION_CHOICES)[number];
export const DEFAULT_ISOLATION: IsolationChoice = "auto";

/**
 * Invocation limits of a namespace the admin set none for (`vespid admin limits set`). OpenWhisk
 * uses 100 concurrent and 120 a minute; these are high so a load test on one machine is not
 * throttled: set real ones per namespace when several teams share a platform.
 */
export const DEFAULT_NAMESPACE_CONCURRENT = 10_000;
export const DEFAULT_NAMESPACE_PER_MINUTE = 1_000_000;
/**
 * Invocations that may wait in the queue (VESPID_INVOCATIONS) for a runner before gateways answer
 * 503 with Retry-After instead of queueing more: a burst this deep is absorbed, an overload is
 * refused at once rather than stored for calls whose callers gave up long ago.
 */
export const DEFAULT_MAX_QUEUE = 10_000;
/** Blocking callers one gateway keeps waiting at once; beyond it, 503 (bounds its memory). */
export const DEFAULT_MAX_BLOCKING_WAITS = 10_000;

export interface Config {
  port: number;
  host: string;
  /** Absolute path. */
  dataDir: string;
  /** Undefined: run an embedded nats-server. */
  natsUrl: string | undefined;
  runnerCapacity: number;
  /** Calls a runner lets wait for a slot; undefined: 32 per slot (runner/assignments.ts). */
  runnerQueue: number | undefined;
  /** Whether gateways hand blocking calls straight to runners (VESPID_DIRECT_CALLS, default on). */
  directCalls: boolean;
  poolMb: number;
  /** The tier a runner started here asks for. */
  isolation: IsolationChoice;
  logLevel: LogLevel;
  /** How log lines are written; undefined: pretty when stderr is a terminal, else JSON lines. */
  logFormat: LogFormat | undefined;
  /**
   * Activation record retention, ms (the activations bucket's max age); undefined when not set,
   * so the bucket keeps what it has (new buckets: 7 days, infra/provision.ts ACTIVATION_TTL_MS).
   */
  activationRetentionMs: number | undefined;
  /** Default namespace limits: invocations running at once and started per minute. */
  namespaceLimits: { concurrent: number; perMinute: number };
  /**
   * Replicas of the streams and buckets (VESPID_REPLICAS); undefined: from the cluster size
   * (infra/provision.ts defaultReplicas: 3 in a cluster of 3 or more, else 1).
   */
  replicas: number | undefined;
  /** How long idempotency keys are remembered, ms; undefined: the bucket keeps its own (new: 24 h). */
  idempotencyWindowMs: number | undefined;
  /** Pending invocations beyond which gateways refuse new ones (503). */
  maxQueue: number;
  /** Blocking callers one gateway waits for at once. */
  maxBlockingWaits: number;
  /** System failures a scheduler retries an invocation after; undefined: its default (scheduler/retries.ts). */
  maxRetries: number | undefined;
}

/** Which environment variable feeds which setting; the CLI flag is named in errors too. */
const VARIABLES = {
  VESPID_PORT: "--port",
  VESPID_HOST: undefined,
  VESPID_DATA_DIR: "--data-dir",
  NATS_URL: "--nats",
  VESPID_RUNNER_CAPACITY: undefined,
  VESPID_RUNNER_QUEUE: undefined,
  VESPID_DIRECT_CALLS: undefined,
  VESPID_POOL_MB: undefined,
  VESPID_ISOLATION: "--isolation",
  VESPID_LOG_LEVEL: undefined,
  VESPID_LOG_FORMAT: undefined,
  VESPID_ACTIVATION_RETENTION: undefined,
  VESPID_NAMESPACE_CONCURRENT: undefined,
  VESPID_NAMESPACE_PER_MINUTE: undefined,
  VESPID_REPLICAS: undefined,
  VESPID_IDEMPOTENCY_WINDOW: undefined,
  VESPID_MAX_QUEUE: undefined,
  VESPID_MAX_BLOCKING_WAITS: undefined,
  VESPID_MAX_RETRIES: undefined,
} as const;
export type ConfigVariable = keyof typeof VARIABLES;

export class ConfigError extends Error {
  override name = "ConfigError";
}

const wholeNumber = (min: number, max: number) => {
  const message = `must be a whole number from ${min} to ${max}`;
  return z
    .string()
    .regex(/^\d+$/, message)
    .transform(Number)
    .refine((n) => n >= min && n <= max, message);
};

const DURATION_UNITS = { s: 1, m: 60, h: 60 * 60, d: 24 * 60 * 60 } as const;

/** Seconds, written as a whole number of seconds or with a unit: `30`, `30s`, `15m`, `12h`, `7d`. */
const duration = (minS: number, maxS: number) => {
  const message = `must be a duration from ${minS}s to ${maxS / (24 * 60 * 60)}d, like 3600, 90s, 15m, 12h or 7d`;
  return z
    .string()
    .regex(/^\d+[smhd]?$/, message)
    .transform((text) => {
      const unit = /[smhd]$/.test(text) ? (text.slice(-1) as keyof typeof DURATION_UNITS) : "s";
      return Number.parseInt(text, 10) * DURATION_UNITS[unit];
    })
    .refine((s) => s >= minS && s <= maxS, message);
};

// An empty variable (`NATS_URL=`) means unset, as in most shells' conventions for "no value".
const unsetIfEmpty = (v: unknown) => (v === "" ? undefined : v);

const EnvSchema = z.object({
  VESPID_PORT: z.preprocess(unsetIfEmpty, wholeNumber(0, 65_535).optional()),
  VESPID_HOST: z.preprocess(unsetIfEmpty, z.string().regex(/^[^\s/]+$/, "must be a host name or IP address").optional()),
  VESPID_DATA_DIR: z.preprocess(unsetIfEmpty, z.string().optional()),
  NATS_URL: z.preprocess(
    unsetIfEmpty,
    z
      .string()
      .regex(/^((nats|tls):\/\/)?[^\s/]+(:\d+)?(,((nats|tls):\/\/)?[^\s/]+(:\d+)?)*$/, "must look like nats://host:4222 (comma-separated for several servers)")
      .optional(),
  ),
  VESPID_RUNNER_CAPACITY: z.preprocess(unsetIfEmpty, wholeNumber(1, 1024).optional()),
  VESPID_RUNNER_QUEUE: z.preprocess(unsetIfEmpty, wholeNumber(0, 100_000).optional()),
  VESPID_DIRECT_CALLS: z.preprocess(unsetIfEmpty, z.enum(["on", "off"], { error: "must be on or off" }).optional()),
  VESPID_POOL_MB: z.preprocess(unsetIfEmpty, wholeNumber(16, 1024 * 1024).optional()),
  VESPID_ISOLATION: z.preprocess(unsetIfEmpty, z.enum(ISOLATION_CHOICES, { error: `must be one of ${ISOLATION_CHOICES.join(", ")}` }).optional()),
  VESPID_LOG_LEVEL: z.preprocess(unsetIfEmpty, z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).optional()),
  VESPID_LOG_FORMAT: z.preprocess(unsetIfEmpty, z.enum(LOG_FORMATS, { error: `must be one of ${LOG_FORMATS.join(", ")}` }).optional()),
  VESPID_ACTIVATION_RETENTION: z.preprocess(unsetIfEmpty, duration(1, 10 * 365 * 24 * 60 * 60).optional()),
  VESPID_NAMESPACE_CONCURRENT: z.preprocess(unsetIfEmpty, wholeNumber(0, 1_000_000).optional()),
  VESPID_NAMESPACE_PER_MINUTE: z.preprocess(unsetIfEmpty, wholeNumber(0, 100_000_000).optional()),
  // JetStream's own limit: a stream has at most 5 replicas.
  VESPID_REPLICAS: z.preprocess(unsetIfEmpty, wholeNumber(1, 5).optional()),
  VESPID_IDEMPOTENCY_WINDOW: z.preprocess(unsetIfEmpty, duration(60, 30 * 24 * 60 * 60).optional()),
  VESPID_MAX_QUEUE: z.preprocess(unsetIfEmpty, wholeNumber(1, 100_000_000).optional()),
  VESPID_MAX_BLOCKING_WAITS: z.preprocess(unsetIfEmpty, wholeNumber(1, 1_000_000).optional()),
  VESPID_MAX_RETRIES: z.preprocess(unsetIfEmpty, wholeNumber(0, 100).optional()),
});

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const picked = Object.fromEntries(Object.keys(VARIABLES).map((name) => [name, env[name]]));
  const parsed = EnvSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]) as ConfigVariable;
      const flag = VARIABLES[name] ? ` (${VARIABLES[name]})` : "";
      return `${name}${flag} ${issue.message}, got ${JSON.stringify(env[name])}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  const v = parsed.data;
  return {
    port: v.VESPID_PORT ?? DEFAULT_PORT,
    host: v.VESPID_HOST ?? DEFAULT_HOST,
    dataDir: resolve(v.VESPID_DATA_DIR ?? DEFAULT_DATA_DIR),
    natsUrl: v.NATS_URL,
    runnerCapacity: v.VESPID_RUNNER_CAPACITY ?? DEFAULT_RUNNER_CAPACITY,
    runnerQueue: v.VESPID_RUNNER_QUEUE,
    directCalls: v.VESPID_DIRECT_CALLS !== "off",
    poolMb: v.VESPID_POOL_MB ?? DEFAULT_POOL_MB,
    isolation: v.VESPID_ISOLATION ?? DEFAULT_ISOLATION,
    logLevel: v.VESPID_LOG_LEVEL ?? DEFAULT_LOG_LEVEL,
    logFormat: v.VESPID_LOG_FORMAT,
    activationRetentionMs: v.VESPID_ACTIVATION_RETENTION === undefined ? undefined : v.VESPID_ACTIVATION_RETENTION * 1000,
    namespaceLimits: {
      concurrent: v.VESPID_NAMESPACE_CONCURRENT ?? DEFAULT_NAMESPACE_CONCURRENT,
      perMinute: v.VESPID_NAMESPACE_PER_MINUTE ?? DEFAULT_NAMESPACE_PER_MINUTE,
    },
    replicas: v.VESPID_REPLICAS,
    idempotencyWindowMs: v.VESPID_IDEMPOTENCY_WINDOW === undefined ? undefined : v.VESPID_IDEMPOTENCY_WINDOW * 1000,
    maxQueue: v.VESPID_MAX_QUEUE ?? DEFAULT_MAX_QUEUE,
    maxBlockingWaits: v.VESPID_MAX_BLOCKING_WAITS ?? DEFAULT_MAX_BLOCKING_WAITS,
    maxRetries: v.VESPID_MAX_RETRIES,
  };
}

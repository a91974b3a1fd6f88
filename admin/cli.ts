// `vespid admin ...`: the command line over admin/namespaces.ts. Parses, connects, prints; the
// rules (names, limits, what a delete removes) live in the Admin class.
import { parseArgs } from "node:util";
import type { NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../infra/config.ts";
import { connectNats } from "../infra/connect.ts";
import { provision } from "../infra/provision.ts";
import { Admin, AdminError } from "./namespaces.ts";
import { findEmbeddedNats } from "./locate-nats.ts";

export const ADMIN_USAGE = `Usage: vespid admin <command> [options]

  namespace create <ns>       create a namespace and a first key (printed once: keep it)
  namespace delete <ns>       delete a namespace and its keys
  namespace list              namespaces, their key counts and limits
  key create <ns>             a new key for a namespace (printed once)
  key delete <uuid>           delete a key
  key list [<ns>]             keys (uuids) of one namespace or all
  limits set <ns> [--concurrent N] [--per-minute N]
                              invocation limits of a namespace (429 beyond them)
  limits get <ns>             the limits set for a namespace
  isolation set <ns> kvm|process
                              kvm: the namespace's actions run (and are checked) on kvm
                              runners only; process: on any runner (the default)
  isolation get <ns>          the isolation a namespace requires

Options:
  --nats <url>        the platform's NATS server (env NATS_URL); default: the embedded server
                      running in --data-dir
  --data-dir <dir>    state directory of a platform started with \`vespid all\` (env VESPID_DATA_DIR,
                      default ./.vespid)
  --json              print JSON instead of text`;

class UsageError extends Error {}

/** Runs `vespid admin <argv>`; returns the exit code. */
export async function runAdmin(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        nats: { type: "string" },
        "data-dir": { type: "string" },
        concurrent: { type: "string" },
        "per-minute": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`vespid admin: ${(err as Error).message}\n\n${ADMIN_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    console.log(ADMIN_USAGE);
    return values.help ? 0 : 2;
  }
  const env = { ...process.env };
  if (values.nats !== undefined) env.NATS_URL = values.nats;
  if (values["data-dir"] !== undefined) env.VESPID_DATA_DIR = values["data-dir"];
  let nc: NatsConnection | undefined;
  try {
    const config = loadConfig(env);
    const url = config.natsUrl ?? (await findEmbeddedNats(config.dataDir));
    if (!url) throw new AdminError(`no running Vespid in ${config.dataDir}: start it (npm start) or give --nats nats://host:4222`);
    nc = await connectNats(url, "vespid-admin");
    await provision(nc);
    const out = await execute(await Admin.open(nc), positionals, values);
    console.log(values.json ? JSON.stringify(out.json, null, 2) : out.text);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`vespid admin: ${err.message}\n\n${ADMIN_USAGE}`);
      return 2;
    }
    console.error(`vespid admin: ${(err as Error).message}`);
    return 1;
  } finally {
    await nc?.drain();
  }
}

interface Output {
  text: string;
  json: unknown;
}

async function execute(admin: Admin, args: string[], flags: { concurrent?: string; "per-minute"?: string }): Promise<Output> {
  const [noun, verb, arg, ...rest] = args;
  const command = `${noun} ${verb ?? ""}`.trim();
  const expect = (n: number) => {
    if ((arg === undefined ? 0 : 1) + rest.length !== n) throw new UsageError(`"${command}" takes ${n === 0 ? "no argument" : "one argument"}`);
  };
  switch (command) {
    case "namespace create": {
      expect(1);
      const made = await admin.createNamespace(arg!);
      return { json: made, text: `created namespace ${made.namespace}\n  API key  ${made.apiKey}\n(shown once: only its hash is stored)` };
    }
    case "namespace delete": {
      expect(1);
      const { keysDeleted } = await admin.deleteNamespace(arg!);
      return { json: { namespace: arg, keysDeleted }, text: `deleted namespace ${arg} and its ${keysDeleted} key(s)` };
    }
    case "namespace list": {
      expect(0);
      const list = await admin.listNamespaces();
      const text = list.map((ns) => `${ns.name}\tkeys=${ns.keys}\tconcurrent=${ns.limits.concurrent ?? "default"}\tper-minute=${ns.limits.perMinute ?? "default"}\tisolation=${ns.isolation ?? "any"}`);
      return { json: list, text: text.join("\n") || "(no namespaces)" };
    }
    case "key create": {
      expect(1);
      const apiKey = await admin.createKey(arg!);
      return { json: { namespace: arg, apiKey }, text: `${apiKey}\n(a key of namespace ${arg}; shown once: only its hash is stored)` };
    }
    case "key delete": {
      expect(1);
      const key = await admin.deleteKey(arg!);
      return { json: key, text: `deleted key ${key.uuid} of namespace ${key.namespace}` };
    }
    case "key list": {
      if (rest.length > 0) throw new UsageError(`"key list" takes at most one namespace`);
      const keys = await admin.listKeys(arg);
      return { json: keys, text: keys.map((k) => `${k.uuid}\t${k.namespace}\t${new Date(k.created).toISOString()}`).join("\n") || "(no keys)" };
    }
    case "limits set": {
      expect(1);
      const limits: { concurrent?: number; perMinute?: number } = {};
      if (flags.concurrent !== undefined) limits.concurrent = wholeNumber("--concurrent", flags.concurrent);
      if (flags["per-minute"] !== undefined) limits.perMinute = wholeNumber("--per-minute", flags["per-minute"]);
      if (Object.keys(limits).length === 0) throw new UsageError(`"limits set" needs --concurrent N and/or --per-minute N`);
      const set = await admin.setLimits(arg!, limits);
      return { json: { namespace: arg, limits: set }, text: describeLimits(arg!, set) };
    }
    case "limits get": {
      expect(1);
      const set = await admin.getLimits(arg!);
      return { json: { namespace: arg, limits: set }, text: describeLimits(arg!, set) };
    }
    case "isolation set": {
      if (arg === undefined || rest.length !== 1) throw new UsageError(`"isolation set" takes a namespace and kvm or process`);
      const isolation = await admin.setIsolation(arg, rest[0]!);
      return { json: { namespace: arg, isolation: isolation ?? null }, text: describeIsolation(arg, isolation) };
    }
    case "isolation get": {
      expect(1);
      const isolation = await admin.getIsolation(arg!);
      return { json: { namespace: arg, isolation: isolation ?? null }, text: describeIsolation(arg!, isolation) };
    }
    default:
      throw new UsageError(`unknown admin command "${args.join(" ")}"`);
  }
}

function wholeNumber(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

const describeLimits = (ns: string, limits: { concurrent?: number; perMinute?: number }) =>
  `namespace ${ns}: concurrent=${limits.concurrent ?? "default"} per-minute=${limits.perMinute ?? "default"}` +
  " (defaults: VESPID_NAMESPACE_CONCURRENT, VESPID_NAMESPACE_PER_MINUTE of each gateway)";

const describeIsolation = (ns: string, isolation: string | undefined) =>
  isolation === "kvm"
    ? `namespace ${ns}: isolation=kvm (its actions run only on kvm runners)`
    : `namespace ${ns}: isolation=any (its actions run on any runner)`;

// `vespid activation list|get|logs|result|poll`: activation records, as wsk shows them.
import { Command } from "commander";
import type { Client } from "../client.ts";
import { clientOf, jsonOf } from "../context.ts";
import { CliError, UsageError } from "../errors.ts";
import { annotationOf, formatTime, printJson, printTable } from "../output.ts";
import { wholeNumber } from "../params.ts";

/** OpenWhisk's statusCode values. */
const STATUS = ["success", "application error", "developer error", "internal error"];
/** How often `poll` asks for new activations (ms). */
const POLL_INTERVAL_MS = 1_000;

export function activationCommand(): Command {
  const activation = new Command("activation").description("work with activations");

  activation
    .command("list [name]")
    .alias("ls")
    .description("recent activations, newest first (of one action: name or package/name)")
    .option("--limit <n>", "at most n activations (default 30)", wholeNumber("--limit"))
    .option("--skip <n>", "skip the first n", wholeNumber("--skip"))
    .option("--since <ms>", "started at or after this time (epoch milliseconds)", wholeNumber("--since"))
    .option("--upto <ms>", "started at or before this time (epoch milliseconds)", wholeNumber("--upto"))
    .action(async (name: string | undefined, flags: { limit?: number; skip?: number; since?: number; upto?: number }, command: Command) => {
      const client = await clientOf(command);
      const list = await listActivations(client, { name, limit: flags.limit ?? 30, skip: flags.skip, since: flags.since, upto: flags.upto });
      if (jsonOf(command)) return printJson(list);
      printTable(
        ["datetime", "activation id", "kind", "start", "duration", "status", "entity"],
        list.map((a) => [
          formatTime(a.start),
          a.activationId,
          annotationOf(a, "kind"),
          annotationOf(a, "initTime") !== undefined ? "cold" : "warm",
          a.duration !== undefined ? `${a.duration}ms` : "-",
          STATUS[a.statusCode] ?? a.statusCode,
          `${a.namespace}/${a.name}:${a.version}`,
        ]),
        "(no activations)",
      );
    });

  activation
    .command("get [id]")
    .description("one activation record: its result, logs and annotations")
    .option("-l, --last", "the most recent activation")
    .action(async (id: string | undefined, flags: { last?: boolean }, command: Command) => {
      const client = await clientOf(command);
      const target = await activationId(client, id, flags.last);
      const { body } = await client.get(client.ns(`activations/${encodeURIComponent(target)}`), { entity: "activation" });
      if (jsonOf(command)) return printJson(body);
      console.log(`ok: got activation ${target}`);
      printJson(body);
    });

  activation
    .command("logs [id]")
    .description("an activation's log lines")
    .option("-l, --last", "the most recent activation")
    .option("-r, --strip", "without timestamps and stream names")
    .action(async (id: string | undefined, flags: { last?: boolean; strip?: boolean }, command: Command) => {
      const client = await clientOf(command);
      const target = await activationId(client, id, flags.last);
      const { body } = await client.get(client.ns(`activations/${encodeURIComponent(target)}/logs`), { entity: "activation" });
      if (jsonOf(command)) return printJson(body);
      for (const line of body.logs as string[]) console.log(flags.strip ? stripLog(line) : line);
    });

  activation
    .command("result [id]")
    .description("an activation's result")
    .option("-l, --last", "the most recent activation")
    .action(async (id: string | undefined, flags: { last?: boolean }, command: Command) => {
      const client = await clientOf(command);
      const target = await activationId(client, id, flags.last);
      const { body } = await client.get(client.ns(`activations/${encodeURIComponent(target)}/result`), { entity: "activation" });
      // wsk prints the result object itself; --json gives the API's {result, success, status, size}
      printJson(jsonOf(command) ? body : body.result);
    });

  activation
    .command("poll [name]")
    .description("follow new activations and print their logs, until Ctrl-C or --exit")
    .option("-e, --exit <seconds>", "stop after this many seconds", wholeNumber("--exit", 1))
    .option("--since-seconds <n>", "also show activations from the last n seconds", wholeNumber("--since-seconds"))
    .option("--since-minutes <n>", "also show activations from the last n minutes", wholeNumber("--since-minutes"))
    .action(async (name: string | undefined, flags: { exit?: number; sinceSeconds?: number; sinceMinutes?: number }, command: Command) => {
      const client = await clientOf(command);
      await poll(client, name, flags, jsonOf(command));
    });

  return activation;
}

interface ListQuery {
  name?: string;
  limit?: number;
  skip?: number;
  since?: number;
  upto?: number;
}

async function listActivations(client: Client, q: ListQuery): Promise<any[]> {
  return (await client.get(client.ns("activations"), { query: { name: q.name, limit: q.limit, skip: q.skip, since: q.since, upto: q.upto } })).body;
}

async function activationId(client: Client, id: string | undefined, last: boolean | undefined): Promise<string> {
  if (id && last) throw new UsageError("give an activation id or --last, not both");
  if (id) return id;
  if (!last) throw new UsageError("give an activation id, or --last for the most recent one");
  const [latest] = await listActivations(client, { limit: 1 });
  if (!latest) throw new CliError("there are no activations yet", 1, "invoke an action first: vespid action invoke <name>");
  return latest.activationId;
}

const stripLog = (line: string) => line.replace(/^\S+\s+(stdout|stderr):\s?/, "");

/**
 * Lists activations since the last look every second and prints the logs of each new one. A
 * record appears when the activation ends, so its start may lie before the last look: the window
 * reaches back a minute and seen ids are remembered.
 */
async function poll(client: Client, name: string | undefined, flags: { exit?: number; sinceSeconds?: number; sinceMinutes?: number }, json: boolean): Promise<void> {
  const started = Date.now();
  const back = (flags.sinceSeconds ?? 0) * 1000 + (flags.sinceMinutes ?? 0) * 60_000;
  let since = started - back;
  const seen = new Set<string>();
  const deadline = flags.exit !== undefined ? started + flags.exit * 1000 : Infinity;
  let stop = false;
  const onSigint = () => (stop = true);
  process.once("SIGINT", onSigint);
  console.error(`Polling for activation logs${name ? ` of ${name}` : ""}: Ctrl-C to stop${flags.exit ? ` (or after ${flags.exit} s)` : ""}.`);
  try {
    while (!stop && Date.now() < deadline) {
      const list = await listActivations(client, { name, since, limit: 200 });
      for (const a of list.reverse()) {
        if (seen.has(a.activationId)) continue;
        seen.add(a.activationId);
        const { body } = await client.get(client.ns(`activations/${encodeURIComponent(a.activationId)}/logs`), { entity: "activation" });
        if (json) console.log(JSON.stringify({ activationId: a.activationId, name: a.name, start: a.start, logs: body.logs }));
        else {
          console.log(`\nActivation: '${a.name}' (${a.activationId})`);
          for (const line of body.logs as string[]) console.log(line);
        }
      }
      since = Math.max(since, Date.now() - 60_000 - back);
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(POLL_INTERVAL_MS, deadline - Date.now()))));
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

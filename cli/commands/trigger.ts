// `vespid trigger create|update|get|list|delete|fire`. With --feed, create and delete drive the
// feed action's lifecycle as wsk does: create the trigger (annotated `feed`), invoke the feed
// action with lifecycleEvent CREATE, triggerName and authKey (deleting the trigger again when that
// fails); delete invokes the feed with DELETE first, then deletes the trigger.
import { Command } from "commander";
import { entityPath, parseName, type Client, type EntityName } from "../client.ts";
import { clientOf, jsonOf } from "../context.ts";
import { ApiError, CliError } from "../errors.ts";
import { annotationOf, formatTime, printJson, printTable, withProgress } from "../output.ts";
import { gatherPairs, toObject, wholeNumber, type KeyValue } from "../params.ts";
import { pairOptions } from "./action.ts";

interface TriggerFlags {
  param?: KeyValue[];
  paramFile?: string;
  annotation?: KeyValue[];
  annotationFile?: string;
  feed?: string;
}

export function triggerCommand(): Command {
  const trigger = new Command("trigger").description("work with triggers");

  for (const verb of ["create", "update"] as const) {
    const cmd = trigger.command(`${verb} <name>`).description(verb === "create" ? "create a trigger (with --feed: and register it with a feed)" : "update a trigger's parameters or annotations");
    if (verb === "create") cmd.option("-f, --feed <action>", "the feed action that fires it, e.g. /whisk.system/alarms/alarm (its parameters: -p)");
    pairOptions(cmd).action(async (name: string, flags: TriggerFlags, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const params = await gatherPairs(flags.param, flags.paramFile, "-P");
      let annotations = await gatherPairs(flags.annotation, flags.annotationFile, "-A");
      if (flags.feed) {
        const feed = parseName(flags.feed, client.namespace);
        annotations = [...(annotations ?? []).filter((a) => a.key !== "feed"), { key: "feed", value: feed.qualified }];
        // The trigger keeps no parameters: they are the feed's (as wsk does).
        const res = await client.put(entityPath(client, "triggers", target), { body: { annotations }, entity: "trigger" });
        try {
          await withProgress(`registering ${target.qualified} with feed ${feed.qualified}`, () => invokeFeed(client, feed, "CREATE", target, toObject(params)));
        } catch (err) {
          await client.delete(entityPath(client, "triggers", target), { accept: [404] }).catch(() => undefined);
          throw new CliError(`the feed ${feed.qualified} refused the trigger, so it was not created: ${(err as Error).message}`, 1, feedHint(err));
        }
        if (jsonOf(command)) printJson(res.body);
        else console.log(`ok: created trigger ${target.qualified} with feed ${feed.qualified}`);
        return;
      }
      const body: Record<string, unknown> = {};
      if (params) body.parameters = params;
      if (annotations) body.annotations = annotations;
      const res = await client.put(entityPath(client, "triggers", target), { body, query: verb === "update" ? { overwrite: true } : undefined, entity: "trigger" });
      if (jsonOf(command)) printJson(res.body);
      else console.log(`ok: ${verb}d trigger ${target.qualified}`);
    });
  }

  trigger
    .command("get <name>")
    .description("a trigger's properties")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const { body } = await client.get(entityPath(client, "triggers", target), { entity: "trigger" });
      if (!jsonOf(command)) console.log(`ok: got trigger ${target.qualified}`);
      printJson(body);
    });

  trigger
    .command("list [namespace]")
    .alias("ls")
    .description("the triggers of the namespace")
    .option("--limit <n>", "at most n", wholeNumber("--limit"))
    .option("--skip <n>", "skip the first n", wholeNumber("--skip"))
    .action(async (ns: string | undefined, flags: { limit?: number; skip?: number }, command: Command) => {
      const client = await clientOf(command);
      const { body } = await client.get(client.ns("triggers", ns?.replace(/\//g, "") || client.namespace), { query: { limit: flags.limit, skip: flags.skip } });
      if (jsonOf(command)) return printJson(body);
      printTable(["trigger", "feed", "updated"], (body as any[]).map((t) => [`/${t.namespace}/${t.name}`, annotationOf(t, "feed"), formatTime(t.updated)]), "(no triggers)");
    });

  trigger
    .command("delete <name>")
    .description("delete a trigger (and unregister it from its feed)")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const { body: existing } = await client.get(entityPath(client, "triggers", target), { entity: "trigger" });
      const feedName = annotationOf(existing, "feed");
      let feedFailure: string | undefined;
      if (typeof feedName === "string") {
        try {
          await withProgress(`unregistering ${target.qualified} from feed ${feedName}`, () => invokeFeed(client, parseName(feedName, client.namespace), "DELETE", target, {}));
        } catch (err) {
          // The trigger still goes (the platform drops its feed registration with it); say so.
          feedFailure = (err as Error).message;
        }
      }
      const res = await client.delete(entityPath(client, "triggers", target), { entity: "trigger" });
      if (feedFailure) console.error(`warning: the feed ${feedName} failed to unregister the trigger: ${feedFailure}`);
      if (jsonOf(command)) printJson(res.body);
      else console.log(`ok: deleted trigger ${target.qualified}`);
    });

  const fire = trigger.command("fire <name>").description("fire a trigger with parameters: its active rules invoke their actions");
  pairOptions(fire, false).action(async (name: string, flags: TriggerFlags, command: Command) => {
    const client = await clientOf(command);
    const target = parseName(name, client.namespace);
    const params = toObject(await gatherPairs(flags.param, flags.paramFile, "-P"));
    const res = await client.post(entityPath(client, "triggers", target), { body: params, entity: "trigger", accept: [204] });
    if (jsonOf(command)) return printJson(res.body ?? {});
    if (res.body?.activationId) console.log(`ok: triggered ${target.qualified} with id ${res.body.activationId}`);
    else console.log(`ok: triggered ${target.qualified}: no active rule, nothing ran`);
  });

  return trigger;
}

/** Invokes a feed action blocking, as wsk does; a failed activation is an error. */
async function invokeFeed(client: Client, feed: EntityName, event: "CREATE" | "DELETE", trigger: EntityName, params: Record<string, unknown>) {
  const res = await client.post(entityPath(client, "actions", feed), {
    body: { ...params, lifecycleEvent: event, triggerName: trigger.qualified, authKey: client.auth },
    query: { blocking: true },
    entity: "action",
    accept: [502],
  });
  if (res.status === 502 || res.body?.response?.success === false) {
    const error = res.body?.response?.result?.error;
    throw new CliError(typeof error === "string" ? error : JSON.stringify(error ?? res.body));
  }
  return res.body;
}

function feedHint(err: unknown): string {
  if (err instanceof ApiError && err.status === 404) return "no such feed action: see vespid package get /whisk.system/alarms";
  return "check the feed's parameters: vespid action get <feed> --summary";
}

// `vespid rule create|update|get|list|delete|enable|disable|status`: rules link a trigger to an
// action; a fired trigger invokes the actions of its active rules.
import { Command } from "commander";
import { entityPath, parseName } from "../client.ts";
import { clientOf, jsonOf } from "../context.ts";
import { printJson, printTable } from "../output.ts";
import { wholeNumber } from "../params.ts";

export function ruleCommand(): Command {
  const rule = new Command("rule").description("work with rules");

  for (const verb of ["create", "update"] as const) {
    rule
      .command(`${verb} <name> <trigger> <action>`)
      .description(verb === "create" ? "create a rule: firing the trigger invokes the action" : "point a rule at another trigger or action")
      .action(async (name: string, trigger: string, action: string, _flags: unknown, command: Command) => {
        const client = await clientOf(command);
        const target = parseName(name, client.namespace);
        const body = { trigger: parseName(trigger, client.namespace).qualified, action: parseName(action, client.namespace).qualified };
        const res = await client.put(entityPath(client, "rules", target), { body, query: verb === "update" ? { overwrite: true } : undefined, entity: "rule" });
        if (jsonOf(command)) printJson(res.body);
        else console.log(`ok: ${verb}d rule ${target.qualified}`);
      });
  }

  rule
    .command("get <name>")
    .description("a rule's trigger, action and status")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const { body } = await client.get(entityPath(client, "rules", target), { entity: "rule" });
      if (!jsonOf(command)) console.log(`ok: got rule ${target.qualified}`);
      printJson(body);
    });

  rule
    .command("status <name>")
    .description("whether a rule is active")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const { body } = await client.get(entityPath(client, "rules", target), { entity: "rule" });
      if (jsonOf(command)) printJson({ name: body.name, status: body.status });
      else console.log(`ok: rule ${target.qualified} is ${body.status}`);
    });

  for (const [verb, status] of [["enable", "active"], ["disable", "inactive"]] as const) {
    rule
      .command(`${verb} <name>`)
      .description(`make a rule ${status}`)
      .action(async (name: string, _flags: unknown, command: Command) => {
        const client = await clientOf(command);
        const target = parseName(name, client.namespace);
        const res = await client.post(entityPath(client, "rules", target), { body: { status }, entity: "rule" });
        if (jsonOf(command)) printJson(res.body ?? {});
        else console.log(`ok: ${verb}d rule ${target.qualified}`);
      });
  }

  rule
    .command("list [namespace]")
    .alias("ls")
    .description("the rules of the namespace")
    .option("--limit <n>", "at most n", wholeNumber("--limit"))
    .option("--skip <n>", "skip the first n", wholeNumber("--skip"))
    .action(async (ns: string | undefined, flags: { limit?: number; skip?: number }, command: Command) => {
      const client = await clientOf(command);
      const { body } = await client.get(client.ns("rules", ns?.replace(/\//g, "") || client.namespace), { query: { limit: flags.limit, skip: flags.skip } });
      if (jsonOf(command)) return printJson(body);
      const path = (e: { path?: string; name?: string }) => (e ? `/${e.path}/${e.name}` : "-");
      printTable(["rule", "status", "trigger", "action"], (body as any[]).map((r) => [`/${r.namespace}/${r.name}`, r.status, path(r.trigger), path(r.action)]), "(no rules)");
    });

  rule
    .command("delete <name>")
    .description("delete a rule")
    .option("--disable", "disable it first (accepted for wsk compatibility; a delete needs no disable here)")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const res = await client.delete(entityPath(client, "rules", target), { entity: "rule" });
      if (jsonOf(command)) printJson(res.body);
      else console.log(`ok: deleted rule ${target.qualified}`);
    });

  return rule;
}

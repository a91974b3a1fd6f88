// `vespid namespace list|get`: the namespaces the key may use (exactly its own), and what one holds.
import { Command } from "commander";
import { clientOf, jsonOf } from "../context.ts";
import { printJson, printTable } from "../output.ts";

const COLLECTIONS = ["packages", "actions", "triggers", "rules"] as const;

export function namespaceCommand(): Command {
  const namespace = new Command("namespace").description("work with namespaces");

  namespace
    .command("list")
    .alias("ls")
    .description("the namespaces your key may use")
    .action(async (_flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const { body } = await client.get("namespaces");
      if (jsonOf(command)) return printJson(body);
      printTable(["namespace"], (body as string[]).map((n) => [n]), "(no namespaces)");
    });

  namespace
    .command("get [namespace]")
    .description("the packages, actions, triggers and rules of a namespace (default: yours)")
    .action(async (ns: string | undefined, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const name = ns?.replace(/\//g, "") || client.namespace;
      const lists = await Promise.all(COLLECTIONS.map((c) => client.get(client.ns(c, name), { query: { limit: 200 } }).then((r) => r.body as any[])));
      const entities = Object.fromEntries(COLLECTIONS.map((c, i) => [c, lists[i]]));
      if (jsonOf(command)) return printJson(entities);
      console.log(`Entities in namespace: ${name === "_" ? "default" : name}`);
      printTable(
        ["type", "name"],
        COLLECTIONS.flatMap((c, i) => lists[i]!.map((e) => [c.slice(0, -1), `/${e.namespace}/${e.name}`])),
        "(empty)",
      );
    });

  return namespace;
}

// `vespid package create|update|get|list|delete|bind`: packages group actions and give them
// default parameters; a binding is a package standing for another (shared) one, with its own
// parameters.
import { Command, Option } from "commander";
import { entityPath, parseName } from "../client.ts";
import { clientOf, jsonOf } from "../context.ts";
import { UsageError } from "../errors.ts";
import { printJson, printTable } from "../output.ts";
import { gatherPairs, wholeNumber, type KeyValue } from "../params.ts";
import { pairOptions } from "./action.ts";

interface PackageFlags {
  param?: KeyValue[];
  paramFile?: string;
  annotation?: KeyValue[];
  annotationFile?: string;
  shared?: string;
}

export function packageCommand(): Command {
  const pkg = new Command("package").description("work with packages");

  for (const verb of ["create", "update"] as const) {
    const cmd = pkg
      .command(`${verb} <name>`)
      .description(verb === "create" ? "create a package" : "update a package's parameters, annotations or sharing")
      .addOption(new Option("--shared <yes|no>", "publish the package so other namespaces can use it").choices(["yes", "no", "true", "false"]));
    pairOptions(cmd).action(async (name: string, flags: PackageFlags, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      if (target.path.includes("/")) throw new UsageError(`"${name}" is not a package name: packages do not nest`);
      const body: Record<string, unknown> = {};
      const params = await gatherPairs(flags.param, flags.paramFile, "-P");
      const annotations = await gatherPairs(flags.annotation, flags.annotationFile, "-A");
      if (params) body.parameters = params;
      if (annotations) body.annotations = annotations;
      if (flags.shared !== undefined) body.publish = flags.shared === "yes" || flags.shared === "true";
      const res = await client.put(entityPath(client, "packages", target), { body, query: verb === "update" ? { overwrite: true } : undefined, entity: "package" });
      if (jsonOf(command)) printJson(res.body);
      else console.log(`ok: ${verb}d package ${target.qualified}`);
    });
  }

  const bind = pkg.command("bind <package> <name>").description("bind a package (your own or a shared /namespace/package) under a new name, with its own parameters");
  pairOptions(bind).action(async (source: string, name: string, flags: PackageFlags, command: Command) => {
    const client = await clientOf(command);
    const bound = parseName(source, client.namespace);
    const target = parseName(name, client.namespace);
    const [, ns, pkgName] = bound.qualified.split("/");
    const body: Record<string, unknown> = { binding: { namespace: ns, name: pkgName } };
    const params = await gatherPairs(flags.param, flags.paramFile, "-P");
    const annotations = await gatherPairs(flags.annotation, flags.annotationFile, "-A");
    if (params) body.parameters = params;
    if (annotations) body.annotations = annotations;
    const res = await client.put(entityPath(client, "packages", target), { body, entity: "package" });
    if (jsonOf(command)) printJson(res.body);
    else console.log(`ok: created binding ${target.qualified} to ${bound.qualified}`);
  });

  pkg
    .command("get <name>")
    .description("a package, with its actions and feeds")
    .option("-s, --summary", "only its name, parameters and actions")
    .action(async (name: string, flags: { summary?: boolean }, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const { body } = await client.get(entityPath(client, "packages", target), { entity: "package" });
      if (jsonOf(command)) return printJson(body);
      if (flags.summary) {
        console.log(`package /${body.namespace}/${body.name}${body.binding?.name ? ` (binding to /${body.binding.namespace}/${body.binding.name})` : ""}`);
        console.log(`  parameters  ${(body.parameters ?? []).map((p: KeyValue) => p.key).join(", ") || "-"}`);
        for (const a of body.actions ?? []) console.log(`  action      /${body.namespace}/${body.name}/${a.name}`);
        for (const f of body.feeds ?? []) console.log(`  feed        /${body.namespace}/${body.name}/${f.name}`);
        return;
      }
      console.log(`ok: got package ${target.qualified}`);
      printJson(body);
    });

  pkg
    .command("list [namespace]")
    .alias("ls")
    .description("the packages of the namespace, or the shared packages of /namespace")
    .option("--limit <n>", "at most n", wholeNumber("--limit"))
    .option("--skip <n>", "skip the first n", wholeNumber("--skip"))
    .action(async (ns: string | undefined, flags: { limit?: number; skip?: number }, command: Command) => {
      const client = await clientOf(command);
      const { body } = await client.get(client.ns("packages", ns?.replace(/\//g, "") || client.namespace), { query: { limit: flags.limit, skip: flags.skip } });
      if (jsonOf(command)) return printJson(body);
      printTable(
        ["package", "shared", "binding"],
        (body as any[]).map((p) => [`/${p.namespace}/${p.name}`, p.publish ? "shared" : "private", p.binding?.name ? `/${p.binding.namespace}/${p.binding.name}` : ""]),
        "(no packages)",
      );
    });

  pkg
    .command("delete <name>")
    .description("delete a package (it must hold no actions)")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const res = await client.delete(entityPath(client, "packages", target), { entity: "package" });
      if (jsonOf(command)) printJson(res.body);
      else console.log(`ok: deleted package ${target.qualified}`);
    });

  return pkg;
}

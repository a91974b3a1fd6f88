// `vespid property set|get|unset`: the API host, key and namespace in the user's properties file
// (cli/config.ts says where, and what overrides it).
import { Command } from "commander";
import { PROPERTIES, normalizeHost, propertiesFile, readProperties, resolveConfig, writeProperties, type Property } from "../config.ts";
import { globalsOf, jsonOf } from "../context.ts";
import { UsageError } from "../errors.ts";
import { printFields, printJson } from "../output.ts";

interface PropertyFlags {
  apihost?: string | boolean;
  auth?: string | boolean;
  namespace?: string | boolean;
  all?: boolean;
}

export function propertyCommand(): Command {
  const property = new Command("property").description("set, show or unset the API host, key and namespace");

  property
    .command("set")
    .description("store properties in the properties file")
    .option("--apihost <url>", "the gateway's URL, e.g. http://127.0.0.1:8989")
    .option("-u, --auth <uuid:key>", "the namespace's API key")
    .option("--namespace <name>", "the namespace (default _: the key's own)")
    .action(async (_flags: unknown, command: Command) => {
      // --apihost and --auth are also global flags: read them wherever they were written
      const flags = command.optsWithGlobals() as PropertyFlags;
      const file = propertiesFile();
      const props = await readProperties(file);
      const set: Property[] = [];
      for (const name of Object.keys(PROPERTIES) as Property[]) {
        const value = flags[name];
        if (typeof value !== "string") continue;
        if (!value.trim()) throw new UsageError(`--${name} needs a value (to remove it: vespid property unset --${name})`);
        if (name === "auth" && !/^[^:\s]+:\S+$/.test(value)) throw new UsageError("--auth must be uuid:key, as printed by npm start or vespid admin key create");
        props.set(PROPERTIES[name], name === "apihost" ? normalizeHost(value) : value);
        set.push(name);
      }
      if (set.length === 0) throw new UsageError("give at least one of --apihost, --auth, --namespace");
      await writeProperties(file, props);
      if (jsonOf(command)) printJson({ file, set });
      else for (const name of set) console.log(`ok: ${name} set${name === "auth" ? "" : ` to ${props.get(PROPERTIES[name])}`} (in ${file})`);
    });

  property
    .command("unset")
    .description("remove properties from the properties file")
    .option("--apihost", "the API host")
    .option("-u, --auth", "the API key")
    .option("--namespace", "the namespace")
    .action(async (_flags: unknown, command: Command) => {
      const flags = command.opts() as PropertyFlags;
      const names = (Object.keys(PROPERTIES) as Property[]).filter((n) => flags[n]);
      if (names.length === 0) throw new UsageError("give at least one of --apihost, --auth, --namespace");
      const file = propertiesFile();
      const props = await readProperties(file);
      for (const n of names) props.delete(PROPERTIES[n]);
      await writeProperties(file, props);
      if (jsonOf(command)) printJson({ file, unset: names });
      else for (const n of names) console.log(`ok: ${n} unset (in ${file})`);
    });

  property
    .command("get")
    .description("the values in force, and where each comes from")
    .option("--apihost", "only the API host")
    .option("-u, --auth", "only the API key")
    .option("--namespace", "only the namespace")
    .option("--all", "all (the default)")
    .action(async (_flags: unknown, command: Command) => {
      const flags = command.opts() as PropertyFlags;
      const globals = globalsOf(command);
      // The global --apihost/--auth are values to use, not "show only": property get's own flags are booleans.
      const config = await resolveConfig({ apihost: typeof globals.apihost === "string" ? globals.apihost : undefined, auth: typeof globals.auth === "string" ? globals.auth : undefined });
      const values: Record<Property, string | undefined> = { apihost: config.apihost, auth: config.auth, namespace: config.namespace };
      const only = (Object.keys(PROPERTIES) as Property[]).filter((n) => flags[n] === true);
      const shown = only.length > 0 && !flags.all ? only : (Object.keys(PROPERTIES) as Property[]);
      if (jsonOf(command)) return printJson({ file: config.file, ...Object.fromEntries(shown.map((n) => [n, { value: values[n] ?? null, source: config.sources[n] ?? null }])) });
      const label: Record<Property, string> = { apihost: "whisk API host", auth: "whisk auth", namespace: "whisk namespace" };
      printFields(shown.map((n) => [label[n], values[n] === undefined ? "(not set)" : `${values[n]}${config.sources[n] ? `   [${config.sources[n]}]` : ""}`]));
      if (!only.length || flags.all) {
        console.log(`properties file   ${config.file}`);
        if (config.sources.apihost === "local platform") console.log("(no host or key configured: using the platform started with npm start in this directory, .vespid/auth.key)");
      }
    });

  return property;
}

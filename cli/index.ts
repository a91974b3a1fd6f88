// `vespid <entity> <verb> …`: wsk's everyday verbs against a running Vespid, parsed by commander.
// One module per entity under cli/commands; this file assembles them, adds the global flags and
// turns every failure into a message, a hint and an exit code (cli/errors.ts).
import { Command, CommanderError, Option } from "commander";
import { actionCommand } from "./commands/action.ts";
import { activationCommand } from "./commands/activation.ts";
import { apiCommand } from "./commands/api.ts";
import { namespaceCommand } from "./commands/namespace.ts";
import { packageCommand } from "./commands/package.ts";
import { propertyCommand } from "./commands/property.ts";
import { ruleCommand } from "./commands/rule.ts";
import { triggerCommand } from "./commands/trigger.ts";
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./errors.ts";
import { printError } from "./output.ts";
import { joinPairs } from "./params.ts";


const FOOTER = `
Configuration: vespid property set --apihost URL --auth uuid:key (stored in ~/.vespidprops or
$VESPID_CONFIG_FILE; __OW_API_HOST, __OW_API_KEY and __OW_NAMESPACE override it; with nothing set,
a platform started with npm start in this directory is used).
Exit codes: 0 ok, 1 the API or the action failed, 2 wrong usage.`;

function buildProgram(): Command {
  const program = new Command("vespid")
    .description("Vespid's command line: wsk's verbs for actions, activations, triggers, rules, APIs and packages")
    .enablePositionalOptions()
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", FOOTER);
  addGlobalOptions(program);
  for (const make of [propertyCommand, actionCommand, activationCommand, triggerCommand, ruleCommand, apiCommand, packageCommand, namespaceCommand]) {
    // `vespid --help` shows the platform's usage (bin/vespid.ts), so each entity's help carries this
    program.addCommand(make().addHelpText("after", FOOTER));
  }
  // Global flags on every leaf command too, so they work after the verb as in wsk
  // (`vespid action list --json`); `property` handles --apihost/--auth itself.
  for (const entity of program.commands) {
    for (const leaf of entity.commands) {
      if (entity.name() === "property") leaf.addOption(new Option("--json", "print JSON"));
      else addGlobalOptions(leaf);
    }
  }
  return program;
}

function addGlobalOptions(cmd: Command): void {
  cmd
    .option("--apihost <url>", "the gateway's URL (overrides the properties and __OW_API_HOST)")
    .option("-u, --auth <uuid:key>", "the API key (overrides the properties and __OW_API_KEY)")
    .option("-i, --insecure", "skip TLS certificate checks (a self-signed https proxy)")
    .option("--json", "print the API's JSON (for scripts)");
}

/** Runs `vespid <argv>` (argv without node and script); returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  // Errors come back as exceptions, not process.exit, so they map to our exit codes here.
  program.exitOverride();
  for (const entity of program.commands) {
    entity.exitOverride();
    for (const leaf of entity.commands) leaf.exitOverride();
  }
  try {
    await program.parseAsync(joinPairs(argv), { from: "user" });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // asked-for help is a success; help shown for a missing verb and every parse error (commander
      // has printed it) are usage errors
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return EXIT_OK;
      if (err.code === "commander.executeSubCommandAsync") return EXIT_FAILURE;
      return EXIT_USAGE;
    }
    printError(err);
    return err instanceof CliError ? err.exitCode : EXIT_FAILURE;
  }
}

// The first words that make `vespid` the client (cli/index.ts) rather than a platform component;
// apart so that bin/vespid.ts can tell without loading the client.
export const USER_COMMANDS = ["property", "action", "activation", "trigger", "rule", "api", "package", "namespace"] as const;

/** Global flags that may come before the verb (`vespid --json action list`), with whether they take a value. */
const LEADING_FLAGS: Record<string, boolean> = { "--apihost": true, "-u": true, "--auth": true, "-i": false, "--insecure": false, "--json": false };

/** Whether `argv` (without node and script) is a client command. */
export function isUserCommand(argv: string[]): boolean {
  let i = 0;
  while (i < argv.length && argv[i]! in LEADING_FLAGS) i += LEADING_FLAGS[argv[i]!] ? 2 : 1;
  return (USER_COMMANDS as readonly string[]).includes(argv[i] ?? "");
}

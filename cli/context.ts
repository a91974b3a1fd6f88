// What every command handler needs from the command line: the client (from the global flags and
// the configuration) and whether to print JSON.
import type { Command } from "commander";
import { Client } from "./client.ts";
import { resolveConfig, type GlobalFlags } from "./config.ts";

export interface Globals extends GlobalFlags {
  json?: boolean;
}

export const globalsOf = (cmd: Command): Globals => cmd.optsWithGlobals() as Globals;

export async function clientOf(cmd: Command): Promise<Client> {
  const globals = globalsOf(cmd);
  // -i only skips certificate checks, for this process only: fetch has no per-request switch.
  if (globals.insecure) process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  return new Client(await resolveConfig(globals));
}

export const jsonOf = (cmd: Command): boolean => Boolean(globalsOf(cmd).json);

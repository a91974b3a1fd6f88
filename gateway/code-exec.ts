// How a PUT gives an action's code, as OpenWhisk reads it: `exec.binary` (the code is a base64 zip;
// when absent, OpenWhisk's guess: code starting with "UE", base64 of a zip's "PK") and `exec.main`
// (the function to call). Zips and another main are JS-only; the runner unpacks and checks them.
import type { z } from "zod";
import { runtimeOf, type CodeExec } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";

export interface CodeSource {
  binary: boolean;
  main?: string;
}

export function codeSource(exec: z.infer<typeof CodeExec>): CodeSource {
  const js = runtimeOf(exec.kind) === "nodejs";
  if (!js && exec.binary) throw new ApiError(400, `exec.binary: only JavaScript (nodejs) actions can be zip archives; a ${exec.kind} action is one source file`);
  if (!js && exec.main !== undefined) throw new ApiError(400, `exec.main: a ${exec.kind} action always starts at vespid_main`);
  const binary = exec.binary ?? (js && exec.code.trim().startsWith("UE"));
  return { binary, ...(exec.main !== undefined && { main: exec.main }) };
}

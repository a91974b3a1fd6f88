// `vespid action create|update|get|list|delete|invoke`, with wsk's flags.
import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { Command, Option } from "commander";
import { entityPath, parseName } from "../client.ts";
import { clientOf, jsonOf } from "../context.ts";
import { CliError, EXIT_FAILURE, UsageError } from "../errors.ts";
import { annotationOf, printJson, printTable, withProgress } from "../output.ts";
import { collectPair, gatherPairs, toObject, wholeNumber, type KeyValue } from "../params.ts";

/** The kind a file's extension means when --kind is not given. */
const KIND_BY_EXTENSION: Record<string, string> = { ".js": "nodejs:20", ".mjs": "nodejs:20", ".cjs": "nodejs:20", ".c": "c", ".zip": "nodejs:20" };

interface ActionFlags {
  kind?: string;
  param?: KeyValue[];
  paramFile?: string;
  annotation?: KeyValue[];
  annotationFile?: string;
  timeout?: number;
  memory?: number;
  logsize?: number;
  web?: string;
  webSecure?: string;
  sequence?: string;
  main?: string;
}

export function actionCommand(): Command {
  const action = new Command("action").description("work with actions");

  for (const verb of ["create", "update"] as const) {
    const cmd = action
      .command(`${verb} <name> [artifact]`)
      .description(verb === "create" ? "create an action from a file (.js, .c, .zip) or a --sequence" : "update an action: only what is given changes")
      .option("--kind <kind>", "nodejs:20, nodejs or c (default: from the file's extension)")
      .option("--main <name>", "the function to call (JavaScript; default main)")
      .option("--sequence <actions>", "a sequence of these actions, comma-separated (no artifact)");
    pairOptions(cmd)
      .option("-t, --timeout <ms>", "time limit in milliseconds", wholeNumber("--timeout", 1))
      .option("-m, --memory <MB>", "memory limit in MiB", wholeNumber("--memory", 1))
      .option("-l, --logsize <MB>", "log size limit in MB", wholeNumber("--logsize"))
      .addOption(new Option("--web <value>", "expose as a web action").choices(["true", "false", "yes", "no", "raw"]))
      .option("--web-secure <secret>", "require this secret in X-Require-Whisk-Auth (true: a random one, false: none)")
      .action(async (name: string, artifact: string | undefined, flags: ActionFlags, command: Command) => {
        const client = await clientOf(command);
        const target = parseName(name, client.namespace);
        const body = await actionBody(target.namespace ?? client.namespace, artifact, flags, verb === "update");
        const compiling = body.exec && body.exec.kind !== "sequence" ? ` (building its ${body.exec.kind === "c" ? "C code" : "code"})` : "";
        const res = await withProgress(`${verb === "create" ? "creating" : "updating"} action ${target.qualified}${compiling}`, () =>
          client.put(entityPath(client, "actions", target), { body, query: verb === "update" ? { overwrite: true } : undefined, entity: "action" }),
        );
        if (jsonOf(command)) printJson(res.body);
        else console.log(`ok: ${verb}d action ${target.qualified}`);
      });
  }

  action
    .command("get <name>")
    .description("an action's properties (with its code)")
    .option("--url", "only the action's web URL")
    .option("-s, --summary", "only its name, kind, limits and parameters")
    .action(async (name: string, flags: { url?: boolean; summary?: boolean }, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const { body } = await client.get(entityPath(client, "actions", target), { entity: "action" });
      if (flags.url) {
        const [ns, pkg] = String(body.namespace).split("/");
        const url = `${client.apihost}/api/v1/web/${ns}/${pkg ?? "default"}/${body.name}`;
        if (jsonOf(command)) printJson({ url });
        else console.log(url);
      } else if (flags.summary) {
        const summary = { name: `/${body.namespace}/${body.name}`, version: body.version, kind: body.exec?.kind, limits: body.limits, parameters: (body.parameters ?? []).map((p: KeyValue) => p.key) };
        if (jsonOf(command)) printJson(summary);
        else {
          console.log(`action ${summary.name} (version ${summary.version}, ${summary.kind})`);
          console.log(`  limits      ${JSON.stringify(summary.limits)}`);
          console.log(`  parameters  ${summary.parameters.join(", ") || "-"}`);
        }
      } else if (jsonOf(command)) printJson(body);
      else {
        console.log(`ok: got action ${target.qualified}`);
        printJson(body);
      }
    });

  action
    .command("list [namespace|package]")
    .alias("ls")
    .description("the actions of the namespace, of /namespace or of a package")
    .option("--limit <n>", "at most n actions", wholeNumber("--limit"))
    .option("--skip <n>", "skip the first n", wholeNumber("--skip"))
    .action(async (scope: string | undefined, flags: { limit?: number; skip?: number }, command: Command) => {
      const client = await clientOf(command);
      let actions: any[];
      if (scope && !/^\/[^/]+\/?$/.test(scope)) {
        // a package: its actions come with the package
        const pkg = parseName(scope, client.namespace);
        const { body } = await client.get(entityPath(client, "packages", pkg), { entity: "package" });
        actions = (body.actions ?? []).map((a: any) => ({ ...a, namespace: `${body.namespace}/${body.name}` }));
      } else {
        const ns = scope ? scope.replace(/\//g, "") : client.namespace;
        actions = (await client.get(client.ns("actions", ns), { query: { limit: flags.limit, skip: flags.skip } })).body;
      }
      if (jsonOf(command)) return printJson(actions);
      printTable(
        ["action", "kind", "version"],
        actions.map((a) => [`/${a.namespace}/${a.name}`, annotationOf(a, "exec"), a.version]),
        "(no actions)",
      );
    });

  action
    .command("delete <name>")
    .description("delete an action")
    .action(async (name: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const target = parseName(name, client.namespace);
      const res = await client.delete(entityPath(client, "actions", target), { entity: "action" });
      if (jsonOf(command)) printJson(res.body);
      else console.log(`ok: deleted action ${target.qualified}`);
    });

  const invoke = action
    .command("invoke <name>")
    .description("invoke an action (asynchronously unless -b or -r)")
    .option("-b, --blocking", "wait for the activation and print it")
    .option("-r, --result", "wait and print only the result (implies -b)");
  pairOptions(invoke, false).action(async (name: string, flags: { blocking?: boolean; result?: boolean; param?: KeyValue[]; paramFile?: string }, command: Command) => {
    const client = await clientOf(command);
    const target = parseName(name, client.namespace);
    const params = toObject(await gatherPairs(flags.param, flags.paramFile, "-P"));
    const blocking = Boolean(flags.blocking || flags.result);
    const res = await withProgress(blocking ? `waiting for ${target.qualified}` : `invoking ${target.qualified}`, () =>
      client.post(entityPath(client, "actions", target), { body: params, query: { blocking: blocking || undefined, result: flags.result || undefined }, entity: "action", accept: [202, 502] }),
    );
    printInvocation(target.qualified, res, blocking, Boolean(flags.result), jsonOf(command));
  });

  return action;
}

/** -p/-P (and, for entities, -a/-A) on a command. */
export function pairOptions(cmd: Command, annotations = true): Command {
  cmd
    .option("-p, --param <key value>", "a parameter (value parsed as JSON when it parses, else a string); repeatable", collectPair)
    .option("-P, --param-file <file>", "parameters from a JSON object in a file");
  if (annotations) {
    cmd
      .option("-a, --annotation <key value>", "an annotation (value parsed as JSON when it parses); repeatable", collectPair)
      .option("-A, --annotation-file <file>", "annotations from a JSON object in a file");
  }
  return cmd;
}

/** The PUT body of an action from the command line; on update, only what was given. */
async function actionBody(namespace: string, artifact: string | undefined, flags: ActionFlags, update: boolean) {
  const body: Record<string, any> = {};
  if (flags.sequence !== undefined) {
    if (artifact) throw new UsageError("give either an artifact file or --sequence, not both");
    const components = flags.sequence.split(",").map((s) => s.trim()).filter(Boolean);
    if (components.length === 0) throw new UsageError("--sequence needs action names, e.g. --sequence first,second");
    body.exec = { kind: "sequence", components: components.map((c) => parseName(c, namespace).qualified) };
  } else if (artifact) {
    body.exec = await execOf(artifact, flags.kind, flags.main);
  } else if (!update) {
    throw new UsageError("an action needs code: give a file (hello.js, hello.c, bundle.zip) or --sequence a,b");
  } else if (flags.kind || flags.main) {
    throw new UsageError("--kind and --main need the code too: give the artifact file");
  }

  const params = await gatherPairs(flags.param, flags.paramFile, "-P");
  if (params) body.parameters = params;
  let annotations = await gatherPairs(flags.annotation, flags.annotationFile, "-A");
  const webAnnotations = webAnnotationsOf(flags);
  if (webAnnotations) annotations = [...(annotations ?? []).filter((a) => !webAnnotations.some((w) => w.key === a.key)), ...webAnnotations];
  if (annotations) body.annotations = annotations;

  const limits: Record<string, number> = {};
  if (flags.timeout !== undefined) limits.timeout = flags.timeout;
  if (flags.memory !== undefined) limits.memory = flags.memory;
  if (flags.logsize !== undefined) limits.logs = flags.logsize;
  if (Object.keys(limits).length > 0) body.limits = limits;
  return body;
}

async function execOf(file: string, kindFlag: string | undefined, main: string | undefined) {
  const ext = extname(file).toLowerCase();
  const kind = kindFlag ?? KIND_BY_EXTENSION[ext];
  if (!kind) throw new UsageError(`cannot tell the kind of ${file} from its extension: give --kind nodejs:20 or --kind c`);
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  const binary = ext === ".zip";
  return { kind, code: binary ? data.toString("base64") : data.toString("utf8"), ...(binary && { binary: true }), ...(main && { main }) };
}

/** What wsk's --web and --web-secure set: web-export, raw-http, final and require-whisk-auth. */
function webAnnotationsOf(flags: ActionFlags): KeyValue[] | undefined {
  const out: KeyValue[] = [];
  if (flags.web !== undefined) {
    const on = flags.web !== "false" && flags.web !== "no";
    out.push({ key: "web-export", value: on }, { key: "raw-http", value: flags.web === "raw" }, { key: "final", value: on });
  }
  if (flags.webSecure !== undefined) {
    if (flags.web === "false" || flags.web === "no") throw new UsageError("--web-secure needs a web action: add --web true");
    const secret = flags.webSecure === "true" ? randomInt(1, 2 ** 47) : flags.webSecure === "false" ? false : flags.webSecure;
    out.push({ key: "require-whisk-auth", value: secret });
  }
  return out.length > 0 ? out : undefined;
}

function printInvocation(name: string, res: { status: number; body: any }, blocking: boolean, resultOnly: boolean, json: boolean): void {
  const id = res.body?.activationId;
  if (!blocking || res.status === 202) {
    if (json) printJson(res.body);
    else if (blocking) console.log(`ok: invoked ${name} with id ${id}; it is still running: vespid activation result ${id}`);
    else console.log(`ok: invoked ${name} with id ${id}`);
    return;
  }
  // 502: the action failed (application or developer error); the body is its activation or result.
  if (resultOnly || json) printJson(res.body);
  else {
    console.log(`ok: invoked ${name} with id ${id}`);
    printJson(res.body);
  }
  if (res.status === 502) {
    const why = resultOnly ? res.body?.error : res.body?.response?.result?.error;
    throw new CliError(`the activation failed${why ? `: ${typeof why === "string" ? why : JSON.stringify(why)}` : ""}`, EXIT_FAILURE, id ? `see its logs: vespid activation logs ${id}` : "see its logs: vespid activation logs --last");
  }
}

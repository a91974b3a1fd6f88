// `vespid api create|get|list|delete`: API routes (OpenWhisk's API gateway) mapping
// `{base path}{path}` and an HTTP method to a web action. Through the route management endpoints
// `wsk api` and the `openwhisk` client use (web/whisk.system/apimgmt/{createApi,getApi,deleteApi}).
import { Command, Option } from "commander";
import { parseName, type Client } from "../client.ts";
import { clientOf, jsonOf } from "../context.ts";
import { UsageError } from "../errors.ts";
import { printJson, printTable } from "../output.ts";

const APIMGMT = "web/whisk.system/apimgmt";
const METHODS = ["get", "post", "put", "delete", "patch", "head", "options"];

export function apiCommand(): Command {
  const api = new Command("api").description("work with API routes (URLs served by web actions)");

  api
    .command("create")
    .argument("<route...>", "[base path] path verb action")
    .description("route VERB {base}{path} to a web action, e.g. vespid api create /club /books get books")
    .option("-n, --apiname <name>", "a name for the API (default: its base path)")
    .addOption(new Option("--response-type <type>", "how the action's result becomes the response").choices(["json", "http", "html", "svg", "text"]).default("json"))
    .action(async (given: string[], flags: { apiname?: string; responseType: string }, command: Command) => {
      // wsk's optional first argument: three words are path, verb and action on the base path "/"
      if (given.length < 3 || given.length > 4) throw new UsageError("api create needs [base path] path verb action, e.g. /club /books get books");
      const [basePath, relPath, verb, action] = given.length === 4 ? given : ["/", ...given];
      if (!METHODS.includes(verb!.toLowerCase())) throw new UsageError(`"${verb}" is not an HTTP method: one of ${METHODS.join(", ")}`);
      const client = await clientOf(command);
      const body = { apidoc: apidocOf(client, basePath!, relPath!, verb!.toLowerCase(), action!, flags.apiname) };
      const res = await client.post(`${APIMGMT}/createApi.http`, { body, query: { responsetype: flags.responseType }, entity: "api" });
      if (jsonOf(command)) return printJson(res.body);
      console.log(`ok: created API ${basePath === "/" ? "" : basePath}${relPath} ${verb!.toUpperCase()} for action ${parseName(action!, client.namespace).qualified}`);
      console.log(`${res.body.value.gwApiUrl}${relPath}`);
    });

  api
    .command("get <base>")
    .description("an API (by base path or name), as a Swagger document")
    .action(async (base: string, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const { body } = await client.get(`${APIMGMT}/getApi.http`, { query: { basepath: base }, entity: "api" });
      const [found] = body.apis ?? [];
      if (!found) throw new UsageError(`no API with base path or name "${base}"`, "see what exists: vespid api list");
      printJson(jsonOf(command) ? body : found.value.apidoc);
    });

  api
    .command("list [base] [path] [verb]")
    .alias("ls")
    .description("the API routes of the namespace (of one base path, path or verb)")
    .action(async (base: string | undefined, path: string | undefined, verb: string | undefined, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const { body } = await client.get(`${APIMGMT}/getApi.http`, { query: { basepath: base, relpath: path, operation: verb?.toLowerCase() }, entity: "api" });
      if (jsonOf(command)) return printJson(body);
      printTable(["action", "verb", "api name", "url"], routesOf(body, path, verb), "(no APIs)");
    });

  api
    .command("delete <base> [path] [verb]")
    .description("delete an API, one of its paths, or one verb of a path")
    .action(async (base: string, path: string | undefined, verb: string | undefined, _flags: unknown, command: Command) => {
      const client = await clientOf(command);
      const res = await client.delete(`${APIMGMT}/deleteApi.http`, { query: { basepath: base, relpath: path, operation: verb?.toLowerCase(), force: true }, entity: "api" });
      if (jsonOf(command)) return printJson(res.body ?? {});
      console.log(`ok: deleted API ${base}${path ?? ""}${verb ? ` ${verb.toUpperCase()}` : ""}`);
    });

  return api;
}

/** The body wsk sends for one route (the gateway derives what it needs from it). */
function apidocOf(client: Client, basePath: string, relPath: string, method: string, action: string, apiName: string | undefined) {
  const name = parseName(action, client.namespace);
  const [, ns = "_", ...rest] = name.qualified.split("/");
  const id = rest.join("/");
  const webPath = rest.length === 1 ? `default/${id}` : id;
  return {
    namespace: client.namespace,
    gatewayBasePath: basePath,
    gatewayPath: relPath,
    gatewayMethod: method,
    id: `API:${client.namespace}:${basePath}`,
    ...(apiName && { apiName }),
    action: { name: id, namespace: ns, backendMethod: method.toUpperCase(), backendUrl: `${client.apihost}/api/v1/web/${ns}/${webPath}.http`, authkey: client.auth },
  };
}

/** One row per route: action, verb, API name, URL. */
function routesOf(body: any, path?: string, verb?: string): string[][] {
  const rows: string[][] = [];
  for (const api of body.apis ?? []) {
    const doc = api.value.apidoc;
    for (const [relPath, ops] of Object.entries<Record<string, any>>(doc.paths ?? {})) {
      if (path && relPath !== path) continue;
      for (const [method, op] of Object.entries(ops)) {
        if (verb && method !== verb.toLowerCase()) continue;
        const x = op["x-openwhisk"] ?? {};
        rows.push([`/${x.namespace}/${x.package ? `${x.package}/` : ""}${x.action}`, method, doc.info?.title ?? "", `${api.value.gwApiUrl}${relPath}`]);
      }
    }
  }
  return rows;
}

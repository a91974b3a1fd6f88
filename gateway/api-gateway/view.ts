// An API as OpenWhisk's route management actions answer it (what `wsk api` and the `openwhisk`
// client's `routes` read): `{id, key, value: {namespace, gwApiActivated, tenantId, gwApiUrl,
// apidoc}}`, where apidoc is a Swagger 2.0 document whose operations carry an `x-openwhisk`
// extension naming the action, and gwApiUrl + an operation's path is the URL serving it.
import { pathParams, type RouteApi } from "./store.ts";

/** Where a namespace's routes are served: `{origin}/api/{namespace}`. */
export const routesUrl = (origin: string, namespace: string): string => `${origin}/api/${encodeURIComponent(namespace)}`;

export function apiUrl(origin: string, api: RouteApi): string {
  return `${routesUrl(origin, api.namespace)}${api.basePath === "/" ? "" : api.basePath}`;
}

export function swaggerOf(origin: string, api: RouteApi): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of api.operations) {
    const { namespace, pkg, name } = op.action;
    const params = pathParams(op.path);
    (paths[op.path] ??= {})[op.method] = {
      operationId: `${op.method}_${op.path}`,
      "x-openwhisk": {
        namespace,
        package: pkg ?? "",
        action: name,
        url: `${origin}/api/v1/web/${encodeURIComponent(namespace)}/${encodeURIComponent(pkg ?? "default")}/${encodeURIComponent(name)}.${op.responseType}`,
      },
      ...(params.length > 0 && {
        parameters: params.map((p) => ({ name: p, in: "path", description: `Default description for '${p}'`, required: true, type: "string" })),
      }),
      responses: { default: { description: "Default response" } },
    };
  }
  return { swagger: "2.0", info: { title: api.name, version: "1.0.0" }, basePath: api.basePath, paths };
}

export function cliApiOf(origin: string, api: RouteApi) {
  const id = `API:${api.namespace}:${api.basePath}`;
  return {
    id,
    key: id,
    value: { namespace: api.namespace, gwApiActivated: true, tenantId: api.namespace, gwApiUrl: apiUrl(origin, api), apidoc: swaggerOf(origin, api) },
  };
}

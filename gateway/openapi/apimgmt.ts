// The OpenAPI operations of the route management endpoints (gateway/routes/apimgmt.ts).
//
// Not described, on purpose: the web action URLs (/api/v1/web/{namespace}/{package}/{action}.{ext}
// and anything after it) and the API route URLs (/api/{namespace}/{base path}/{path}). They answer
// every method, their last segment carries an extension or a whole path of its own, and their
// request and response bodies are whatever the action reads and returns, none of which OpenAPI can
// state as one operation; test/openapi.test.ts leaves routes of method ALL out for that reason.
// The README's "Web actions and API routes" documents them.
import { z } from "zod";
import { CreateApiBody, CreateApiQuery, DeleteApiQuery, GetApiQuery } from "../routes/apimgmt.ts";
import type { Operation } from "./document.ts";

const CliApi = z.object({
  id: z.string(),
  key: z.string(),
  value: z.object({
    namespace: z.string(),
    gwApiActivated: z.boolean(),
    tenantId: z.string(),
    gwApiUrl: z.string().describe("the API's URL: an operation is served at gwApiUrl + its path"),
    apidoc: z.record(z.string(), z.unknown()).describe("the API as a Swagger 2.0 document; each operation's x-openwhisk names its action"),
  }),
});

const PREFIX = "/api/v1/web/whisk.system/apimgmt";
const auth = { 401: ["no valid API key (Basic credentials, or for createApi the apidoc's action.authkey)"] } as const;

/** Each endpoint answers with and without `.http`, as the `openwhisk` client and `wsk` name them differently. */
function both(op: Omit<Operation, "path"> & { name: string }): Operation[] {
  const { name, ...rest } = op;
  return [`${PREFIX}/${name}`, `${PREFIX}/${name}.http`].map((path) => ({ ...rest, path }));
}

export const apiMgmtOperations: Operation[] = [
  ...both({
    method: "post",
    name: "createApi",
    summary: "Create an API route (wsk api create): a method and path under a base path, mapped to a web action of the caller's namespace",
    tag: "API routes",
    query: CreateApiQuery,
    body: CreateApiBody,
    responses: {
      200: ["the API with the new route", CliApi],
      400: ["bad apidoc (the message names the field), response type, or an action that is not a web action, or too many routes"],
      403: ["the action is another namespace's"],
      404: ["the action does not exist"],
      409: ["changed meanwhile, repeatedly"],
      413: ["body too large"],
      ...auth,
    },
  }),
  ...both({
    method: "get",
    name: "getApi",
    summary: "The caller's APIs (wsk api list / get)",
    tag: "API routes",
    query: GetApiQuery,
    responses: { 200: ["the APIs", z.object({ apis: z.array(CliApi) })], 400: ["bad query"], ...auth },
  }),
  ...both({
    method: "delete",
    name: "deleteApi",
    summary: "Delete an API, one of its paths, or one method of a path (wsk api delete)",
    tag: "API routes",
    query: DeleteApiQuery,
    responses: { 200: ["deleted", z.object({})], 400: ["bad query"], 404: ["no such API, path or operation"], 409: ["changed meanwhile, repeatedly"], ...auth },
  }),
];

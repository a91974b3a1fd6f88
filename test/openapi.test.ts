// The OpenAPI document and the Swagger UI that shows it, from a running gateway: the document is
// valid OpenAPI 3.1, covers every route the gateway serves, needs no credentials, and /docs loads
// with all its assets from the gateway itself (no CDN).
import test from "ava";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createApp, type GatewayDeps } from "../gateway/app.ts";
import { openApiPath } from "../gateway/openapi/document.ts";
import { startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
test.before(async () => {
  platform = await startPlatform();
});
test.after.always(async () => {
  await platform?.stop();
});

test("the OpenAPI document is served without credentials and validates as OpenAPI 3.1", async (t) => {
  const res = await platform.request("GET", "/api/v1/openapi.json", undefined, {}, { auth: false });
  t.is(res.status, 200);
  t.regex(res.headers["content-type"] ?? "", /application\/json/);
  t.is(res.body.openapi, "3.1.0");
  const result = await new Validator().validate(res.body);
  t.true(result.valid, JSON.stringify(result.errors, null, 2));
  t.deepEqual(res.body.components.securitySchemes.basicAuth, { type: "http", scheme: "basic" });
});

test("every route of the gateway is in the document, with its path parameters", async (t) => {
  const { body: doc } = await platform.request("GET", "/api/v1/openapi.json");
  // The app's own route table: routes are listed without being called, so no deps are needed.
  const app = createApp({} as GatewayDeps);
  const served = new Set<string>();
  for (const route of app.routes) {
    if (route.method === "ALL" || route.path.startsWith("/docs")) continue;
    served.add(`${route.method.toLowerCase()} ${openApiPath(route.path)}`);
  }
  t.true(served.size > 15, `only ${served.size} routes found`);
  const missing = [...served].filter((entry) => {
    const [method, path] = entry.split(" ");
    return !doc.paths[path!]?.[method!];
  });
  t.deepEqual(missing, [], "routes the gateway serves but the document does not describe");
  // And nothing described that is not served (a stale entry misleads clients as much).
  const described = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map((m) => `${m} ${path}`));
  t.deepEqual(described.filter((entry) => !served.has(entry)), []);
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const op of Object.values<any>(ops)) {
      t.deepEqual(op.parameters?.filter((p: any) => p.in === "path").map((p: any) => p.name) ?? [], names, path);
    }
  }
});

test("schemas come from the zod contracts: limits ranges, kinds and statuses are in the document", async (t) => {
  const { body: doc } = await platform.request("GET", "/api/v1/openapi.json");
  const actionPut = doc.components.schemas.ActionPut;
  t.is(actionPut.properties.limits.properties.timeout.minimum, 100);
  t.is(actionPut.properties.limits.properties.timeout.maximum, 300000);
  t.false(actionPut.additionalProperties);
  const activation = doc.components.schemas.Activation;
  t.deepEqual(activation.properties.response.properties.status.enum, ["success", "application error", "action developer error", "whisk internal error"]);
  const invoke = doc.paths["/api/v1/namespaces/{namespace}/actions/{name}"].post;
  t.truthy(invoke.responses["429"].headers["Retry-After"]);
  t.deepEqual(doc.paths["/health"].get.security, []);
});

test("/docs is Swagger UI with every asset served locally", async (t) => {
  const page = await platform.request("GET", "/docs", undefined, {}, { auth: false });
  t.is(page.status, 200);
  t.regex(page.headers["content-type"] ?? "", /text\/html/);
  t.regex(page.body, /SwaggerUIBundle/);
  t.regex(page.body, /\/api\/v1\/openapi\.json/);
  const assets = [...(page.body as string).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  t.true(assets.length >= 3);
  for (const asset of assets) {
    t.true(asset.startsWith("/docs/"), `${asset} must come from the gateway, not a CDN`);
    const res = await fetch(new URL(asset, platform.url));
    t.is(res.status, 200, asset);
    t.true((await res.arrayBuffer()).byteLength > 100, asset);
  }
  const js = await fetch(new URL("/docs/swagger-ui-bundle.js", platform.url));
  t.regex(js.headers.get("content-type") ?? "", /javascript/);
});

test("/docs serves only its own assets", async (t) => {
  for (const path of ["/docs/package.json", "/docs/..%2Fpackage.json", "/docs/index.js", "/docs/%2e%2e%2f%2e%2e%2fpackage.json"]) {
    const res = await platform.request("GET", path, undefined, {}, { auth: false });
    t.is(res.status, 404, path);
    t.truthy(res.body.error, path);
  }
});

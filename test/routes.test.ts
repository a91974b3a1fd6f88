// API gateway routes (issue 9, item 6): the `openwhisk` client's routes.create/get/list/delete
// against the gateway's whisk.system/apimgmt endpoints, the route URL they hand out served with
// plain fetch (path parameters, response types, wrong methods, unknown routes), a second gateway
// serving a route within a second through the KV watch, and bad input naming the field.
import test from "ava";
import openwhisk from "openwhisk";
import { startGateway, type Gateway } from "../gateway/index.ts";
import { createLogger } from "../infra/logger.ts";
import { Admin } from "../admin/namespaces.ts";
import { api, clientFailure, openwhiskClient, startPlatform, type Platform } from "./harness.ts";

let platform: Platform;
/** The client's typings lack routes.get, the name option and lower-case operations, which it takes. */
let ow: { routes: any };
let second: Gateway;
let otherKey: string;
test.before(async () => {
  platform = await startPlatform({ runnerCapacity: 2 });
  ow = openwhiskClient(platform);
  second = await startGateway({ nc: platform.nc, port: 0, host: "127.0.0.1", dataDir: platform.dataDir, logger: createLogger("warn") });
  const web = [{ key: "web-export", value: true }];
  await createAction("book", `function main(p) { return { id: p.id, shelf: p.shelf || null, path: p.__ow_path, method: p.__ow_method, user: p.__ow_user }; }`, web);
  await createAction("books", `function main(p) { return { statusCode: 200, headers: { "content-type": "text/plain" }, body: "all books" }; }`, web);
  await createAction("addbook", `function main(p) { return { statusCode: 201, headers: { "content-type": "application/json" }, body: { added: p.title } }; }`, web);
  await createAction("notweb", "function main(p) { return p; }", []);
  const admin = await Admin.open(platform.nc);
  otherKey = (await admin.createNamespace("other")).apiKey;
});
test.after.always(async () => {
  await second?.close();
  await platform?.stop();
});

async function createAction(name: string, code: string, annotations: Array<{ key: string; value: unknown }>) {
  const res = await platform.request("PUT", api(`actions/${name}`), { exec: { kind: "nodejs", code }, annotations });
  if (res.status !== 200) throw new Error(`creating ${name}: ${JSON.stringify(res.body)}`);
}

const get = (url: string, init: RequestInit = {}) => fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });

test("routes.create/get/list/delete through the openwhisk client, and the route URL served with plain fetch", async (t) => {
  const created: any = await ow.routes.create({ name: "Book Club", basepath: "/club", relpath: "/books/{id}", operation: "GET", action: "book", responsetype: "json" });
  t.like(created, { value: { namespace: "guest", gwApiActivated: true, gwApiUrl: `${platform.url}/api/guest/club` } });
  const op = created.value.apidoc.paths["/books/{id}"].get;
  t.like(op["x-openwhisk"], { namespace: "guest", action: "book", package: "" });
  t.deepEqual(op.parameters.map((p: any) => p.name), ["id"]);
  t.is(created.value.apidoc.info.title, "Book Club");

  // The client's default response type is the .http of the backendUrl it derives.
  await ow.routes.create({ basepath: "/club", relpath: "/books", operation: "get", action: "books" });
  await ow.routes.create({ basepath: "/club", relpath: "/books", operation: "post", action: "/_/addbook" });

  const one = await get(`${created.value.gwApiUrl}/books/42?shelf=top`);
  t.is(one.status, 200);
  t.deepEqual(await one.json(), { id: "42", shelf: "top", path: "/books/42", method: "get", user: "guest" });
  t.truthy(one.headers.get("x-openwhisk-activation-id"));
  const all = await get(`${platform.url}/api/guest/club/books`);
  t.is(all.status, 200);
  t.is(await all.text(), "all books");
  const added = await get(`${platform.url}/api/guest/club/books`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"title":"Dune"}' });
  t.is(added.status, 201);
  t.deepEqual(await added.json(), { added: "Dune" });

  const got: any = await ow.routes.get({ basepath: "/club" });
  t.is(got.apis.length, 1);
  t.deepEqual(Object.keys(got.apis[0].value.apidoc.paths).sort(), ["/books", "/books/{id}"]);
  t.deepEqual(Object.keys(got.apis[0].value.apidoc.paths["/books"]).sort(), ["get", "post"]);
  t.is((await ow.routes.get({ name: "Book Club" })).apis.length, 1, "an API is found by its name too");
  const listed: any = await ow.routes.list();
  t.true(listed.apis.some((a: any) => a.value.apidoc.basePath === "/club"));

  // Deleting one operation keeps the others.
  await ow.routes.delete({ basepath: "/club", relpath: "/books", operation: "post" });
  t.is((await get(`${platform.url}/api/guest/club/books`, { method: "POST" })).status, 405);
  t.is((await get(`${platform.url}/api/guest/club/books`)).status, 200);
  await ow.routes.delete({ basepath: "/club" });
  t.deepEqual(((await ow.routes.get({ basepath: "/club" })) as any).apis, []);
  const gone = await get(`${platform.url}/api/guest/club/books/42`);
  t.is(gone.status, 404);
  t.is((await gone.json()).error, "The requested resource does not exist.");
});

test("a wrong method is a 405 naming the allowed ones; an unknown path or namespace a 404", async (t) => {
  await ow.routes.create({ basepath: "/shop", relpath: "/items", operation: "get", action: "books" });
  const wrong = await get(`${platform.url}/api/guest/shop/items`, { method: "DELETE" });
  t.is(wrong.status, 405);
  t.is(wrong.headers.get("allow"), "GET");
  t.regex((await wrong.json()).error, /answers GET/);
  for (const path of ["/api/guest/shop/nothing", "/api/guest/shop", "/api/guest/nowhere/items", "/api/nobody/shop/items", "/api/guest", "/api/v1/nothing"]) {
    t.is((await get(`${platform.url}${path}`)).status, 404, path);
  }
  await ow.routes.delete({ basepath: "/shop" });
});

test("a route created through one gateway is served by another within a second, and its deletion too", async (t) => {
  await ow.routes.create({ basepath: "/sync", relpath: "/ping", operation: "get", action: "books" });
  const served = async (want: number) => {
    const deadline = Date.now() + 1000;
    for (;;) {
      const status = (await get(`${second.url}/api/guest/sync/ping`)).status;
      if (status === want || Date.now() > deadline) return status;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  t.is(await served(200), 200);
  await ow.routes.delete({ basepath: "/sync" });
  t.is(await served(404), 404);
});

test("bad input: missing credentials, a bad base path or path, a missing or non-web action, another namespace's action", async (t) => {
  const anonymous = await get(`${platform.url}/api/v1/web/whisk.system/apimgmt/getApi.http`);
  t.is(anonymous.status, 401);
  const badBase = await clientFailure(ow.routes.create({ basepath: "bad", relpath: "/x", operation: "get", action: "books" }));
  t.is(badBase.statusCode, 400);
  t.regex(badBase.message, /apidoc\.gatewayBasePath: must be \/ or start with \//);
  const badPath = await clientFailure(ow.routes.create({ basepath: "/bad", relpath: "/x/{bad id}", operation: "get", action: "books" }));
  t.is(badPath.statusCode, 400);
  t.regex(badPath.message, /apidoc\.gatewayPath/);
  const badMethod = await clientFailure(ow.routes.create({ basepath: "/bad", relpath: "/x", operation: "FETCH", action: "books" }));
  t.is(badMethod.statusCode, 400);
  t.regex(badMethod.message, /apidoc\.gatewayMethod/);
  const missing = await clientFailure(ow.routes.create({ basepath: "/bad", relpath: "/x", operation: "get", action: "nosuch" }));
  t.is(missing.statusCode, 404);
  t.regex(missing.message, /apidoc\.action\.name: the action \/guest\/nosuch does not exist/);
  const notWeb = await clientFailure(ow.routes.create({ basepath: "/bad", relpath: "/x", operation: "get", action: "notweb" }));
  t.is(notWeb.statusCode, 400);
  t.regex(notWeb.message, /apidoc\.action\.name: .* is not a web action/);
  const foreign = await clientFailure(ow.routes.create({ basepath: "/bad", relpath: "/x", operation: "get", action: "/other/thing" }));
  t.is(foreign.statusCode, 403);
  t.regex(foreign.message, /apidoc\.action\.namespace/);
  const badType = await clientFailure(ow.routes.create({ basepath: "/bad", relpath: "/x", operation: "get", action: "books", responsetype: "xml" }));
  t.is(badType.statusCode, 400);
  t.regex(badType.message, /responsetype/);
  const unknown = await clientFailure(ow.routes.delete({ basepath: "/nothing" }));
  t.is(unknown.statusCode, 404);
  t.regex(unknown.message, /API '\/nothing' does not exist/);
  // Nothing of the above was stored.
  t.deepEqual(((await ow.routes.list()) as any).apis.filter((a: any) => a.value.apidoc.basePath === "/bad"), []);
});

test("namespaces are apart: another namespace neither sees nor deletes these routes, and its own are served under its name", async (t) => {
  await ow.routes.create({ basepath: "/mine", relpath: "/a", operation: "get", action: "books" });
  const other: { routes: any } = openwhisk({ apihost: platform.url, api_key: otherKey, namespace: "_" });
  t.deepEqual(((await other.routes.list()) as any).apis, []);
  t.is((await clientFailure(other.routes.delete({ basepath: "/mine" }))).statusCode, 404);
  t.is((await get(`${platform.url}/api/other/mine/a`)).status, 404);
  t.is((await get(`${platform.url}/api/guest/mine/a`)).status, 200);
  await ow.routes.delete({ basepath: "/mine" });
});

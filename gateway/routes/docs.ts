// Unauthenticated: the OpenAPI document (/api/v1/openapi.json) and Swagger UI to browse it (/docs),
// its assets served from the swagger-ui-dist package so it works without internet access.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages } from "../errors.ts";
import { buildOpenApiDocument } from "../openapi/document.ts";

const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
/** The only files served from it (no path from the request ever reaches the file system). */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Vespid API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/api/v1/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
`;

export function docsRoutes(): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  // Built once: the routes and schemas do not change while the process runs.
  const document = JSON.stringify(buildOpenApiDocument());
  const assets = new Map<string, Promise<Buffer>>();

  app.get("/api/v1/openapi.json", (c) => c.body(document, 200, { "content-type": "application/json" }));
  app.get("/docs", (c) => c.html(PAGE));
  app.get("/docs/", (c) => c.html(PAGE));
  app.get("/docs/:file", async (c) => {
    const file = c.req.param("file");
    const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (!type) throw new ApiError(404, Messages.notFound);
    let content = assets.get(file);
    if (!content) {
      content = readFile(join(SWAGGER_UI_DIR, file));
      assets.set(file, content);
      content.catch(() => assets.delete(file));
    }
    return c.body(new Uint8Array(await content), 200, { "content-type": type, "cache-control": "public, max-age=86400" });
  });
  return app;
}

// The gateway's HTTP listener. Closing it does not wait out clients' keep-alive: responses still
// being worked on when close() is called tell their client to hang up once they are sent.
import type { Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";

export interface HttpServer {
  port: number;
  /** Stops accepting connections; resolves once the open ones are done. */
  close(): Promise<void>;
}

export async function startHttpServer(fetch: (request: Request) => Response | Promise<Response>, port: number, host: string): Promise<HttpServer> {
  const server = createAdaptorServer({ fetch, hostname: host }) as Server;
  const unfinished = new Set<ServerResponse>();
  server.on("request", (_request, response: ServerResponse) => {
    unfinished.add(response);
    response.on("close", () => unfinished.delete(response));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const response of unfinished) if (!response.headersSent) response.setHeader("connection", "close");
        server.closeIdleConnections();
      }),
  };
}

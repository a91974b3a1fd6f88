// Asks any runner to compile/check code before an action is stored, so a broken action is refused
// at PUT with the compiler's message instead of failing at every invocation.
import { RequestError, TimeoutError, type NatsConnection } from "@nats-io/transport-node";
import { BuildReply, RUNNER_BUILD_SUBJECT, type BuildRequest } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";

export type BuildCode = (request: BuildRequest) => Promise<BuildReply>;

/** A cold C build runs the compiler; give it room. */
export const BUILD_TIMEOUT_MS = 120_000;

export function createBuilder(nc: NatsConnection, timeoutMs = BUILD_TIMEOUT_MS): BuildCode {
  return async function buildCode(request) {
    let reply;
    try {
      reply = await nc.request(RUNNER_BUILD_SUBJECT, JSON.stringify(request), { timeout: timeoutMs });
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders()) {
        throw new ApiError(503, "no runner is available to build the action", {}, { cause: err });
      }
      if (err instanceof TimeoutError) {
        throw new ApiError(503, `no runner finished building the action within ${timeoutMs} ms`, {}, { cause: err });
      }
      throw err;
    }
    return BuildReply.parse(reply.json());
  };
}

// Asks a runner to compile/check code before an action is stored, so a broken action is refused
// at PUT with the compiler's message instead of failing at every invocation. Code that requires a
// tier is checked by a runner of that tier: a JS check runs the code's top level in the engine.
// Only the code's own faults are a 400; a runner that cannot check at all, or no runner to ask,
// is the platform's problem: 503 with the reason and Retry-After.
import { RequestError, TimeoutError, type NatsConnection } from "@nats-io/transport-node";
import { BuildReply, RUNNER_BUILD_SUBJECT, runnerBuildSubject, type BuildRequest, type Isolation } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";
import type { LiveRunner } from "./runners.ts";

/**
 * Resolves with the build when it succeeded or the code is at fault (`ok: false`: a 400 for the
 * caller); throws ApiError 503 when no runner could check it.
 */
export type BuildCode = (request: BuildRequest, options?: { isolation?: Isolation }) => Promise<BuildReply>;

/** A cold C build runs the compiler; give it room. */
export const BUILD_TIMEOUT_MS = 120_000;
/** Retry-After when no runner answered: one may be starting (s). */
const NO_RUNNER_RETRY_S = 1;
/** Retry-After when a runner answered that it cannot check code: the host needs fixing, or another runner (s). */
const HOST_FAULT_RETRY_S = 5;

/**
 * Why no runner answered, when the runners say: a runner whose engine cannot run anything leaves
 * the build queue (runner/health.ts) but still heartbeats its reason, which the caller should see.
 */
function noRunnerError(runner: string, isolation: Isolation | undefined, live: LiveRunner[], cause: unknown): ApiError {
  const unhealthy = live.filter((r) => r.unhealthy && (!isolation || r.isolation === isolation));
  if (unhealthy.length === 0) {
    return new ApiError(503, `no ${runner} is available to check the action`, { "Retry-After": String(NO_RUNNER_RETRY_S) }, { cause });
  }
  const why = unhealthy.map((r) => `runner ${r.runnerId} (isolation ${r.isolation}) is unhealthy: ${r.unhealthy}`).join("; ");
  return new ApiError(503, `no ${runner} is available to check the action: ${why}`, { "Retry-After": String(HOST_FAULT_RETRY_S) }, { cause });
}

export function createBuilder(nc: NatsConnection, liveRunners: () => LiveRunner[] = () => [], timeoutMs = BUILD_TIMEOUT_MS): BuildCode {
  return async function buildCode(request, { isolation } = {}) {
    const subject = isolation ? runnerBuildSubject(isolation) : RUNNER_BUILD_SUBJECT;
    const runner = isolation ? `runner with isolation ${isolation}` : "runner";
    let reply;
    try {
      reply = await nc.request(subject, JSON.stringify(request), { timeout: timeoutMs });
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders()) {
        throw noRunnerError(runner, isolation, liveRunners(), err);
      }
      if (err instanceof TimeoutError) {
        throw new ApiError(503, `no ${runner} finished checking the action within ${timeoutMs} ms`, { "Retry-After": String(NO_RUNNER_RETRY_S) }, { cause: err });
      }
      throw err;
    }
    const built = BuildReply.parse(reply.json());
    if (!built.ok && built.fault === "host") {
      throw new ApiError(503, `the action could not be checked: ${built.error}`, { "Retry-After": String(HOST_FAULT_RETRY_S) });
    }
    return built;
  };
}

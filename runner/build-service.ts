// Compiles/checks action code for the gateway before it stores an action. Any runner may answer
// (one queue group), and the image it builds stays in its cache for the first invocation. Code
// that must run on a tier is sent to that tier's subject, so it is checked where it will run.
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  BuildRequest,
  decodeMessage,
  RUNNER_BUILD_QUEUE,
  RUNNER_BUILD_SUBJECT,
  runnerBuildSubject,
  type BuildReply,
  type Isolation,
} from "../contracts/index.ts";
import type { ImageStore } from "./images.ts";

export interface BuildService {
  /** Takes no more requests and waits for the builds under way. */
  close(): Promise<void>;
}

export interface BuildServiceOptions {
  /** This runner's tier: it also answers that tier's subject. */
  isolation: Isolation;
  runnerId: string;
}

export function serveBuilds(nc: NatsConnection, images: ImageStore, logger: Logger, opts: BuildServiceOptions): BuildService {
  const building = new Set<Promise<void>>();
  // Host problems name the runner and its tier: the operator has to find the machine.
  const onRunner = `runner ${opts.runnerId} (isolation ${opts.isolation})`;

  const answer = async (msg: Msg): Promise<BuildReply> => {
    const parsed = decodeMessage(BuildRequest, msg.data);
    if (!parsed.success) return { ok: false, error: "malformed build request" };
    const request = parsed.data;
    try {
      const built = await images.build(request.kind, request.code, { binary: request.binary, main: request.main });
      if (built.ok) return { ok: true, codeHash: built.codeHash };
      // Not the code's fault and not a broken host: the gateway's 503 with Retry-After fits.
      if (built.fault === "busy") {
        logger.warn({ error: built.error, kind: request.kind }, "refused a build: too many under way");
        return { ok: false, fault: "host", error: `${onRunner}: ${built.error}` };
      }
      if (built.fault === "host") {
        logger.error({ error: built.error, kind: request.kind }, "could not build or check an action: a problem of this host");
        return { ok: false, fault: "host", error: `${onRunner}: ${built.error}` };
      }
      return { ok: false, fault: "code", error: built.error };
    } catch (err) {
      // Not the code's fault; the message says so rather than passing for a compiler error.
      logger.error({ err }, "image build failed");
      return { ok: false, fault: "host", error: `${onRunner}: could not build the image: ${(err as Error).message}` };
    }
  };

  const serve = (err: Error | null, msg: Msg) => {
    if (err) return logger.error({ err }, "build subscription failed");
    const done = answer(msg)
      .then((reply) => void msg.respond(JSON.stringify(reply)))
      .catch((err: unknown) => logger.warn({ err }, "could not answer a build request"))
      .finally(() => building.delete(done));
    building.add(done);
  };
  const subscriptions = [RUNNER_BUILD_SUBJECT, runnerBuildSubject(opts.isolation)].map((subject) =>
    nc.subscribe(subject, { queue: RUNNER_BUILD_QUEUE, callback: serve }),
  );

  return {
    async close() {
      for (const s of subscriptions) s.unsubscribe();
      await Promise.allSettled([...building]);
    },
  };
}

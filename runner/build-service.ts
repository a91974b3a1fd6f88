// Compiles/checks action code for the gateway before it stores an action. Any runner may answer
// (one queue group), and the image it builds stays in its cache for the first invocation.
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { BuildRequest, decodeMessage, RUNNER_BUILD_QUEUE, RUNNER_BUILD_SUBJECT, type BuildReply } from "../contracts/index.ts";
import type { ImageStore } from "./images.ts";

export interface BuildService {
  /** Takes no more requests and waits for the builds under way. */
  close(): Promise<void>;
}

export function serveBuilds(nc: NatsConnection, images: ImageStore, logger: Logger): BuildService {
  const building = new Set<Promise<void>>();

  const answer = async (msg: Msg): Promise<BuildReply> => {
    const parsed = decodeMessage(BuildRequest, msg.data);
    if (!parsed.success) return { ok: false, error: "malformed build request" };
    const request = parsed.data;
    try {
      const built = await images.build(request.kind, request.code);
      return built.ok ? { ok: true, codeHash: built.codeHash } : built;
    } catch (err) {
      // Not the code's fault; the message says so rather than passing for a compiler error.
      logger.error({ err }, "image build failed");
      return { ok: false, error: `the runner could not build the image: ${(err as Error).message}` };
    }
  };

  const subscription = nc.subscribe(RUNNER_BUILD_SUBJECT, {
    queue: RUNNER_BUILD_QUEUE,
    callback: (err, msg) => {
      if (err) return logger.error({ err }, "build subscription failed");
      const done = answer(msg)
        .then((reply) => void msg.respond(JSON.stringify(reply)))
        .catch((err: unknown) => logger.warn({ err }, "could not answer a build request"))
        .finally(() => building.delete(done));
      building.add(done);
    },
  });

  return {
    async close() {
      subscription.unsubscribe();
      await Promise.allSettled([...building]);
    },
  };
}

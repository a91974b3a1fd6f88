// /api/v1/namespaces/{ns}/deadletters: the invocations of a namespace that failed on the platform's
// side more often than VESPID_MAX_RETRIES allows (scheduler/dead-letters.ts writes them; each also
// has a terminal "whisk internal error" record under its activation id). Listed newest first, read
// one by one, and replayed: published again as a new invocation, with a new activation id, and
// removed from the dead letters. Vespid's own API: OpenWhisk has no dead letters.
import { randomBytes } from "node:crypto";
import type { JetStreamClient, JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { Hono } from "hono";
import { z } from "zod";
import {
  ActivationId,
  DEAD_LETTER_STREAM,
  DeadLetter,
  deadLetterFilter,
  deadLetterSubject,
  decodeMessage,
  invokeSubject,
  type InvocationEvent,
} from "../../contracts/index.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages, validate } from "../errors.ts";

const DEFAULT_PAGE = 30;
const MAX_PAGE = 200;
/** Most dead letters of one namespace a listing reads, newest first among them. */
export const MAX_LISTED = 1_000;

export const DeadLetterListQuery = z.object({
  limit: z.coerce.number().int().min(0).max(MAX_PAGE).default(0).transform((n) => n || DEFAULT_PAGE),
  skip: z.coerce.number().int().min(0).default(0),
});

/** What a replay answers: the new invocation's id, and the dead letter it came from. */
export const DeadLetterReplayed = z.object({ activationId: ActivationId, replayOf: ActivationId });

export function deadLetterRoutes(deps: { js: JetStreamClient }): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  let manager: Promise<JetStreamManager> | undefined;
  const jsm = () => (manager ??= deps.js.jetstreamManager().catch((err: unknown) => {
    manager = undefined;
    throw err;
  }));

  /** The stored dead letter of `id` in `namespace`, or a 404. */
  const find = async (namespace: string, id: string): Promise<{ letter: DeadLetter; seq: number }> => {
    const stored = await (await jsm()).streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: deadLetterSubject(namespace, validate(ActivationId, id, "activationId")) });
    const letter = stored && parse(stored);
    if (!letter) throw new ApiError(404, Messages.notFound);
    return { letter, seq: stored.seq };
  };

  app.get("/", async (c) => {
    const { limit, skip } = validate(DeadLetterListQuery, c.req.query(), "query");
    const namespace = c.get("namespace");
    const manager = await jsm();
    const info = await manager.streams.info(DEAD_LETTER_STREAM, { subjects_filter: deadLetterFilter(namespace) });
    const subjects = Object.keys(info.state.subjects ?? {}).slice(0, MAX_LISTED);
    const stored = await Promise.all(subjects.map((subject) => manager.streams.getMessage(DEAD_LETTER_STREAM, { last_by_subj: subject })));
    const letters = stored
      .filter((m): m is StoredMsg => m !== null)
      .sort((a, b) => b.seq - a.seq)
      .map(parse)
      .filter((l): l is DeadLetter => l !== undefined);
    return c.json(letters.slice(skip, skip + limit));
  });

  app.get("/:activationId", async (c) => c.json((await find(c.get("namespace"), c.req.param("activationId"))).letter));

  app.post("/:activationId/replay", async (c) => {
    const namespace = c.get("namespace");
    const { letter, seq } = await find(namespace, c.req.param("activationId"));
    const activationId = randomBytes(16).toString("hex");
    // A new invocation of the same call: nobody waits on the old reply subject any more.
    const { replyTo: _replyTo, redelivered: _redelivered, ...event } = letter.event;
    const replayed: InvocationEvent = { ...event, activationId, published: Date.now() };
    await deps.js.publish(invokeSubject(namespace), JSON.stringify(replayed), { msgID: activationId });
    // Published first: a removal that fails leaves a dead letter that can be replayed again, never a lost call.
    await (await jsm()).streams.deleteMessage(DEAD_LETTER_STREAM, seq);
    return c.json({ activationId, replayOf: letter.activationId } satisfies z.infer<typeof DeadLetterReplayed>, 202);
  });

  return app;
}

function parse(stored: StoredMsg): DeadLetter | undefined {
  const parsed = decodeMessage(DeadLetter, stored.data);
  return parsed.success ? parsed.data : undefined;
}

// /api/v1/namespaces/{ns}/activations: list activation records and read one, its logs or result.
import { Hono } from "hono";
import { z } from "zod";
import { Activation, ActivationId, ActivationStatus, EntityName } from "../../contracts/index.ts";
import type { ActivationStore } from "../activation-store.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import { flag } from "../query.ts";

/** OpenWhisk's page size when `limit` is absent or 0, and its largest. */
const DEFAULT_PAGE = 30;
const MAX_PAGE = 200;

const epochMs = z.coerce.number({ error: "must be a number of epoch milliseconds" }).int().min(0);

/** `action` or `pkg/action`, each part an OpenWhisk entity name. */
const ActionPath = z
  .string()
  .refine((s) => {
    const parts = s.split("/");
    return parts.length <= 2 && parts.every((p) => EntityName.safeParse(p).success);
  }, "must be an action name or package/action");

export const ActivationListQuery = z.object({
  // OpenWhisk reads limit=0 as "the default page".
  limit: z.coerce.number().int().min(0).max(MAX_PAGE).default(0).transform((n) => n || DEFAULT_PAGE),
  skip: z.coerce.number().int().min(0).default(0),
  since: epochMs.optional(),
  upto: epochMs.optional(),
  name: ActionPath.optional(),
  docs: flag,
});

/** What a listing without `docs=true` shows of a record: OpenWhisk's summary, without response and logs. */
export const ActivationSummary = Activation.omit({ response: true, logs: true }).extend({
  subject: z.string(),
  publish: z.boolean(),
  statusCode: z.number().int(),
});
export type ActivationSummary = z.infer<typeof ActivationSummary>;

/** `GET …/activations/{id}/logs`. */
export const ActivationLogsView = z.object({ logs: z.array(z.string()) });

/** `GET …/activations/{id}/result`: OpenWhisk's response fields, with the result's size in bytes. */
export const ActivationResultView = z.object({
  result: z.record(z.string(), z.unknown()),
  success: z.boolean(),
  status: ActivationStatus,
  size: z.number().int(),
});
export type ActivationResultView = z.infer<typeof ActivationResultView>;

export function activationSummary(a: Activation): ActivationSummary {
  return {
    activationId: a.activationId,
    namespace: a.namespace,
    name: a.name,
    version: a.version,
    subject: a.subject ?? a.namespace,
    publish: false,
    start: a.start,
    end: a.end,
    duration: a.duration,
    statusCode: a.response.statusCode,
    annotations: a.annotations,
  };
}

export function activationResult(a: Activation): ActivationResultView {
  return {
    result: a.response.result,
    success: a.response.success,
    status: a.response.status,
    size: Buffer.byteLength(JSON.stringify(a.response.result)),
  };
}

export function activationRoutes(deps: { activations: ActivationStore }): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get("/", async (c) => {
    const { docs, ...query } = validate(ActivationListQuery, c.req.query(), "query");
    if (query.since !== undefined && query.upto !== undefined && query.since > query.upto) {
      throw new ApiError(400, "query: since must not be after upto");
    }
    const records = await deps.activations.list(c.get("namespace"), query);
    return c.json(docs ? records : records.map(activationSummary));
  });

  // Another namespace's activation reads as missing, not forbidden: ids are not to be probed. The
  // store only ever looks within the caller's namespace, so it cannot find one anyway.
  const find = async (namespace: string, id: string): Promise<Activation> => {
    const activation = await deps.activations.get(namespace, validate(ActivationId, id, "activationId"));
    if (!activation) throw new ApiError(404, Messages.notFound);
    return activation;
  };

  app.get("/:activationId", async (c) => c.json(await find(c.get("namespace"), c.req.param("activationId"))));

  app.get("/:activationId/logs", async (c) => {
    const activation = await find(c.get("namespace"), c.req.param("activationId"));
    return c.json({ logs: activation.logs });
  });

  app.get("/:activationId/result", async (c) => {
    const activation = await find(c.get("namespace"), c.req.param("activationId"));
    return c.json(activationResult(activation));
  });

  return app;
}

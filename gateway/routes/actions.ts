// /api/v1/namespaces/{ns}/actions: create, read, list, delete and invoke actions.
import { Hono } from "hono";
import { z } from "zod";
import {
  ActionLimits,
  ActionPut,
  EntityName,
  type Action,
  type ActivationStatus,
} from "../../contracts/index.ts";
import type { ActionStore } from "../action-store.ts";
import { actionSummaryView, actionView } from "../action-view.ts";
import { limitBody, readJsonBody } from "../body.ts";
import type { BuildCode } from "../build.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import type { Invoker } from "../invoke.ts";
import { flag } from "../query.ts";

export interface ActionRoutesDeps {
  actions: ActionStore;
  build: BuildCode;
  invoker: Invoker;
  /** How long a blocking invocation waits before answering 202 with the id, ms. */
  blockingWaitMs: number;
}

const DEFAULT_PAGE = 30;
const ListQuery = z.object({
  // OpenWhisk reads limit=0 as "the default page".
  limit: z.coerce.number().int().min(0).max(200).default(0).transform((n) => n || DEFAULT_PAGE),
  skip: z.coerce.number().int().min(0).default(0),
});
const PutQuery = z.object({ overwrite: flag });
const InvokeQuery = z.object({ blocking: flag, result: flag });
const Params = z.record(z.string(), z.unknown(), { error: "the parameters must be a JSON object" });

/** Blocking invocations answer like OpenWhisk: the action's own failures are a bad gateway. */
const HTTP_STATUS_OF: Record<ActivationStatus, 200 | 500 | 502> = {
  success: 200,
  "application error": 502,
  "action developer error": 502,
  "whisk internal error": 500,
};

export function actionRoutes(deps: ActionRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get("/", async (c) => {
    const { limit, skip } = validate(ListQuery, c.req.query(), "query");
    const actions = await deps.actions.list(c.get("namespace"));
    actions.sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
    return c.json(actions.slice(skip, skip + limit).map(actionSummaryView));
  });

  app.get("/:name", async (c) => {
    const stored = await deps.actions.get(c.get("namespace"), validate(EntityName, c.req.param("name"), "name"));
    if (!stored) throw new ApiError(404, Messages.notFound);
    return c.json(actionView(stored.action));
  });

  app.put("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = validate(EntityName, c.req.param("name"), "name");
    const { overwrite } = validate(PutQuery, c.req.query(), "query");
    const put = validate(ActionPut, await readJsonBody(c));

    // Checked before the (slow) build to fail fast; the conditional write below is what decides.
    const existing = await deps.actions.get(namespace, name);
    if (existing && !overwrite) throw new ApiError(409, Messages.exists);

    const built = await deps.build({ kind: put.exec.kind, code: put.exec.code });
    if (!built.ok) throw new ApiError(400, built.error);

    const action: Action = {
      namespace,
      name,
      version: existing ? nextPatchVersion(existing.action.version) : "0.0.1",
      exec: { kind: put.exec.kind, code: put.exec.code, binary: false },
      // Limits given replace the old ones (missing fields take the defaults); none keeps them.
      limits: put.limits ? ActionLimits.parse(put.limits) : (existing?.action.limits ?? ActionLimits.parse({})),
      codeHash: built.codeHash,
      updated: Date.now(),
    };
    const stored = existing
      ? await deps.actions.replace(action, existing.revision)
      : await deps.actions.create(action);
    if (!stored) throw new ApiError(409, existing ? Messages.concurrentModification : Messages.exists);
    return c.json(actionView(action));
  });

  app.delete("/:name", async (c) => {
    const stored = await deps.actions.get(c.get("namespace"), validate(EntityName, c.req.param("name"), "name"));
    if (!stored) throw new ApiError(404, Messages.notFound);
    if (!(await deps.actions.remove(stored.action, stored.revision))) {
      throw new ApiError(409, Messages.concurrentModification);
    }
    return c.json(actionView(stored.action));
  });

  app.post("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = validate(EntityName, c.req.param("name"), "name");
    const { blocking, result } = validate(InvokeQuery, c.req.query(), "query");
    const params = validate(Params, await readJsonBody(c, { whenEmpty: {} }));
    if (!(await deps.actions.get(namespace, name))) throw new ApiError(404, Messages.notFound);

    const { activationId, activation } = await deps.invoker.invoke(
      { namespace, name, params },
      { waitMs: blocking ? deps.blockingWaitMs : undefined },
    );
    // Not blocking, or still running when the wait ended: the caller polls the activation.
    if (!activation) return c.json({ activationId }, 202);
    return c.json(result ? activation.response.result : activation, HTTP_STATUS_OF[activation.response.status]);
  });

  return app;
}

function nextPatchVersion(version: string): string {
  const [major = 0, minor = 0, patch = 0] = version.split(".").map(Number);
  return `${major}.${minor}.${patch + 1}`;
}

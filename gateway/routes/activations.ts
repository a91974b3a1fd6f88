// /api/v1/namespaces/{ns}/activations: read activation records.
import { Hono } from "hono";
import { ActivationId } from "../../contracts/index.ts";
import type { ActivationStore } from "../activation-store.ts";
import type { GatewayEnv } from "../env.ts";
import { ApiError, Messages, validate } from "../errors.ts";

export function activationRoutes(deps: { activations: ActivationStore }): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get("/:activationId", async (c) => {
    const activationId = validate(ActivationId, c.req.param("activationId"), "activationId");
    const activation = await deps.activations.get(activationId);
    // Another namespace's activation is reported as missing, not forbidden: ids are not to be probed.
    if (!activation || activation.namespace !== c.get("namespace")) throw new ApiError(404, Messages.notFound);
    return c.json(activation);
  });

  return app;
}

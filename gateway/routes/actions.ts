// /api/v1/namespaces/{ns}/actions: create, update, read, list, delete and invoke actions, at the
// top level (`/actions/{name}`) or inside a package (`/actions/{pkg}/{name}`), and their versions
// (`?versions=true`, `?version=`, `PUT ?rollback=`), which OpenWhisk does not keep.
import { Hono, type Context } from "hono";
import type { Logger } from "pino";
import { z } from "zod";
import {
  ActionLimits,
  ActionPut,
  annotatedIsolation,
  EntityName,
  Isolation,
  ISOLATION_ANNOTATION,
  runtimeOf,
  strongestIsolation,
  type Action,
  type ActivationStatus,
  type KeyValue,
} from "../../contracts/index.ts";
import type { ActionStore } from "../action-store.ts";
import { actionSummaryView, actionView } from "../action-view.ts";
import { limitBody, readJsonBody } from "../body.ts";
import type { BuildCode } from "../build.ts";
import { codeSource } from "../code-exec.ts";
import type { GatewayEnv } from "../env.ts";
import { nextVersion } from "../entity-version.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import { answerEarly, idHeaders, prefersEarlyId } from "../early-answer.ts";
import { fingerprintOf, IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf, invokeOnce, type IdempotencyStore, type IdempotentOutcome } from "../idempotency.ts";
import type { InvokeOptions, Invoker } from "../invoke.ts";
import type { PackageStore } from "../package-store.ts";
import { flag } from "../query.ts";
import { requireSharedPackage } from "../sharing.ts";
import { invocationRequest } from "../invocation-request.ts";
import { flattenSequence, resolveAction, storedName, type ActionAddress } from "../resolve-action.ts";
import type { VersionStore } from "../version-store.ts";

export interface ActionRoutesDeps {
  actions: ActionStore;
  packages: PackageStore;
  versions: VersionStore;
  build: BuildCode;
  invoker: Invoker;
  /** Claims of Idempotency-Key headers (gateway/idempotency.ts). */
  idempotency: IdempotencyStore;
  logger: Logger;
  /** How long a blocking invocation waits before answering 202 with the id, ms. */
  blockingWaitMs: number;
  /** The weakest tier a namespace's actions may run on, when its admin set one. */
  namespaceIsolation: (namespace: string) => Isolation | undefined;
}

/** Versions as Vespid writes them: `major.minor.patch`. */
const Version = z.string().max(64).regex(/^\d+\.\d+\.\d+$/, "must be a version like 0.0.1");

const DEFAULT_PAGE = 30;
const ListQuery = z.object({
  // OpenWhisk reads limit=0 as "the default page".
  limit: z.coerce.number().int().min(0).max(200).default(0).transform((n) => n || DEFAULT_PAGE),
  skip: z.coerce.number().int().min(0).default(0),
});
/** `code=false` leaves the code out; absent or `true` includes it. */
const codeFlag = z.enum(["true", "false"]).optional().transform((value) => value !== "false");
const GetQuery = z.object({ code: codeFlag, version: Version.optional(), versions: flag });
const PutQuery = z.object({ overwrite: flag, rollback: Version.optional() });
const InvokeQuery = z.object({ blocking: flag, result: flag, version: Version.optional() });
const Params = z.record(z.string(), z.unknown(), { error: "the parameters must be a JSON object" });

/** Blocking invocations answer like OpenWhisk: the action's own failures are a bad gateway. */
const HTTP_STATUS_OF: Record<ActivationStatus, 200 | 500 | 502> = {
  success: 200,
  "application error": 502,
  "action developer error": 502,
  "whisk internal error": 500,
};

/** The action a request path names, each segment checked against OpenWhisk's naming rules. */
function addressOf(c: Context<GatewayEnv>): ActionAddress {
  const pkg = c.req.param("pkg");
  return {
    namespace: c.get("pathNamespace"),
    ...(pkg !== undefined && { pkg: validate(EntityName, pkg, "package") }),
    name: validate(EntityName, c.req.param("name"), "name"),
  };
}

/** The address of a write: auth.ts lets no write name another namespace; checked again here. */
function ownAddressOf(c: Context<GatewayEnv>): ActionAddress {
  if (c.get("pathNamespace") !== c.get("namespace")) throw new ApiError(403, Messages.forbidden);
  return addressOf(c);
}

export function actionRoutes(deps: ActionRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get("/", async (c) => {
    const { limit, skip } = validate(ListQuery, c.req.query(), "query");
    const actions = await deps.actions.list(c.get("namespace"));
    actions.sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
    return c.json(actions.slice(skip, skip + limit).map(actionSummaryView));
  });

  /**
   * For a path in another namespace (auth.ts lets only reads and invocations of `pkg/name`
   * through): the package must be shared, and its version history stays its owner's.
   */
  const checkForeign = async (c: Context<GatewayEnv>, at: ActionAddress, versioned: boolean) => {
    if (at.namespace === c.get("namespace")) return;
    await requireSharedPackage(deps.packages, at.namespace, at.pkg);
    if (versioned) throw new ApiError(403, "the versions of another namespace's actions are not shared");
  };

  const get = async (c: Context<GatewayEnv>) => {
    const at = addressOf(c);
    const { code, version, versions } = validate(GetQuery, c.req.query(), "query");
    await checkForeign(c, at, versions || version !== undefined);
    const current = await resolveAction(deps, at);
    if (!current) throw new ApiError(404, Messages.notFound);
    const { action } = current;
    if (versions) {
      const all = await deps.versions.list(action.namespace, action.name);
      return c.json(all.map((v) => ({ ...actionSummaryView(v), current: v.version === action.version })));
    }
    if (version !== undefined) {
      const old = await deps.versions.get(action.namespace, action.name, version);
      if (!old) throw new ApiError(404, `version ${version} of the action does not exist`);
      return c.json(actionView(old, { code }));
    }
    return c.json(actionView(action, { code }));
  };

  const put = async (c: Context<GatewayEnv>) => {
    const at = ownAddressOf(c);
    const { overwrite, rollback } = validate(PutQuery, c.req.query(), "query");
    const name = storedName(at);
    if (at.pkg !== undefined) {
      const pkg = await deps.packages.get(at.namespace, at.pkg);
      if (!pkg) throw new ApiError(404, `package ${at.pkg} does not exist`);
      if (pkg.pkg.binding) throw new ApiError(400, `package ${at.pkg} is a binding; actions cannot be created in it`);
    }
    const existing = await deps.actions.get(at.namespace, name);
    // Checked before the (slow) build to fail fast; the conditional write below is what decides.
    if (existing && !overwrite && rollback === undefined) throw new ApiError(409, Messages.exists);

    let action: Action;
    if (rollback !== undefined) {
      if (!existing) throw new ApiError(404, Messages.notFound);
      const old = await deps.versions.get(at.namespace, name, rollback);
      if (!old) throw new ApiError(404, `version ${rollback} of the action does not exist`);
      // A rollback is a new version with the old content, so versions only ever go up and the
      // activations of the restored code are told apart from the original's.
      action = { ...old, version: nextVersion(existing.action.version), updated: Date.now() };
    } else {
      const body = validate(ActionPut, await readJsonBody(c));
      action = await actionFromPut(deps, at, body, existing?.action);
    }
    const stored = existing
      ? await deps.actions.replace(action, existing.revision)
      : await deps.actions.create(action);
    if (!stored) throw new ApiError(409, existing ? Messages.concurrentModification : Messages.exists);
    await deps.versions.add(action);
    return c.json(actionView(action));
  };

  const remove = async (c: Context<GatewayEnv>) => {
    const at = ownAddressOf(c);
    const stored = await deps.actions.get(at.namespace, storedName(at));
    if (!stored) throw new ApiError(404, Messages.notFound);
    if (!(await deps.actions.remove(stored.action, stored.revision))) {
      throw new ApiError(409, Messages.concurrentModification);
    }
    // A later action by this name starts again at 0.0.1, as in OpenWhisk; old versions would clash.
    await deps.versions.removeAll(stored.action.namespace, stored.action.name);
    return c.json(actionView(stored.action));
  };

  const invoke = async (c: Context<GatewayEnv>) => {
    const at = addressOf(c);
    const { blocking, result, version } = validate(InvokeQuery, c.req.query(), "query");
    const key = idempotencyKeyOf(c.req.header(IDEMPOTENCY_KEY_HEADER));
    const params = validate(Params, await readJsonBody(c, { whenEmpty: {} }));
    await checkForeign(c, at, version !== undefined);
    const request = await invocationRequest(deps, c.get("namespace"), at, params, version);
    if (!request) {
      throw new ApiError(404, version === undefined ? Messages.notFound : `version ${version} of the action does not exist`);
    }
    request.requestId = c.get("requestId");
    // With a key, a repeat of the same request (same action as named, version and parameters as
    // sent; `blocking` and `result` may differ) answers the first one's activation.
    const run = async (options: InvokeOptions): Promise<IdempotentOutcome> => {
      // Without a key a blocking call may go straight to a runner; a keyed one goes through
      // JetStream, whose duplicate window is what makes a repeat's republish run nothing twice.
      if (key === undefined) return { ...(await deps.invoker.invoke(request, { ...options, direct: true })), replayed: false };
      const fingerprint = fingerprintOf({ action: at, version, params });
      return invokeOnce(deps.idempotency, deps.invoker, key, fingerprint, request, options, (err) =>
        deps.logger.warn({ err }, "could not republish a repeated invocation"),
      );
    };
    if (blocking && prefersEarlyId(c.req.header("prefer"))) {
      return answerEarly(c, run, deps.blockingWaitMs, (activation) => (result ? activation.response.result : activation), deps.logger);
    }
    const { activationId, activation, replayed } = await run({ waitMs: blocking ? deps.blockingWaitMs : undefined });
    for (const [name, value] of Object.entries(idHeaders(activationId, replayed))) c.header(name, value);
    // Not blocking, or still running when the wait ended: the caller polls the activation.
    if (!activation) return c.json({ activationId }, 202);
    return c.json(result ? activation.response.result : activation, HTTP_STATUS_OF[activation.response.status]);
  };

  for (const path of ["/:name", "/:pkg/:name"]) {
    app.get(path, get);
    app.put(path, limitBody(), put);
    app.delete(path, remove);
    app.post(path, limitBody(), invoke);
  }
  return app;
}

/** The action a PUT describes; an update keeps what the body leaves out, as OpenWhisk's does. */
async function actionFromPut(deps: ActionRoutesDeps, at: ActionAddress, put: ActionPut, existing?: Action): Promise<Action> {
  const exec = put.exec ?? existing?.exec;
  if (!exec) throw new ApiError(400, "exec: is required to create an action");
  checkIsolationAnnotation(put.annotations);
  const annotations = put.annotations ?? existing?.annotations ?? [];
  let codeHash = existing?.codeHash ?? "";
  if (put.exec?.kind === "sequence") {
    // Every component must exist now (OpenWhisk checks too); nesting and length are bounded.
    await flattenSequence(deps, at.namespace, put.exec.components);
    codeHash = "";
  } else if (put.exec) {
    // Checked on the tier that will run it (a JS check runs the code's top level).
    const isolation = strongestIsolation(annotatedIsolation(annotations), deps.namespaceIsolation(at.namespace));
    const built = await deps.build({ kind: runtimeOf(put.exec.kind), code: put.exec.code, ...codeSource(put.exec) }, { isolation });
    if (!built.ok) throw new ApiError(400, built.error);
    codeHash = built.codeHash;
  }
  return {
    namespace: at.namespace,
    name: storedName(at),
    version: nextVersion(existing?.version),
    // An update without exec keeps the stored one (a zip stays a zip, main stays).
    exec: !put.exec
      ? existing!.exec
      : put.exec.kind === "sequence"
        ? { kind: "sequence", components: put.exec.components }
        : { kind: put.exec.kind, code: put.exec.code, ...codeSource(put.exec) },
    // Limits given replace the old ones (missing fields take the defaults); none keeps them.
    limits: put.limits ? ActionLimits.parse(put.limits) : (existing?.limits ?? ActionLimits.parse({})),
    parameters: put.parameters ?? existing?.parameters ?? [],
    annotations: withExecAnnotation(annotations, exec.kind),
    publish: put.publish ?? existing?.publish ?? false,
    codeHash,
    updated: Date.now(),
  };
}

/** The `isolation` annotation names a tier or is absent: anything else would silently mean "any runner". */
function checkIsolationAnnotation(annotations: readonly KeyValue[] | undefined): void {
  for (const [i, { key, value }] of (annotations ?? []).entries()) {
    if (key === ISOLATION_ANNOTATION && !Isolation.safeParse(value).success) {
      throw new ApiError(400, `annotations.${i}.value: the "${ISOLATION_ANNOTATION}" annotation must be "kvm" or "process", got ${JSON.stringify(value).slice(0, 100)}`);
    }
  }
}

/** OpenWhisk adds `exec: <kind>` to every action's annotations; `wsk action list` shows it. */
function withExecAnnotation(annotations: KeyValue[], kind: string): KeyValue[] {
  return [...annotations.filter((a) => a.key !== "exec"), { key: "exec", value: kind }];
}

// /api/v1/namespaces/{ns}/rules: create, update, read, list and delete rules, and enable or
// disable them (`POST …/rules/{name}` with `{status}`). A rule links a trigger of its namespace to
// an action — its own, or one in another namespace's published package; both are resolved and
// stored fully qualified, as OpenWhisk does.
import { Hono } from "hono";
import { z } from "zod";
import { entityKey, EntityName, RulePut, RuleStatus, type Rule } from "../../contracts/index.ts";
import type { EventEntities } from "../../triggers/entities.ts";
import { parseEntityPath, pathView, qualifiedName } from "../../triggers/names.ts";
import { limitBody, readJsonBody } from "../body.ts";
import type { GatewayEnv } from "../env.ts";
import { nextVersion } from "../entity-version.ts";
import { ApiError, Messages, validate } from "../errors.ts";
import { resolveAction, type ActionAddress, type EntityStores } from "../resolve-action.ts";
import { isShared } from "../sharing.ts";
import { ListQuery } from "./triggers.ts";

export interface RuleRoutesDeps extends EntityStores {
  events: EventEntities;
}

const PutQuery = z.object({ overwrite: z.enum(["true", "false"]).optional().transform((v) => v === "true") });
const StatusChange = z.object({ status: RuleStatus }).strict();

/** OpenWhisk's rule: trigger and action as `{name, path}`, and the status its trigger holds. */
export function ruleView(rule: Rule, status: RuleStatus) {
  return {
    namespace: rule.namespace,
    name: rule.name,
    version: rule.version,
    publish: rule.publish,
    annotations: rule.annotations,
    status,
    trigger: pathView(rule.trigger),
    action: pathView(rule.action),
    updated: rule.updated,
  };
}

export function ruleRoutes(deps: RuleRoutesDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const { events } = deps;
  const nameOf = (raw: string) => validate(EntityName, raw, "name");

  /** As OpenWhisk reports it: a rule whose trigger is gone is inactive, whatever it was. */
  const statusOf = (rule: Rule): RuleStatus => {
    const [, ns = "", trigger = ""] = rule.trigger.split("/");
    return events.triggers.watched.get(entityKey(ns, trigger)) ? rule.status : "inactive";
  };

  /** `/ns/trigger`, checked: in the caller's namespace (403 otherwise, OpenWhisk's entitlement) and existing. */
  const resolveTrigger = async (text: string, caller: string): Promise<string> => {
    const parsed = parseEntityPath(text, caller);
    if (!parsed.ok) throw new ApiError(400, `trigger: ${parsed.reason}`);
    if (parsed.at.pkg !== undefined) throw new ApiError(400, `trigger: "${text.slice(0, 100)}" is not a valid name: triggers are not in packages`);
    if (parsed.at.namespace !== caller) throw new ApiError(403, Messages.forbidden);
    const qualified = qualifiedName(parsed.at);
    if (!(await events.triggers.get(caller, parsed.at.name))) throw new ApiError(400, `trigger ${qualified} does not exist`);
    return qualified;
  };

  /** `/ns/[pkg/]action`, checked: the caller's own or in a published package, and existing (packages, bindings, sequences). */
  const resolveRuleAction = async (text: string, caller: string): Promise<string> => {
    const parsed = parseEntityPath(text, caller);
    if (!parsed.ok) throw new ApiError(400, `action: ${parsed.reason}`);
    const at: ActionAddress = parsed.at;
    if (at.namespace !== caller) {
      const pkg = at.pkg === undefined ? undefined : (await deps.packages.get(at.namespace, at.pkg))?.pkg;
      // A missing and a private package get the same answer: other namespaces' names stay unknown.
      if (!pkg || !isShared(pkg)) throw new ApiError(403, Messages.forbidden);
    }
    const qualified = qualifiedName(at);
    if (!(await resolveAction(deps, at))) throw new ApiError(400, `action ${qualified} does not exist`);
    return qualified;
  };

  app.get("/", async (c) => {
    const { limit, skip, count } = validate(ListQuery, c.req.query(), "query");
    // From the watched copies, brought up to date first (a change through another gateway shows).
    await Promise.all([events.rules.watched.sync(), events.triggers.watched.sync()]);
    const rules = events.rules.list(c.get("namespace"));
    if (count) return c.json({ rules: Math.max(0, rules.length - skip) });
    rules.sort((a, b) => b.updated - a.updated || a.name.localeCompare(b.name));
    return c.json(rules.slice(skip, skip + limit).map((r) => ruleView(r, statusOf(r))));
  });

  app.get("/:name", async (c) => {
    const stored = await events.rules.get(c.get("namespace"), nameOf(c.req.param("name")));
    if (!stored) throw new ApiError(404, Messages.notFound);
    await events.triggers.watched.sync();
    return c.json(ruleView(stored.value, statusOf(stored.value)));
  });

  app.put("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = nameOf(c.req.param("name"));
    const { overwrite } = validate(PutQuery, c.req.query(), "query");
    const put = validate(RulePut, await readJsonBody(c, { whenEmpty: {} }));
    const existing = await events.rules.get(namespace, name);
    if (existing && !overwrite) throw new ApiError(409, Messages.exists);
    if (!existing) {
      const missing = (["trigger", "action"] as const).filter((field) => put[field] === undefined);
      if (missing.length > 0) {
        throw new ApiError(400, `${missing.map((f) => `${f}: is required`).join("; ")} (a rule requires a valid trigger and a valid action)`);
      }
    }
    // An update keeps what the body leaves out, and the rule's status, as OpenWhisk's does.
    const rule: Rule = {
      namespace,
      name,
      version: nextVersion(existing?.value.version),
      publish: put.publish ?? existing?.value.publish ?? false,
      annotations: put.annotations ?? existing?.value.annotations ?? [],
      trigger: await resolveTrigger(put.trigger ?? existing!.value.trigger, namespace),
      action: await resolveRuleAction(put.action ?? existing!.value.action, namespace),
      status: existing?.value.status ?? "active",
      updated: Date.now(),
    };
    const stored = existing ? await events.rules.replace(rule, existing.revision) : await events.rules.create(rule);
    if (!stored) throw new ApiError(409, existing ? Messages.concurrentModification : Messages.exists);
    // Its trigger was just found in KV, so the status it holds is the one in force.
    return c.json(ruleView(rule, rule.status));
  });

  app.delete("/:name", async (c) => {
    const stored = await events.rules.get(c.get("namespace"), nameOf(c.req.param("name")));
    if (!stored) throw new ApiError(404, Messages.notFound);
    if (!(await events.rules.remove(stored.value, stored.revision))) throw new ApiError(409, Messages.concurrentModification);
    // OpenWhisk answers the deleted rule as inactive.
    return c.json(ruleView(stored.value, "inactive"));
  });

  app.post("/:name", limitBody(), async (c) => {
    const namespace = c.get("namespace");
    const name = nameOf(c.req.param("name"));
    const { status } = validate(StatusChange, await readJsonBody(c, { whenEmpty: {} }));
    const stored = await events.rules.get(namespace, name);
    if (!stored) throw new ApiError(404, Messages.notFound);
    if (!(await triggerExists(events, stored.value.trigger))) {
      throw new ApiError(404, "Only rules with existing triggers can be activated");
    }
    // OpenWhisk answers 200 whether or not the status changed.
    if (stored.value.status !== status) {
      const rule: Rule = { ...stored.value, status, updated: Date.now() };
      if (!(await events.rules.replace(rule, stored.revision))) throw new ApiError(409, Messages.concurrentModification);
    }
    return c.json({}, 200);
  });

  return app;
}

async function triggerExists(events: EventEntities, qualified: string): Promise<boolean> {
  const [, ns = "", trigger = ""] = qualified.split("/");
  return (await events.triggers.get(ns, trigger)) !== undefined;
}

// Starts one rule's action for one fire, as `POST …/actions/{name}` would for the trigger's
// owner (gateway/invocation-request.ts: packages, bindings, sequences, isolation; the namespace
// limits through the invoker), and says how it went as OpenWhisk's trigger logs do: one JSON line
// per rule with statusCode (0 ok, 1 the user's error, 3 the platform's), success and the
// activation id or the error.
import { createHash } from "node:crypto";
import type { Rule } from "../contracts/index.ts";
import { ApiError, Messages } from "../gateway/errors.ts";
import { invocationRequest, type InvocationDeps } from "../gateway/invocation-request.ts";
import type { Invoker } from "../gateway/invoke.ts";
import { isShared } from "../gateway/sharing.ts";
import { addressOf, unslashed } from "./names.ts";

export interface RuleOutcome {
  statusCode: 0 | 1 | 3;
  success: boolean;
  activationId?: string;
  error?: string;
  rule: string;
  action: string;
}

/**
 * The activation id of `rule`'s action for fire `fireId`: derived, not random, so a redelivered
 * fire queues the same id again and JetStream's duplicate window drops it.
 */
export const ruleActivationId = (fireId: string, rule: Rule): string =>
  createHash("sha256").update(`${fireId}/${rule.namespace}/${rule.name}`).digest("hex").slice(0, 32);

export async function runRule(deps: InvocationDeps & { invoker: Invoker }, fireId: string, rule: Rule, params: Record<string, unknown>): Promise<RuleOutcome> {
  const names = { rule: unslashed(`/${rule.namespace}/${rule.name}`), action: unslashed(rule.action) };
  const failed = (statusCode: 1 | 3, error: string): RuleOutcome => ({ statusCode, success: false, error, ...names });
  const at = addressOf(rule.action);
  try {
    // Another namespace's package may have been unpublished since the rule was made.
    if (at.namespace !== rule.namespace) {
      const pkg = at.pkg === undefined ? undefined : (await deps.packages.get(at.namespace, at.pkg))?.pkg;
      if (!pkg || !isShared(pkg)) return failed(1, Messages.forbidden);
    }
    const request = await invocationRequest(deps, rule.namespace, at, params);
    if (!request) return failed(1, Messages.notFound);
    const activationId = ruleActivationId(fireId, rule);
    await deps.invoker.invoke({ ...request, activationId }, {});
    return { statusCode: 0, success: true, activationId, ...names };
  } catch (err) {
    // A namespace over its limits (429), parameters too big (413) or a sequence gone bad (400) is
    // the user's; anything else (NATS unavailable) is the platform's, as OpenWhisk splits them.
    if (err instanceof ApiError && err.status < 500) return failed(1, err.message);
    throw err;
  }
}

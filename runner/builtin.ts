// Builtin actions (contracts BuiltinKind: the feed actions of `whisk.system`) run here, in the
// runner's own process, instead of in a guest: they read and write feed registrations in NATS,
// which guests cannot reach. They come through the normal invoke path (blocking or not, scheduler,
// activation record), so OpenWhisk clients invoke them like any action; the record's `isolation`
// annotation says `platform`: no guest ran it.
import { PLATFORM_ISOLATION, type Action, type Activation, type BuiltinKind, type FeedKind, type InvocationEvent } from "../contracts/index.ts";
import { runFeedLifecycle, type FeedStores } from "../catalog/feeds/lifecycle.ts";
import { SYSTEM_NAMESPACE } from "../catalog/manifest.ts";
import { buildActivation, internalError, type RunnerActivation } from "./activation.ts";
import { timestamp } from "./logs-format.ts";

const FEED_KINDS: Record<BuiltinKind, FeedKind> = {
  "builtin:alarm": "alarm",
  "builtin:once": "once",
  "builtin:interval": "interval",
  "builtin:nats": "nats",
};

type BuiltinExec = Extract<Action["exec"], { kind: BuiltinKind }>;
export const isBuiltinExec = (exec: Action["exec"]): exec is BuiltinExec => exec.kind in FEED_KINDS;

export async function runBuiltin(
  event: InvocationEvent,
  action: Action,
  exec: BuiltinExec,
  start: number,
  stores: FeedStores | undefined,
  extraAnnotations: Activation["annotations"] = [],
): Promise<RunnerActivation> {
  const annotations = [{ key: "isolation", value: PLATFORM_ISOLATION }, ...extraAnnotations];
  // Only the catalog writes builtin actions; one anywhere else was not made by Vespid.
  if (action.namespace !== SYSTEM_NAMESPACE || !stores) {
    const why = stores ? `builtin actions run only from namespace ${SYSTEM_NAMESPACE}` : "this runner cannot run platform actions";
    return buildActivation({ event, action, start, end: Date.now(), verdict: internalError(why), extraAnnotations: annotations });
  }
  const feed = `/${action.namespace}/${action.name}`;
  // event.namespace is the invoking key's namespace (the gateway set it), whatever the params say.
  const outcome = await runFeedLifecycle(FEED_KINDS[exec.kind], feed, event.namespace, event.params, stores);
  const end = Date.now();
  return buildActivation({
    event,
    action,
    start,
    end,
    verdict: { status: outcome.ok ? "success" : "application error", result: outcome.result },
    logs: outcome.logs.map((line) => `${timestamp(end)} ${outcome.ok ? "stdout" : "stderr"}: ${line}`),
    extraAnnotations: annotations,
  });
}

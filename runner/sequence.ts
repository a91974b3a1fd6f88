// A sequence runs on the runner that was assigned it: each component in turn, in its own virtine,
// the result of one the parameters of the next. Every component gets its own activation record
// (annotated causedBy "sequence", `cause` = the sequence's id) and the sequence's record lists
// their ids as its logs, as OpenWhisk's does. The gateway resolved the components (packages,
// bindings, nested sequences, default parameters) when it queued the invocation.
//
// A component's activation id is derived from the sequence's and its position, so a sequence run
// again after a redelivery names the same records: a component whose record exists is not run
// again (its recorded result is passed on), and no record is ever written twice.
import { createHash } from "node:crypto";
import type { Action, Activation, InvocationEvent } from "../contracts/index.ts";
import { buildActivation, internalError, type RunnerActivation } from "./activation.ts";
import type { InvocationDeps } from "./invocation.ts";

export type ExecuteOne = (
  event: InvocationEvent,
  start: number,
  deps: InvocationDeps,
  extraAnnotations?: Activation["annotations"],
) => Promise<RunnerActivation>;

export async function runSequence(event: InvocationEvent, sequence: Action, start: number, deps: InvocationDeps, execute: ExecuteOne): Promise<RunnerActivation> {
  const steps = event.sequence ?? [];
  const componentIds: string[] = [];
  let input = event.params;
  let last: RunnerActivation | undefined;
  for (const [index, step] of steps.entries()) {
    const component: InvocationEvent = {
      activationId: componentActivationId(event.activationId, index),
      namespace: event.namespace,
      name: step.name,
      // A component's defaults sit under what the previous component returned.
      params: { ...step.params, ...input },
      published: Date.now(),
      target: { namespace: step.namespace, name: step.name, version: step.version },
      ...(step.binding && { binding: step.binding }),
    };
    componentIds.push(component.activationId);
    const earlier = event.redelivered ? await recordedComponent(component, deps) : undefined;
    if (earlier) {
      last = earlier;
    } else {
      last = { ...(await execute(component, Date.now(), deps, [{ key: "causedBy", value: "sequence" }])), cause: event.activationId };
      const stored = await deps.recorder.record(last);
      if (stored.outcome === "failed") {
        last = buildActivation({ event: component, start, end: Date.now(), verdict: internalError("a component's activation record could not be stored"), isolation: deps.engine.isolation });
        break;
      }
      // Another run of this very component was recorded first: its result is the one that stands.
      if (stored.outcome === "existed" && stored.existing) last = stored.existing;
    }
    // OpenWhisk stops at the first component that fails; its response is the sequence's.
    if (!last.response.success) break;
    input = last.response.result;
  }
  const verdict = last
    ? { status: last.response.status, result: last.response.result }
    : internalError("the sequence has no components");
  return buildActivation({
    event,
    action: sequence,
    start,
    end: Date.now(),
    verdict,
    logs: componentIds,
    extraAnnotations: [{ key: "topmost", value: true }],
    isolation: deps.engine.isolation,
  });
}

/** The `index`th component's activation id: the same on every run of the sequence. */
export function componentActivationId(sequenceId: string, index: number): string {
  return createHash("sha256").update(`${sequenceId}/component/${index}`).digest("hex").slice(0, 32);
}

/** The stored record of a component, when an earlier run of a redelivered sequence wrote it. */
async function recordedComponent(component: InvocationEvent, deps: InvocationDeps): Promise<Activation | undefined> {
  // An unreadable bucket is not proof of absence, but running the component is what a first
  // delivery would do, and its record write is create-if-absent.
  const json = await deps.recorder.existing(component.namespace, component.activationId).catch(() => undefined);
  return json && (JSON.parse(Buffer.from(json).toString("utf8")) as Activation);
}

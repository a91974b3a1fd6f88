// A sequence runs on the runner that was assigned it: each component in turn, in its own virtine,
// the result of one the parameters of the next. Every component gets its own activation record
// (annotated causedBy "sequence", `cause` = the sequence's id) and the sequence's record lists
// their ids as its logs, as OpenWhisk's does. The gateway resolved the components (packages,
// bindings, nested sequences, default parameters) when it queued the invocation.
import { randomBytes } from "node:crypto";
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
  for (const step of steps) {
    const component: InvocationEvent = {
      activationId: randomBytes(16).toString("hex"),
      namespace: event.namespace,
      name: step.name,
      // A component's defaults sit under what the previous component returned.
      params: { ...step.params, ...input },
      published: Date.now(),
      target: { namespace: step.namespace, name: step.name, version: step.version },
      ...(step.binding && { binding: step.binding }),
    };
    last = { ...(await execute(component, Date.now(), deps, [{ key: "causedBy", value: "sequence" }])), cause: event.activationId };
    componentIds.push(last.activationId);
    if (!(await deps.recorder.record(last))) {
      last = buildActivation({ event: component, start, end: Date.now(), verdict: internalError("a component's activation record could not be stored"), isolation: deps.engine.isolation });
      break;
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

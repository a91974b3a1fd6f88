// Actions as OpenWhisk clients expect to read them: an action inside a package has namespace
// `ns/pkg` and its own short name, as OpenWhisk's entity paths do.
import type { Action } from "../contracts/index.ts";

export function actionView(action: Action, options: { code?: boolean } = {}) {
  const exec =
    action.exec.kind === "sequence"
      ? { kind: "sequence", components: action.exec.components }
      : {
        kind: action.exec.kind,
        ...(options.code !== false && { code: action.exec.code }),
        binary: action.exec.binary,
        ...("main" in action.exec && action.exec.main !== undefined && { main: action.exec.main }),
      };
  return { ...actionSummaryView(action), exec, parameters: action.parameters };
}

/** What listings show: everything but the code, which can be megabytes per action. */
export function actionSummaryView(action: Action) {
  const slash = action.name.indexOf("/");
  return {
    namespace: slash < 0 ? action.namespace : `${action.namespace}/${action.name.slice(0, slash)}`,
    name: slash < 0 ? action.name : action.name.slice(slash + 1),
    version: action.version,
    publish: action.publish,
    exec: { kind: action.exec.kind, binary: action.exec.kind !== "sequence" && action.exec.binary },
    limits: action.limits,
    annotations: action.annotations,
    updated: action.updated,
  };
}

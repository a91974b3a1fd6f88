// Actions as OpenWhisk clients expect to read them.
import type { Action } from "../contracts/index.ts";

export function actionView(action: Action) {
  return {
    ...actionSummaryView(action),
    exec: { kind: action.exec.kind, code: action.exec.code, binary: false },
  };
}

/** What listings show: everything but the code, which can be megabytes per action. */
export function actionSummaryView(action: Action) {
  return {
    namespace: action.namespace,
    name: action.name,
    version: action.version,
    publish: false,
    exec: { kind: action.exec.kind, binary: false },
    limits: action.limits,
    annotations: [],
    updated: action.updated,
  };
}

// Runs a web action for an HTTP request and answers with what it returned, as OpenWhisk's
// controller does (its WebActions.scala): only actions annotated `web-export: true` answer;
// `require-whisk-auth` asks for credentials; `final` protects the default parameters; CORS is
// answered for the action unless it handles OPTIONS itself (`web-custom-options`). The call goes
// through the normal invoke path (gateway/invoke.ts: limits, records, isolation) as the action's
// owner, who is also charged for it, and waits like a blocking invocation.
import { createHash, timingSafeEqual } from "node:crypto";
import { keyValuesToObject } from "../../contracts/index.ts";
import { ApiError, Messages } from "../errors.ts";
import { invocationRequest, type InvocationDeps } from "../invocation-request.ts";
import type { Invoker } from "../invoke.ts";
import { resolveAction, type ActionAddress } from "../resolve-action.ts";
import { RESERVED_PARAMS, webArgs, type WebRequest } from "./request-args.ts";
import { transcode, WebMessages, type Extension, type WebResponse } from "./respond.ts";

export interface WebActionDeps extends InvocationDeps {
  invoker: Invoker;
  blockingWaitMs: number;
}

/** OpenWhisk's response header naming the activation a web request ran. */
export const ACTIVATION_ID_HEADER = "x-openwhisk-activation-id";
/** The header a string `require-whisk-auth` annotation must be matched by. */
export const REQUIRE_WHISK_AUTH_HEADER = "x-require-whisk-auth";

/** What OpenWhisk answers a web action's CORS with, unless the action answers OPTIONS itself. */
const CORS_ALLOW_METHODS = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";
const CORS_ALLOW_HEADERS = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

export interface WebCall {
  at: ActionAddress;
  extension: Extension;
  request: WebRequest;
  /** The caller's namespace when the request carried a valid API key. */
  caller?: string;
  /** Parameters beside the query and body (an API route's path parameters). */
  extra?: Record<string, string>;
  /** The HTTP request's id, carried to the scheduler's and runner's log lines. */
  requestId?: string;
}

export async function runWebAction(deps: WebActionDeps, call: WebCall): Promise<Response> {
  const resolved = await resolveAction(deps, call.at);
  const annotations = resolved ? keyValuesToObject(resolved.action.annotations) : {};
  // A binding is no way to a web action in OpenWhisk either: the action is looked up by its own name.
  if (!resolved || resolved.binding || annotations["web-export"] !== true) throw new ApiError(404, Messages.notFound);
  const { action, defaults } = resolved;
  const { request } = call;

  const customOptions = annotations["web-custom-options"] === true;
  const cors: Array<[string, string]> = customOptions
    ? []
    : [
        ["access-control-allow-origin", "*"],
        ["access-control-allow-methods", CORS_ALLOW_METHODS],
        ["access-control-allow-headers", request.headers.get("access-control-request-headers") ?? CORS_ALLOW_HEADERS],
      ];
  const fail = (err: unknown, more: Record<string, string> = {}): never => {
    if (err instanceof ApiError) throw new ApiError(err.status, err.message, { ...Object.fromEntries(cors), ...err.headers, ...more }, { cause: err });
    throw err;
  };
  const isOptions = request.method.toUpperCase() === "OPTIONS";
  if (isOptions && !customOptions) return toResponse({ status: 200, headers: [] }, cors);
  // An action answering OPTIONS itself is run for it even without credentials (browsers send none).
  if (!isOptions && !authorized(annotations["require-whisk-auth"], request.headers, call.caller)) fail(new ApiError(401, Messages.unauthenticated));

  const raw = annotations["raw-http"] === true;
  let args: Record<string, unknown> = {};
  try {
    const built = webArgs(request, { raw, ...(call.caller !== undefined && { user: call.caller }), ...(call.extra && { extra: call.extra }) });
    args = built.args;
    // Raw requests put the query and body in __ow_query/__ow_body, so they cannot override anything.
    const finals = truthy(annotations.final) ? Object.keys(defaults).filter((k) => defaults[k] !== null) : [];
    const protectedKeys = new Set<string>([...RESERVED_PARAMS, ...finals]);
    if (!raw && built.requestKeys.some((key) => protectedKeys.has(key))) throw new ApiError(400, WebMessages.parametersNotAllowed);
  } catch (err) {
    fail(err);
  }

  // The same request an API invocation of the action by its owner would queue.
  let outcome;
  try {
    const invocation = await invocationRequest(deps, action.namespace, call.at, args);
    if (!invocation) throw new ApiError(404, Messages.notFound);
    if (call.requestId !== undefined) invocation.requestId = call.requestId;
    outcome = await deps.invoker.invoke(invocation, { waitMs: deps.blockingWaitMs });
  } catch (err) {
    return fail(err);
  }
  const idHeader = { [ACTIVATION_ID_HEADER]: outcome.activationId };
  const { activation } = outcome;
  if (!activation) return fail(new ApiError(202, WebMessages.notReady), idHeader);
  const { status, result } = activation.response;
  let response: WebResponse;
  try {
    if (status === "success") response = transcode(call.extension, result);
    else if (status === "application error") {
      // OpenWhisk answers an application error with its `error` field, through the same extension.
      if (!("error" in result)) throw new ApiError(404, WebMessages.propertyNotFound);
      response = transcode(call.extension, result.error);
    } else throw new ApiError(400, WebMessages.errorProcessing);
  } catch (err) {
    return fail(err, idHeader);
  }
  return toResponse(response, [...cors, [ACTIVATION_ID_HEADER, outcome.activationId]]);
}

/**
 * OpenWhisk's rule: a string (or number) must equal the X-Require-Whisk-Auth header; `true` needs
 * a valid API key (of any namespace: the action sees it in `__ow_user` and decides); no annotation
 * lets everyone in; any other value lets no one in.
 */
function authorized(required: unknown, headers: Headers, caller: string | undefined): boolean {
  if (required === undefined) return true;
  if (typeof required === "string" || typeof required === "number") return sameSecret(headers.get(REQUIRE_WHISK_AUTH_HEADER), String(required));
  if (required === true) return caller !== undefined;
  return false;
}

/** Compares in constant time (as far as the lengths go), so timing does not reveal the secret. */
function sameSecret(given: string | null, secret: string): boolean {
  if (given === null) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(secret).digest();
  return timingSafeEqual(a, b);
}

/** OpenWhisk's truthiness of an annotation value. */
function truthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (typeof value === "number") return value !== 0;
  if (typeof value === "string") return value.length > 0;
  return true;
}

/** The action's headers win over the CORS defaults of the same name. */
function toResponse(response: WebResponse, added: Array<[string, string]>): Response {
  const headers = new Headers();
  const own = new Set(response.headers.map(([name]) => name.toLowerCase()));
  for (const [name, value] of added) if (!own.has(name)) headers.append(name, value);
  for (const [name, value] of response.headers) headers.append(name, value);
  return new Response((response.body ?? null) as BodyInit | null, { status: response.status, headers });
}

// The records that cross component boundaries, as zod schemas. Types are inferred from them, so a
// record is validated where it enters a component and typed everywhere after.
import { z } from "zod";

/** OpenWhisk entity names: start with a letter, digit or `_`, then also `@ . -` and spaces; ≤ 256. */
export const EntityName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_@. -]*$/, "must start with a letter, digit or _ and contain only letters, digits, _ @ . - and spaces")
  .refine((s) => !s.endsWith(" "), "must not end with a space");

export const ActionKind = z.enum(["nodejs", "c"]);
export type ActionKind = z.infer<typeof ActionKind>;

export const ActionLimits = z.object({
  /** Wall-clock limit of one invocation, in ms. */
  timeout: z.number().int().min(100).max(300_000).default(60_000),
  /** Guest memory, in MiB. */
  memory: z.number().int().min(16).max(512).default(256),
});
export type ActionLimits = z.infer<typeof ActionLimits>;

/** What a user sends in `PUT .../actions/{name}`. */
export const ActionPut = z
  .object({
    exec: z.object({
      kind: ActionKind,
      code: z.string().min(1, "code must not be empty").max(4 * 1024 * 1024),
    }).strict(),
    limits: ActionLimits.partial().optional(),
  })
  .strict();
export type ActionPut = z.infer<typeof ActionPut>;

/** An action as stored in ACTIONS_BUCKET and returned by the API. */
export const Action = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  exec: z.object({ kind: ActionKind, code: z.string(), binary: z.boolean().default(false) }),
  limits: z.object({ timeout: z.number().int(), memory: z.number().int() }),
  /** Content hash of the code (and kind), names the compiled guest image in runner caches. */
  codeHash: z.string(),
  updated: z.number().int(),
});
export type Action = z.infer<typeof Action>;

export const ActivationId = z.string().regex(/^[0-9a-f]{32}$/, "must be 32 lowercase hex digits");

/** Published to INVOCATIONS_STREAM by the gateway and the triggers. */
export const InvocationEvent = z.object({
  activationId: ActivationId,
  namespace: z.string(),
  name: z.string(),
  params: z.record(z.string(), z.unknown()),
  /** Where to send the finished record for a blocking caller, if any. */
  replyTo: z.string().optional(),
  /** Epoch ms when the event was published (waitTime is measured from it). */
  published: z.number().int(),
});
export type InvocationEvent = z.infer<typeof InvocationEvent>;

export const ActivationStatus = z.enum([
  "success",
  "application error",
  "action developer error",
  "whisk internal error",
]);
export type ActivationStatus = z.infer<typeof ActivationStatus>;

/** Activation record, stored in ACTIVATIONS_BUCKET under its id; fields as OpenWhisk's. */
export const Activation = z.object({
  activationId: ActivationId,
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  start: z.number().int(),
  end: z.number().int(),
  duration: z.number().int(),
  response: z.object({
    status: ActivationStatus,
    statusCode: z.number().int(),
    success: z.boolean(),
    result: z.record(z.string(), z.unknown()),
  }),
  logs: z.array(z.string()),
  annotations: z.array(z.object({ key: z.string(), value: z.unknown() })),
});
export type Activation = z.infer<typeof Activation>;

/** Sent by each runner on RUNNER_HEARTBEAT_SUBJECT. */
export const RunnerHeartbeat = z.object({
  runnerId: z.string().regex(/^[A-Za-z0-9_-]+$/),
  /** Invocations the runner will run at once. */
  capacity: z.number().int().positive(),
  /** Invocations it is running now. */
  inflight: z.number().int().nonnegative(),
  at: z.number().int(),
  /** The engine's snapshot pool since the runner started, for operators (runner/engine.ts EngineStats). */
  engine: z
    .object({
      hits: z.number(), misses: z.number(), coldStarts: z.number(), evictions: z.number(),
      snapshots: z.number(), bytes: z.number(), idleVms: z.number(), snapshotBytes: z.number(),
    })
    .optional(),
});
export type RunnerHeartbeat = z.infer<typeof RunnerHeartbeat>;

/** Reply of a runner to an assignment: the activation it finished. */
export const AssignmentReply = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), activationId: ActivationId }),
  z.object({ ok: z.literal(false), error: z.string(), retry: z.boolean() }),
]);
export type AssignmentReply = z.infer<typeof AssignmentReply>;

/** Asks a runner to compile/check code before the gateway stores an action. */
export const BuildRequest = z.object({ kind: ActionKind, code: z.string() });
export type BuildRequest = z.infer<typeof BuildRequest>;
export const BuildReply = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), codeHash: z.string() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type BuildReply = z.infer<typeof BuildReply>;

/** A namespace's API key record in AUTH_BUCKET, under the key's uuid. */
export const AuthRecord = z.object({
  namespace: z.string(),
  /** scrypt(key, salt) in hex; the key itself is never stored. */
  keyHash: z.string(),
  salt: z.string(),
  created: z.number().int(),
});
export type AuthRecord = z.infer<typeof AuthRecord>;

/** A NATS message body parsed as JSON and validated; bad JSON fails like any other invalid record. */
export function decodeMessage<T extends z.ZodType>(
  schema: T,
  data: Uint8Array,
): { success: true; data: z.output<T> } | { success: false; error: z.ZodError } {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { success: false, error: new z.ZodError([{ code: "custom", message: "not valid JSON", path: [], input: data }]) };
  }
  return schema.safeParse(value);
}

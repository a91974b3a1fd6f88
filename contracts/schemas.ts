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

/** The runtimes a runner builds images for (what BuildRequest and the image store speak). */
export const ActionKind = z.enum(["nodejs", "c"]);
export type ActionKind = z.infer<typeof ActionKind>;

/**
 * Kinds a user may give for code: `nodejs:default` and `nodejs:20` are OpenWhisk's names and are
 * stored as given (clients read them back) but run on the one JS image.
 */
export const CodeKind = z.enum(["nodejs", "nodejs:default", "nodejs:20", "c"]);
export type CodeKind = z.infer<typeof CodeKind>;
export const runtimeOf = (kind: CodeKind): ActionKind => (kind === "c" ? "c" : "nodejs");

/** OpenWhisk's `[{key, value}]` lists (parameters, annotations). */
export const KeyValue = z
  .object({
    key: z.string().min(1).max(256),
    value: z.unknown().refine((v) => v !== undefined, "value is required"),
  })
  .strict();
export type KeyValue = z.infer<typeof KeyValue>;
export const KeyValues = z.array(KeyValue).max(1000);

/** `[{key, value}]` → object; a later key overrides an earlier one, as OpenWhisk merges them. */
export const keyValuesToObject = (list: readonly KeyValue[]): Record<string, unknown> =>
  Object.fromEntries(list.map(({ key, value }) => [key, value]));

/**
 * Where an invocation runs: `kvm`, a virtine on /dev/kvm, or `process`, a sandboxed process for
 * hosts without KVM (runner/engine.ts Isolation). As a requirement (an action's annotation, a
 * namespace's setting, an event's field) a tier names the weakest tier acceptable: `kvm` admits
 * kvm runners only, `process` any runner.
 */
export const Isolation = z.enum(["kvm", "process"]);
export type Isolation = z.infer<typeof Isolation>;
/** The action annotation that sets its requirement (OpenWhisk-style: `{key: "isolation", value: "kvm"}`). */
export const ISOLATION_ANNOTATION = "isolation";
const STRENGTH: Record<Isolation, number> = { process: 0, kvm: 1 };

/** Whether a runner of tier `tier` may run what requires `required` (absent: anything goes). */
export const satisfiesIsolation = (tier: Isolation, required: Isolation | undefined): boolean =>
  required === undefined || STRENGTH[tier] >= STRENGTH[required];

/**
 * The strongest of some requirements, or undefined when none asks for more than any runner gives:
 * `process` is what every runner satisfies, so it is no requirement at all and is left out.
 */
export function strongestIsolation(...required: Array<Isolation | undefined>): Isolation | undefined {
  let best: Isolation | undefined;
  for (const r of required) if (r !== undefined && (best === undefined || STRENGTH[r] > STRENGTH[best])) best = r;
  return best === "process" ? undefined : best;
}

/** The requirement an action's annotations state; an invalid value (refused at PUT) counts as none. */
export function annotatedIsolation(annotations: readonly { key: string; value: unknown }[]): Isolation | undefined {
  // The last one wins, as keyValuesToObject merges them.
  for (let i = annotations.length - 1; i >= 0; i--) {
    if (annotations[i]!.key !== ISOLATION_ANNOTATION) continue;
    const parsed = Isolation.safeParse(annotations[i]!.value);
    return parsed.success ? parsed.data : undefined;
  }
  return undefined;
}

export const ActionLimits = z.object({
  /** Wall-clock limit of one invocation, in ms. */
  timeout: z.number().int().min(100).max(300_000).default(60_000),
  /** Guest memory, in MiB. */
  memory: z.number().int().min(16).max(512).default(256),
  /**
   * Log bytes kept per activation, in MB of 1024² bytes (OpenWhisk's range); the runner caps it at
   * what one activation record can carry (MAX_RECORD_LOG_BYTES in runner/logs-format.ts).
   */
  logs: z.number().int().min(0).max(10).default(10),
});
export type ActionLimits = z.infer<typeof ActionLimits>;

/** What a user sends in `PUT .../actions/{name}`. */
export const CodeExec = z
  .object({
    kind: CodeKind,
    code: z.string().min(1, "code must not be empty").max(4 * 1024 * 1024),
    /** OpenWhisk clients send `binary: false` for source code; binaries are not supported. */
    binary: z.literal(false).optional(),
  })
  .strict();
/** A fully qualified action name as OpenWhisk writes components: `/ns/action` or `/ns/pkg/action`. */
export const QualifiedActionName = z
  .string()
  .max(1024)
  .regex(/^\/[^/]+\/[^/]+(\/[^/]+)?$/, "must be /namespace/action or /namespace/package/action");
export const SequenceExec = z
  .object({ kind: z.literal("sequence"), components: z.array(QualifiedActionName).min(1).max(50) })
  .strict();
export const ExecPut = z.discriminatedUnion("kind", [CodeExec, SequenceExec]);

export const ActionPut = z
  .object({
    /** Required to create; an update without it keeps the code. */
    exec: ExecPut.optional(),
    limits: ActionLimits.partial().optional(),
    parameters: KeyValues.optional(),
    annotations: KeyValues.optional(),
    publish: z.boolean().optional(),
    // OpenWhisk clients echo these back on update; they must match the path, so they are ignored.
    namespace: z.string().optional(),
    name: z.string().optional(),
    version: z.string().optional(),
  })
  .strict();
export type ActionPut = z.infer<typeof ActionPut>;

/** An action as stored in ACTIONS_BUCKET and returned by the API. */
export const Action = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  exec: z.union([
    z.object({ kind: CodeKind, code: z.string(), binary: z.boolean().default(false) }),
    z.object({ kind: z.literal("sequence"), components: z.array(z.string()) }),
  ]),
  limits: z.object({ timeout: z.number().int(), memory: z.number().int(), logs: z.number().int().default(10) }),
  /** Default parameters; invoke parameters override them. */
  parameters: z.array(KeyValue).default([]),
  annotations: z.array(KeyValue).default([]),
  publish: z.boolean().default(false),
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
  /**
   * The stored action to run when it is not the current `namespace/name`: a pinned version
   * (`?version=`) or the action behind a package binding. `params` already hold its defaults.
   */
  target: z.object({ namespace: z.string(), name: z.string(), version: z.string().optional() }).optional(),
  /** `namespace/binding` when invoked through a package binding; recorded as the `binding` annotation. */
  binding: z.string().optional(),
  /**
   * The weakest tier that may run it (see Isolation), set by the gateway from the action's
   * annotation, its sequence components' and the namespaces' settings; absent: any runner.
   */
  isolation: Isolation.optional(),
  /**
   * Set for a sequence: its components, resolved by the gateway (packages, bindings, nested
   * sequences flattened) with each one's default parameters; the runner runs them in order.
   */
  sequence: z
    .array(
      z.object({
        namespace: z.string(),
        name: z.string(),
        version: z.string(),
        params: z.record(z.string(), z.unknown()),
        /** As the event's `binding`, for a component named through a package binding. */
        binding: z.string().optional(),
        /** The component's own requirement (its annotation); the event's `isolation` covers it. */
        isolation: Isolation.optional(),
      }),
    )
    .max(50)
    .optional(),
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
  /** Who invoked it; OpenWhisk puts the key's subject here, Vespid the caller's namespace. */
  subject: z.string().optional(),
  /** For a sequence's component: the sequence's activation id, as OpenWhisk's `cause`. */
  cause: z.string().optional(),
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

/** A binding names the package it stands for. */
export const PackageRef = z.object({ namespace: EntityName, name: EntityName }).strict();

/** What a user sends in `PUT .../packages/{name}`. */
export const PackagePut = z
  .object({
    parameters: KeyValues.optional(),
    annotations: KeyValues.optional(),
    publish: z.boolean().optional(),
    /** OpenWhisk sends `{}` for "not a binding". */
    binding: z.union([PackageRef, z.object({}).strict()]).optional(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    version: z.string().optional(),
  })
  .strict();
export type PackagePut = z.infer<typeof PackagePut>;

/** A package as stored in PACKAGES_BUCKET under `<ns>.<name>`. */
export const Package = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  publish: z.boolean(),
  parameters: z.array(KeyValue),
  annotations: z.array(KeyValue),
  binding: PackageRef.optional(),
  updated: z.number().int(),
});
export type Package = z.infer<typeof Package>;

/** Sent by each runner on RUNNER_HEARTBEAT_SUBJECT. */
export const RunnerHeartbeat = z.object({
  runnerId: z.string().regex(/^[A-Za-z0-9_-]+$/),
  /** Invocations the runner will run at once. */
  capacity: z.number().int().positive(),
  /** Invocations it is running now. */
  inflight: z.number().int().nonnegative(),
  at: z.number().int(),
  /** The tier its invocations run on; absent from runners older than tiers, which ran virtines only. */
  isolation: Isolation.optional(),
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
  z.object({
    ok: z.literal(false),
    error: z.string(),
    /**
     * Whose fault: `code` (a compiler error, code that throws at load: the client's) or `host`
     * (the runner could not check it at all: a broken install, an engine that cannot start).
     * Absent means code, as runners older than this field only said so.
     */
    fault: z.enum(["code", "host"]).optional(),
  }),
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

/**
 * A namespace's invocation limits: invocations running at once and started per minute. OpenWhisk's
 * defaults are 100 and 120; Vespid's embedded defaults are far higher (infra/config.ts) so a load
 * test on one machine is not throttled.
 */
export const NamespaceLimits = z
  .object({
    concurrent: z.number().int().min(0).max(1_000_000),
    perMinute: z.number().int().min(0).max(100_000_000),
  })
  .strict();
export type NamespaceLimits = z.infer<typeof NamespaceLimits>;

/** A namespace in NAMESPACES_BUCKET; `limits` absent means the platform defaults. */
export const NamespaceRecord = z.object({
  name: z.string(),
  created: z.number().int(),
  limits: NamespaceLimits.partial().optional(),
  /** The weakest tier its actions may run on (`vespid admin isolation set`); absent: any runner. */
  isolation: Isolation.optional(),
});
export type NamespaceRecord = z.infer<typeof NamespaceRecord>;

/** What one gateway counted for one namespace, in LIMIT_COUNTS_BUCKET. */
export const LimitCount = z.object({
  /** Invocations this gateway started that have not finished. */
  inflight: z.number().int().nonnegative(),
  /** The minute (epoch ms / 60000, floored) `started` counts. */
  minute: z.number().int(),
  /** Invocations this gateway started in that minute. */
  started: z.number().int().nonnegative(),
});
export type LimitCount = z.infer<typeof LimitCount>;

/** Where a trigger fire came from. */
export const FireSource = z.enum(["api", "webhook", "alarm", "nats"]);
export type FireSource = z.infer<typeof FireSource>;

/**
 * One firing of a trigger, published to FIRES_STREAM (message id = activationId, so a republished
 * fire is dropped by JetStream's duplicate window) only once it is accepted; the triggers
 * component turns it into rule activations and the trigger's own activation record.
 */
export const FireEvent = z.object({
  /** The trigger's activation id: what `POST …/triggers/{name}` answers. */
  activationId: ActivationId,
  /** The trigger's namespace and name. */
  namespace: EntityName,
  trigger: EntityName,
  /** The fire's payload; the trigger's parameters are merged under it when rules run. */
  payload: z.record(z.string(), z.unknown()),
  /** Who fired it, OpenWhisk's activation `subject`: the caller's namespace, or the feed's owner. */
  subject: z.string(),
  source: FireSource,
  /** Epoch ms when the fire was accepted. */
  time: z.number().int(),
  /**
   * How many fires led to this one (0: none). A fire caused by an activation that a fire started
   * carries its cause's depth + 1; beyond MAX_FIRE_DEPTH the triggers component records an error
   * instead of starting rules, so a rule whose action fires its own trigger cannot loop forever.
   */
  depth: z.number().int().min(0).default(0),
  /** The activation that caused this fire, if any. */
  cause: ActivationId.optional(),
});
export type FireEvent = z.infer<typeof FireEvent>;
export const MAX_FIRE_DEPTH = 8;

/** What a feed registration drives. */
export const FeedKind = z.enum(["alarm", "once", "interval", "nats"]);
export type FeedKind = z.infer<typeof FeedKind>;

/**
 * A feed set up for a trigger by its feed action's CREATE lifecycle event (FEEDS_BUCKET, key
 * entityKey(namespace, trigger)); READ returns it, UPDATE replaces `params`, PAUSE/UNPAUSE set
 * `status`, DELETE removes it. The alarms and NATS feed services watch the bucket.
 */
export const FeedRegistration = z.object({
  /** The trigger it fires. */
  namespace: EntityName,
  trigger: EntityName,
  /** The feed action, fully qualified: `/whisk.system/alarms/alarm`. */
  feed: z.string(),
  kind: FeedKind,
  /** The feed's parameters as given to CREATE/UPDATE, without lifecycleEvent, triggerName, authKey. */
  params: z.record(z.string(), z.unknown()),
  status: z.enum(["active", "paused"]),
  created: z.number().int(),
  updated: z.number().int(),
});
export type FeedRegistration = z.infer<typeof FeedRegistration>;

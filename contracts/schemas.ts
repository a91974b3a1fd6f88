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

/** OpenWhisk's `exec.main`: a function name (a dotted path into the exports), `file.fn` in a zip. */
export const ActionMain = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_$@/-]+(\.[A-Za-z_$][\w$]*)*$/, "must name a function, e.g. main or handler (in a zip also file.function, e.g. lib/app.handler)");

/** What a user sends in `PUT .../actions/{name}`. */
export const CodeExec = z
  .object({
    kind: CodeKind,
    /** Empty code is accepted, as OpenWhisk does; invoking it is OpenWhisk's "Missing main/no code to execute." */
    code: z.string().max(4 * 1024 * 1024),
    /**
     * `true`: the code is a base64 zip (a JS action with several files and node_modules). Absent:
     * OpenWhisk's guess, binary when the code starts with "UE" (base64 of a zip's "PK").
     */
    binary: z.boolean().optional(),
    /** The function to call (default `main`); in a zip also `file.function`, as OpenWhisk reads it. */
    main: ActionMain.optional(),
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

/**
 * System actions the platform runs itself, in the runner's process instead of a guest: the feed
 * actions of `whisk.system` (catalog/feeds/), which must reach NATS and guests cannot. Only the
 * catalog installs them; a PUT can never name one (CodeKind does not include them).
 */
export const BuiltinKind = z.enum(["builtin:alarm", "builtin:once", "builtin:interval", "builtin:nats"]);
export type BuiltinKind = z.infer<typeof BuiltinKind>;
/** The `isolation` annotation of a builtin action's records: no guest ran it, the platform did. */
export const PLATFORM_ISOLATION = "platform";

/** An action as stored in ACTIONS_BUCKET and returned by the API. */
export const Action = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  exec: z.union([
    z.object({ kind: CodeKind, code: z.string(), binary: z.boolean().default(false), main: z.string().optional() }),
    z.object({ kind: z.literal("sequence"), components: z.array(z.string()) }),
    // `code` says, for people reading the action, which host module runs it.
    z.object({ kind: BuiltinKind, code: z.string(), binary: z.boolean().default(false) }),
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
   * The HTTP request that queued it (the gateway's `X-Request-Id`), so the scheduler's and the
   * runner's log lines about the call carry the gateway's `reqId`; absent for fires and retries
   * of events queued before it existed. Logs only: nothing depends on it.
   */
  requestId: z.string().max(255).optional(),
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
  /**
   * Set by the scheduler on an assignment, never by publishers: JetStream delivered this event
   * before (delivery count > 1), so an earlier delivery may have run it. The runner then looks for
   * its record first and, finding one, answers with it instead of running the call again.
   */
  redelivered: z.boolean().optional(),
  /**
   * The KV revision of the action record the gateway resolved: a runner's cached copy older than
   * this is read again (infra/kv-cache.ts), so an invocation right after an update runs the update.
   */
  actionRevision: z.number().int().positive().optional(),
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
  /** Invocations the runner will run at once; 0 while it is unhealthy or shutting down. */
  capacity: z.number().int().nonnegative(),
  /** Invocations whose engine run is under way now (recording a finished one holds no slot). */
  inflight: z.number().int().nonnegative(),
  /** Calls (schedulers' and gateways' direct ones, runner/assignments.ts) waiting for a slot, and how many may. */
  queued: z.number().int().nonnegative().optional(),
  queueLimit: z.number().int().nonnegative().optional(),
  at: z.number().int(),
  /**
   * Counts this runner's heartbeats: an activation missing from a heartbeat later than the one an
   * assignment was accepted at (AssignmentAck.seq) is no longer held by the runner.
   */
  seq: z.number().int().nonnegative().optional(),
  /** Every activation the runner holds (running or being recorded): the leases schedulers check. */
  activations: z.array(z.string()).optional(),
  /** Why the runner takes no work (its engine failed to start, or keeps failing); absent when healthy. */
  unhealthy: z.string().optional(),
  /** The runner is shutting down: it takes no more work and finishes or hands back what it holds. */
  closing: z.boolean().optional(),
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

/**
 * A runner's immediate answer to an assignment. `seq`: its heartbeat count when it took the work.
 * A refusal with `retry` (full, unhealthy, shutting down) costs the event nothing: it is placed again.
 */
export const AssignmentAck = z.discriminatedUnion("accepted", [
  z.object({ accepted: z.literal(true), seq: z.number().int().nonnegative() }),
  z.object({ accepted: z.literal(false), error: z.string(), retry: z.boolean() }),
]);
export type AssignmentAck = z.infer<typeof AssignmentAck>;

/**
 * What a runner tells the assigning scheduler (fire and forget): `ran` once the engine is done (the
 * slot is free while the record is written), `ended` once the activation is recorded (`ok`) or
 * could not be (`retry`: a system failure, the event is retried), or handed back at shutdown.
 */
export const AssignmentNotice = z.object({
  runnerId: z.string(),
  activationId: ActivationId,
  phase: z.enum(["ran", "ended"]),
  ok: z.boolean().optional(),
  retry: z.boolean().optional(),
  error: z.string().optional(),
});
export type AssignmentNotice = z.infer<typeof AssignmentNotice>;

/** A dead letter (DEAD_LETTER_STREAM): an invocation that failed on the platform's side too often. */
export const DeadLetter = z.object({
  activationId: ActivationId,
  namespace: z.string(),
  name: z.string(),
  /** The last system failure. */
  reason: z.string(),
  /** Deliveries it had. */
  attempts: z.number().int().nonnegative(),
  /** Epoch ms it was given up on. */
  failedAt: z.number().int(),
  /** The event as published (replay publishes it again under a new activation id). */
  event: InvocationEvent,
});
export type DeadLetter = z.infer<typeof DeadLetter>;

/** Asks a runner to compile/check code before the gateway stores an action. */
export const BuildRequest = z.object({
  kind: ActionKind,
  code: z.string(),
  /** JS only: the code is a base64 zip, and the function to call (exec.binary, exec.main). */
  binary: z.boolean().optional(),
  main: z.string().optional(),
});
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

/**
 * Fields OpenWhisk clients send back in a trigger's or rule's PUT body on update (they echo what
 * GET returned); they must match the path, so they are accepted and ignored.
 */
const EchoedEntityFields = {
  namespace: z.string().optional(),
  name: z.string().optional(),
  version: z.string().optional(),
};

/** What every stored trigger and rule starts with: its namespace, name, semver and whether it is shared. */
const StoredEntityHead = {
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  publish: z.boolean(),
};

/** What a user sends in `PUT …/triggers/{name}`; OpenWhisk clients echo namespace/name/version/rules back. */
export const TriggerPut = z
  .object({
    parameters: KeyValues.optional(),
    annotations: KeyValues.optional(),
    /** OpenWhisk's trigger limits have no fields: `{}`. */
    limits: z.object({}).strict().optional(),
    publish: z.boolean().optional(),
    ...EchoedEntityFields,
    rules: z.unknown().optional(),
    updated: z.unknown().optional(),
  })
  .strict();
export type TriggerPut = z.infer<typeof TriggerPut>;

/** A trigger as stored in TRIGGERS_BUCKET under entityKey(namespace, name). */
export const Trigger = z.object({
  ...StoredEntityHead,
  /** Default parameters of its fires: the fire's payload overrides them. */
  parameters: z.array(KeyValue),
  annotations: z.array(KeyValue),
  updated: z.number().int(),
});
export type Trigger = z.infer<typeof Trigger>;

export const RuleStatus = z.enum(["active", "inactive"]);
export type RuleStatus = z.infer<typeof RuleStatus>;

/** What a user sends in `PUT …/rules/{name}`: names as `/ns/trigger`, `/ns/[pkg/]action` (`_`: the caller's) or relative. */
export const RulePut = z
  .object({
    trigger: z.string().min(1).max(1024).optional(),
    action: z.string().min(1).max(1024).optional(),
    annotations: KeyValues.optional(),
    publish: z.boolean().optional(),
    ...EchoedEntityFields,
    status: z.unknown().optional(),
    updated: z.unknown().optional(),
  })
  .strict();
export type RulePut = z.infer<typeof RulePut>;

/** A rule as stored in RULES_BUCKET under entityKey(namespace, name); trigger and action fully qualified. */
export const Rule = z.object({
  ...StoredEntityHead,
  annotations: z.array(KeyValue),
  /** `/ns/trigger`: always the rule's own namespace. */
  trigger: z.string(),
  /** `/ns/action` or `/ns/pkg/action` (another namespace's only inside a published package). */
  action: z.string(),
  status: RuleStatus,
  updated: z.number().int(),
});
export type Rule = z.infer<typeof Rule>;

/**
 * First tokens of subjects a NATS feed may never listen on: Vespid's own traffic (invocation
 * parameters, results, fires of every namespace), the JetStream, KV and system APIs, and reply
 * inboxes. A subject whose first token is a wildcard could reach them too, so only the single
 * token `*` is allowed as a leading wildcard.
 */
const RESERVED_FIRST_TOKENS = new Set(["vespid", "_INBOX"]);

/** Why `subject` is no subject a NATS feed may listen on, or undefined when it is fine. */
export function natsFeedSubjectIssue(subject: string): string | undefined {
  if (/\s/.test(subject)) return "must not contain whitespace";
  const tokens = subject.split(".");
  if (tokens.some((t) => t === "")) return "must be dot-separated tokens, none empty";
  for (const [i, t] of tokens.entries()) {
    if ((t.includes("*") || t.includes(">")) && t !== "*" && t !== ">") return `wildcards * and > must be whole tokens (token "${t}")`;
    if (t === ">" && i !== tokens.length - 1) return "> may only be the last token";
  }
  const first = tokens[0]!;
  if (first === ">" || (first === "*" && tokens.length > 1)) return "must start with a literal token: a leading wildcard would reach Vespid's and NATS's own subjects";
  if (RESERVED_FIRST_TOKENS.has(first) || first.startsWith("$")) return `subjects under ${first}. are reserved (vespid.>, $JS.>, $KV.>, $SYS.>, _INBOX.> and every $…)`;
  return undefined;
}

/** Stream and consumer names: what JetStream allows, without `.`, wildcards, whitespace or slashes. */
const JetStreamName = z.string().min(1).max(128).regex(/^[^\s.*>/\\]+$/, "must not contain whitespace, ., *, >, / or \\");

/**
 * Parameters of the feed `/whisk.system/nats/subscribe` (FeedRegistration.params of kind `nats`):
 * `subject` (wildcards allowed), and to read a JetStream stream instead of core NATS, `stream`
 * (an existing stream holding the subject) and optionally `durable` (the consumer's name; by
 * default one derived from the trigger).
 */
export const NatsFeedParams = z.object({
  subject: z.string().min(1).max(256).superRefine((s, ctx) => {
    const issue = natsFeedSubjectIssue(s);
    if (issue) ctx.addIssue({ code: "custom", message: issue });
  }),
  stream: JetStreamName.refine((s) => !/^(VESPID_|KV_|OBJ_)/.test(s), "streams VESPID_*, KV_* and OBJ_* are Vespid's and NATS's own").optional(),
  durable: JetStreamName.optional(),
}).refine((p) => p.durable === undefined || p.stream !== undefined, { message: "durable needs a stream", path: ["durable"] });
export type NatsFeedParams = z.infer<typeof NatsFeedParams>;

/** A live runner's figures in PlatformStats: platform-wide, no tenant data. */
export const RunnerStats = z.object({
  runnerId: z.string(),
  isolation: Isolation,
  /** Slots, and runs under way in them. */
  capacity: z.number(),
  inflight: z.number(),
  /** Guests running a call now, and idle VMs of the warm pool. */
  activeVirtines: z.number(),
  idleVirtines: z.number(),
  poolHitsPerSecond: z.number(),
  poolMissesPerSecond: z.number(),
  /** Mean cold-start latency in the window, ms; null when none. */
  coldStartMs: z.number().nullable(),
  /** The runner process's CPU over the window, % of one core. */
  cpuPercent: z.number(),
  rssBytes: z.number(),
  heapUsedBytes: z.number(),
});
export type RunnerStats = z.infer<typeof RunnerStats>;

/**
 * GET /api/v1/stats (gateway/routes/stats.ts): the caller's namespace's figures over the last
 * `windowSeconds`, and the live runners'. The contract is /work/briefs/telemetry-contract.md and
 * docs/telemetry.md.
 */
export const PlatformStats = z.object({
  /** ms since the epoch */
  at: z.number(),
  windowSeconds: z.number(),
  namespace: z.string(),
  invocations: z.object({
    /** Activations ended since the platform's counters began (sum over live runners). */
    total: z.number(),
    perSecond: z.number(),
    /** Of which not status success. */
    errorsPerSecond: z.number(),
    coldStartsPerSecond: z.number(),
    /** warm / all in the window; null when none. */
    warmHitRatio: z.number().nullable(),
  }),
  /** ms; null when no activation ended in the window. */
  latency: z.object({
    p50: z.number().nullable(),
    p90: z.number().nullable(),
    p99: z.number().nullable(),
    waitP50: z.number().nullable(),
    waitP99: z.number().nullable(),
  }),
  runners: z.array(RunnerStats),
});
export type PlatformStats = z.infer<typeof PlatformStats>;

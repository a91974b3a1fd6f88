// `Idempotency-Key` on invocations and trigger fires: a request repeated with the same key, through
// any gateway, within the window (IDEMPOTENCY_BUCKET's max age, 24 h by default) answers the first
// request's activation instead of running again.
//
// The first request claims the key with a KV create (only if absent) holding a fresh activation
// id, BEFORE publishing; two gateways racing get one winner, and the loser answers the winner's id.
// A repeat whose activation has no record yet republishes the same event under the same id while
// that id is inside the stream's duplicate window: JetStream stores an id once, so this cannot
// queue a second run, and it does queue the call when the first gateway died between claiming and
// publishing. A claim whose request was refused before publishing (429, 413, 400) is released, so
// a retry runs; one whose publish failed uncertainly is kept, so a retry republishes that id.
import { createHash } from "node:crypto";
import { JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { Activation, activationKey, idempotencyKey } from "../contracts/index.ts";
import { INVOCATION_DUPLICATE_WINDOW_MS } from "../infra/provision.ts";
import { ApiError } from "./errors.ts";
import { MaybeQueuedError, newActivationId, type InvocationOutcome, type InvocationRequest, type InvokeOptions, type Invoker } from "./invoke.ts";

export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";
/** Stripe's bound; the IETF draft sets none. Keys are hashed, so their length costs nothing stored. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/**
 * A repeat republishes its claim's event only while the claim is this young: inside the stream's
 * duplicate window (2 min), with a margin for clocks and slow publishes.
 */
export const REPUBLISH_WITHIN_MS = INVOCATION_DUPLICATE_WINDOW_MS - 30_000;
/**
 * ...and only once it is this old: by then its own request has published (or failed to; the
 * publish timeout is 2 s). Republishing sooner could store the repeat's copy first, which names no
 * gateway to answer, and leave the first caller waiting in vain.
 */
export const REPUBLISH_AFTER_MS = 5_000;
/** JetStream: "wrong last sequence", i.e. the key exists. */
const WRONG_LAST_SEQUENCE = 10071;

/**
 * The key a request carries, or undefined. The IETF draft sends it as a structured-field string
 * (`"abc"`); a bare value is taken as is. 1–255 printable ASCII characters, else a 400.
 */
export function idempotencyKeyOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  let key = header.trim();
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1);
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !/^[\x20-\x7e]+$/.test(key)) {
    throw new ApiError(400, `the ${IDEMPOTENCY_KEY_HEADER} header must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, e.g. a UUID`);
  }
  return key;
}

/** What a request asks for, hashed: a repeat must ask for the same (keys of objects in any order). */
export function fingerprintOf(request: unknown): string {
  return createHash("sha256").update(canonicalJson(request)).digest("hex");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const Claim = z.object({ activationId: z.string(), fingerprint: z.string(), created: z.number() });
type Claim = z.infer<typeof Claim>;

export type ClaimResult =
  | { won: true; activationId: string; /** Forgets the key: the request was refused before anything was queued. */ release(): Promise<void> }
  | { won: false; activationId: string; created: number };

export class IdempotencyStore {
  private watching = 0;
  /** Activation ids with a delayed republish check pending: one per id, however many repeats. */
  readonly laterChecks = new Set<string>();

  constructor(
    private readonly keys: KV,
    private readonly activations: KV,
    /** Repeats waiting for a record at once (each holds a KV watch); more get 503. */
    private readonly maxWatches = Infinity,
  ) {}

  /**
   * Claims `key` of `namespace` for a new activation id, or finds the claim made before; a claim
   * made for a different request (fingerprint) is the caller's 422.
   */
  async claim(namespace: string, key: string, fingerprint: string): Promise<ClaimResult> {
    const kvKey = idempotencyKey(namespace, createHash("sha256").update(key).digest("hex"));
    // A claim released between our create and our get is gone: try again (rarely more than once).
    for (let attempt = 0; attempt < 5; attempt++) {
      const claim: Claim = { activationId: newActivationId(), fingerprint, created: Date.now() };
      try {
        const revision = await this.keys.create(kvKey, JSON.stringify(claim));
        return {
          won: true,
          activationId: claim.activationId,
          release: async () => {
            await this.keys.delete(kvKey, { previousSeq: revision }).catch(() => undefined);
          },
        };
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE)) throw err;
      }
      const entry = await this.keys.get(kvKey);
      if (!entry || entry.operation !== "PUT") continue;
      const parsed = Claim.safeParse(entry.json());
      if (!parsed.success) continue;
      if (parsed.data.fingerprint !== fingerprint) {
        throw new ApiError(
          422,
          `the ${IDEMPOTENCY_KEY_HEADER} was used before with a different request (another action, trigger or parameters); use a new key for a new request`,
        );
      }
      return { won: false, activationId: parsed.data.activationId, created: parsed.data.created };
    }
    throw new ApiError(503, `the ${IDEMPOTENCY_KEY_HEADER} could not be claimed; try again`, { "Retry-After": "1" });
  }

  /**
   * The activation's record, waiting up to `waitMs` for it (0: only if it exists now). A KV watch
   * of the one key, so it hears the record from whichever runner and gateway wrote it.
   */
  async record(namespace: string, activationId: string, waitMs: number): Promise<Activation | undefined> {
    const parse = (value: unknown) => {
      const parsed = Activation.safeParse(value);
      return parsed.success ? parsed.data : undefined;
    };
    const key = activationKey(namespace, activationId);
    if (waitMs <= 0) {
      const entry = await this.activations.get(key);
      return entry?.operation === "PUT" ? parse(entry.json()) : undefined;
    }
    if (this.watching >= this.maxWatches) {
      throw new ApiError(503, `this gateway already waits for ${this.watching} repeated blocking invocations, its limit; try again shortly`, { "Retry-After": "1" });
    }
    this.watching++;
    const watcher = await this.activations.watch({ key }).catch((err) => {
      this.watching--;
      throw err;
    });
    const timer = setTimeout(() => watcher.stop(), waitMs);
    try {
      for await (const entry of watcher) {
        if (entry.operation !== "PUT") continue;
        const record = parse(entry.json());
        if (record) return record;
      }
      return undefined;
    } finally {
      this.watching--;
      clearTimeout(timer);
      watcher.stop();
    }
  }
}

export interface IdempotentOutcome extends InvocationOutcome {
  /** True when this answers a repeat: the activation is the first request's. */
  replayed: boolean;
}

/**
 * Runs `request` once per key: the first request with `key` invokes (as without a key); a repeat
 * answers the same activation id, and when it blocks, the first request's record (waiting for it
 * while it runs).
 */
export async function invokeOnce(
  store: IdempotencyStore,
  invoker: Invoker,
  key: string,
  fingerprint: string,
  request: InvocationRequest,
  options: InvokeOptions,
  /** A background republish that failed (logged: the repeat was answered already). */
  onLateFailure?: (err: unknown) => void,
): Promise<IdempotentOutcome> {
  const claim = await store.claim(request.namespace, key, fingerprint);
  if (claim.won) {
    try {
      return { ...(await invoker.invoke({ ...request, activationId: claim.activationId }, options)), replayed: false };
    } catch (err) {
      // Refused before publishing: nothing runs, so the key must not pin an id that never will.
      if (!(err instanceof MaybeQueuedError)) await claim.release();
      throw err;
    }
  }
  const { activationId } = claim;
  const existing = await store.record(request.namespace, activationId, 0);
  const age = Date.now() - claim.created;
  const requeue = () => invoker.requeue({ ...request, activationId });
  if (!existing && age >= REPUBLISH_AFTER_MS && age < REPUBLISH_WITHIN_MS) await requeue();
  else if (!existing && age < REPUBLISH_AFTER_MS && !store.laterChecks.has(activationId)) {
    // The first request is just being queued, or its gateway died doing so: look again shortly.
    store.laterChecks.add(activationId);
    setTimeout(async () => {
      try {
        if (!(await store.record(request.namespace, activationId, 0))) await requeue();
      } catch (err) {
        onLateFailure?.(err);
      } finally {
        store.laterChecks.delete(activationId);
      }
    }, REPUBLISH_AFTER_MS - age).unref();
  }
  options.onQueued?.(activationId, true);
  if (options.waitMs === undefined) return { activationId, replayed: true };
  const activation = existing ?? (await store.record(request.namespace, activationId, options.waitMs));
  return { activationId, activation, replayed: true };
}

// Where finished activations go: the activations bucket, and the blocking caller's gateway.
//
// A record is written with a create-if-absent: the first record of an activation id stands, and
// nothing written later for that id (a re-execution after a redelivery, a scheduler giving up on an
// event a runner did finish) can change it. A write that finds a record already there sends that
// record, not its own, to the caller, so a blocking caller sees the first result.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { activationKey, type Activation } from "../contracts/index.ts";
import { ifUnchanged } from "../gateway/kv-entities.ts";
import { encodeActivation, internalError, withVerdict, type RunnerActivation } from "./activation.ts";

/** Room left in a NATS message for the KV and publish headers, bytes. */
const HEADER_ROOM = 4 * 1024;
/** nats-server's default max_payload, for a connection that has not reported its own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/**
 * Pauses before the second and later tries of a record write that failed (ms): a NATS reconnect
 * or a stream leader election takes seconds, and the finished call is worth more than a retry of
 * the whole event (which would run the action again).
 */
const STORE_RETRY_DELAYS_MS = [250, 1_000, 2_000];

/**
 * `created`: this write made the record. `existed`: a record was there already and stands
 * (`existing` is it, when it could be read). `failed`: no record could be written.
 */
export type RecordOutcome =
  | { outcome: "created" }
  | { outcome: "existed"; existing?: Activation }
  | { outcome: "failed" };

export class ActivationRecorder {
  /** Writes that found a record already there (each one logged): re-executions, late give-ups. */
  existingRecords = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly activations: KV,
    private readonly logger: Logger,
    /** Told of every record about to be stored (runner/metrics.ts counts them): a few increments, no I/O. */
    private readonly observe?: (activation: RunnerActivation) => void,
  ) {}

  /** Largest NATS message the server takes, bytes: a record must fit one. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** Most bytes of JSON one record may take: a NATS message, less room for headers. */
  get maxRecordBytes(): number {
    return this.maxPayload - HEADER_ROOM;
  }

  /**
   * The stored record of an activation as its JSON bytes, or undefined when there is none.
   * Throws when the bucket cannot be read.
   */
  async existing(namespace: string, activationId: string): Promise<Uint8Array | undefined> {
    const entry = await this.activations.get(activationKey(namespace, activationId));
    return entry?.operation === "PUT" ? entry.value : undefined;
  }

  /** Sends a stored record to the gateway waiting for it (a redelivery answered without running). */
  reply(replyTo: string | undefined, json: Uint8Array, activationId: string): void {
    if (!replyTo) return;
    try {
      this.nc.publish(replyTo, json);
    } catch (err) {
      this.logger.error({ err, activationId }, "could not send an activation to its caller");
    }
  }

  /**
   * Stores the record unless the activation has one already, and sends the record that stands to
   * the caller, if any (nothing when no record could be stored). Never throws: a record that cannot be encoded as given is stored as an
   * internal error saying why, so every call that got here has a record.
   */
  async record(activation: RunnerActivation, replyTo?: string): Promise<RecordOutcome> {
    const { activationId, namespace } = activation;
    try {
      this.observe?.(activation);
    } catch (err) {
      this.logger.warn({ err, activationId }, "could not count an activation in the metrics");
    }
    let json: Uint8Array;
    try {
      json = await encodeActivation(activation, this.maxRecordBytes);
    } catch (err) {
      this.logger.error({ err, activationId }, "could not encode an activation record");
      const reason = `The activation record could not be encoded: ${err instanceof Error ? err.message : String(err)}`;
      try {
        json = Buffer.from(JSON.stringify(withVerdict(activation, internalError(reason), [])));
      } catch (again) {
        this.logger.error({ err: again, activationId }, "could not encode even the error record");
        return { outcome: "failed" };
      }
    }
    const key = activationKey(namespace, activationId);
    // Stored first, so a caller that gets the result can also read it back by id.
    const created = await this.createWithRetries(key, json, activationId);
    // Not sent to the caller: the event goes back for redelivery, and the caller is to see the
    // record that will stand (of a later run, or the scheduler's when it gives up), not this one.
    if (created === "failed") return { outcome: "failed" };
    if (created === "created") {
      this.reply(replyTo, json, activationId);
      return { outcome: "created" };
    }
    let stored: Uint8Array | undefined;
    try {
      stored = await this.existing(namespace, activationId);
    } catch (err) {
      this.logger.error({ err, activationId }, "could not read the activation record that stands");
    }
    // A try that timed out after the server stored it: the record that stands is this one.
    if (stored && Buffer.from(stored).equals(Buffer.from(json))) {
      this.reply(replyTo, json, activationId);
      return { outcome: "created" };
    }
    this.existingRecords++;
    this.logger.warn({ activationId, existingRecords: this.existingRecords }, "an activation record existed already; it stands, this one is dropped");
    // The earlier record is what GET answers; the caller sees the same (ours only if it vanished).
    this.reply(replyTo, stored ?? json, activationId);
    return { outcome: "existed", ...(stored && { existing: JSON.parse(Buffer.from(stored).toString("utf8")) as Activation }) };
  }

  private async createWithRetries(key: string, json: Uint8Array, activationId: string): Promise<"created" | "existed" | "failed"> {
    for (let attempt = 0; ; attempt++) {
      try {
        // ifUnchanged answers false for "exists already"; any other failure (NATS away) throws.
        return (await ifUnchanged(() => this.activations.create(key, json))) ? "created" : "existed";
      } catch (err) {
        const delay = STORE_RETRY_DELAYS_MS[attempt];
        if (delay === undefined) {
          this.logger.error({ err, activationId }, "could not store an activation record");
          return "failed";
        }
        this.logger.warn({ err, activationId, attempt: attempt + 1 }, "could not store an activation record; trying again");
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}

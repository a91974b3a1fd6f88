// Where finished activations go: the activations bucket, and the blocking caller's gateway.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { activationKey } from "../contracts/index.ts";
import { encodeActivation, internalError, withVerdict, type RunnerActivation } from "./activation.ts";

/** Room left in a NATS message for the KV and publish headers, bytes. */
const HEADER_ROOM = 4 * 1024;
/** nats-server's default max_payload, for a connection that has not reported its own. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export class ActivationRecorder {
  constructor(
    private readonly nc: NatsConnection,
    private readonly activations: KV,
    private readonly logger: Logger,
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
   * True when the record was stored. The blocking caller, if any, gets it either way. Never throws:
   * a record that cannot be encoded as given is stored as an internal error saying why, so every
   * call that got here has a record.
   */
  async record(activation: RunnerActivation, replyTo?: string): Promise<boolean> {
    const { activationId, namespace } = activation;
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
        return false;
      }
    }
    let stored = true;
    try {
      // Stored first, so a caller that gets the result can also read it back by id.
      await this.activations.put(activationKey(namespace, activationId), json);
    } catch (err) {
      stored = false;
      this.logger.error({ err, activationId }, "could not store an activation record");
    }
    if (replyTo) {
      try {
        this.nc.publish(replyTo, json);
      } catch (err) {
        this.logger.error({ err, activationId }, "could not send an activation to its caller");
      }
    }
    return stored;
  }
}

// Where finished activations go: the activations bucket, and the blocking caller's gateway.
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { activationKey, type Activation } from "../contracts/index.ts";
import { fitActivation } from "./activation.ts";

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

  /** True when the record was stored. The blocking caller, if any, gets it either way. */
  async record(activation: Activation, replyTo?: string): Promise<boolean> {
    const maxBytes = this.maxPayload - HEADER_ROOM;
    const json = JSON.stringify(fitActivation(activation, maxBytes));
    const { activationId, namespace } = activation;
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

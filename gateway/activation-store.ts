// Activation records in ACTIVATIONS_BUCKET, written by the runners.
import type { KV } from "@nats-io/kv";
import { Activation } from "../contracts/index.ts";

export class ActivationStore {
  constructor(private readonly kv: KV) {}

  async get(activationId: string): Promise<Activation | undefined> {
    const entry = await this.kv.get(activationId);
    if (!entry || entry.operation !== "PUT") return undefined;
    return Activation.parse(entry.json());
  }
}

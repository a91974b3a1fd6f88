// Triggers and rules in their KV buckets: conditional writes for the gateway's routes (a lost race
// is a 409), and watched copies for every reader (the fire route, the fire consumer).
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { z } from "zod";
import { entityKey, FEEDS_BUCKET, namespaceKeyFilter, Rule, RULES_BUCKET, Trigger, TRIGGERS_BUCKET } from "../contracts/index.ts";
import { KvEntities } from "../gateway/kv-entities.ts";
import { WatchedBucket } from "./watched-bucket.ts";
import { qualifiedName } from "./names.ts";

export class EntityStore<T extends { namespace: string; name: string }> {
  private readonly entities: KvEntities<T>;
  constructor(
    kv: KV,
    readonly watched: WatchedBucket<T>,
    schema: z.ZodType<T>,
  ) {
    this.entities = new KvEntities(kv, schema, entityKey);
  }

  get(namespace: string, name: string) {
    return this.entities.get(namespace, name);
  }

  /** A namespace's records, from the watched copy. */
  list(namespace: string): T[] {
    const prefix = namespaceKeyFilter(namespace).slice(0, -1);
    return this.watched.values().filter((v) => entityKey(v.namespace, v.name).startsWith(prefix));
  }

  create(value: T): Promise<boolean> {
    return this.written(this.entities.create(value.namespace, value.name, value));
  }

  replace(value: T, revision: number): Promise<boolean> {
    return this.written(this.entities.replace(value.namespace, value.name, value, revision));
  }

  remove(value: T, revision: number): Promise<boolean> {
    return this.written(this.entities.remove(value.namespace, value.name, revision));
  }

  /** A write is answered once this process's copy shows it: the writer's next read sees its own write. */
  private async written(write: Promise<boolean>): Promise<boolean> {
    const ok = await write;
    if (ok) await this.watched.sync();
    return ok;
  }
}

export interface EventEntities {
  triggers: EntityStore<Trigger>;
  rules: EntityStore<Rule>;
  /** Feed registrations: removed with their trigger, so alarms and subject feeds stop. */
  feeds: KV;
  /** Every rule whose trigger is `/namespace/trigger`, from the watched copy. */
  rulesOf(namespace: string, trigger: string): Rule[];
  stop(): void;
}

/** Opens the buckets and loads the watched copies (resolves once they hold the current records). */
export async function openEventEntities(nc: NatsConnection, logger: Logger): Promise<EventEntities> {
  const kvm = new Kvm(nc);
  const [triggersKv, rulesKv, feeds] = await Promise.all([kvm.open(TRIGGERS_BUCKET), kvm.open(RULES_BUCKET), kvm.open(FEEDS_BUCKET)]);
  const [watchedTriggers, watchedRules] = await Promise.all([
    WatchedBucket.open(triggersKv, Trigger, logger.child({ bucket: TRIGGERS_BUCKET })),
    WatchedBucket.open(rulesKv, Rule, logger.child({ bucket: RULES_BUCKET })),
  ]);
  const rules = new EntityStore(rulesKv, watchedRules, Rule);
  return {
    triggers: new EntityStore(triggersKv, watchedTriggers, Trigger),
    rules,
    feeds,
    rulesOf: (namespace, trigger) => {
      const qualified = qualifiedName({ namespace, name: trigger });
      return watchedRules.values().filter((r) => r.namespace === namespace && r.trigger === qualified);
    },
    stop: () => {
      watchedTriggers.stop();
      watchedRules.stop();
    },
  };
}

// The NATS subject event source: watches FEEDS_BUCKET and keeps one binding per active
// registration of kind `nats` — a queue-group subscription on core NATS, or a durable consumer on
// a stream — so that a registration added, changed, paused or removed takes effect at once (the
// watch delivers it within milliseconds), in every triggers component, without a restart.
import { jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { FEEDS_BUCKET, FeedRegistration, NatsFeedParams } from "../contracts/index.ts";
import { entryJson, followBucket } from "../gateway/kv-watch.ts";
import { bindCoreSubject, type FeedBinding } from "./nats-core-binding.ts";
import { bindStream } from "./nats-stream-binding.ts";
import { publishFire } from "./publish.ts";

/** Fires `reg`'s trigger with `payload` under `activationId`; resolves once the fire is durable. */
export type FireFromFeed = (reg: FeedRegistration, payload: Record<string, unknown>, activationId: string) => Promise<void>;

export interface NatsFeedsOptions {
  nc: NatsConnection;
  logger: Logger;
}

/** What a binding was made from: a registration changing any of it is bound anew. */
interface Bound {
  binding: FeedBinding;
  /** subject, stream, durable and the registration's creation time, as one comparable string. */
  spec: string;
  /** stream and durable: if these change, the old consumer is released, not just left. */
  place: string;
}

export function fireFromFeed(js: JetStreamClient): FireFromFeed {
  return (reg, payload, activationId) =>
    publishFire(js, {
      activationId,
      namespace: reg.namespace,
      trigger: reg.trigger,
      payload,
      // OpenWhisk's activation subject: whoever fired it, here the feed's owner.
      subject: reg.namespace,
      source: "nats",
      time: Date.now(),
      depth: 0,
    });
}

export async function startNatsFeeds(opts: NatsFeedsOptions): Promise<{ stop(): Promise<void> }> {
  const logger = opts.logger.child({ service: "nats-feeds" });
  const jsm = await jetstreamManager(opts.nc);
  const fire = fireFromFeed(jsm.jetstream());
  const feeds = await new Kvm(opts.nc).open(FEEDS_BUCKET);
  const bound = new Map<string, Bound>();
  /** The last revision refused per key, so a bad registration is logged once, not on every restart of the watch. */
  const refused = new Map<string, number>();

  const desired = (entry: KvWatchEntry): { reg: FeedRegistration; params: NatsFeedParams } | undefined => {
    if (entry.operation !== "PUT") return undefined;
    const value = entryJson(entry);
    const reg = FeedRegistration.safeParse(value);
    if (!reg.success) {
      // Not ours to judge unless it claims to be a NATS feed; the other feed services read it too.
      if ((value as { kind?: unknown } | undefined)?.kind === "nats") refuse(entry, reg.error.message);
      return undefined;
    }
    if (reg.data.kind !== "nats" || reg.data.status !== "active") return undefined;
    const params = NatsFeedParams.safeParse(reg.data.params);
    if (!params.success) {
      refuse(entry, params.error.issues.map((i) => `${["params", ...i.path].join(".")}: ${i.message}`).join("; "));
      return undefined;
    }
    return { reg: reg.data, params: params.data };
  };

  const refuse = (entry: KvWatchEntry, why: string) => {
    if (refused.get(entry.key) === entry.revision) return;
    refused.set(entry.key, entry.revision);
    logger.warn({ key: entry.key, why }, "ignoring a NATS feed registration that is not valid");
  };

  const apply = async (entry: KvWatchEntry) => {
    const want = desired(entry);
    const place = want ? `${want.params.stream ?? ""}\n${want.params.durable ?? ""}` : "";
    const spec = want ? `${want.params.subject}\n${place}\n${want.reg.created}` : "";
    const current = bound.get(entry.key);
    if (current && current.spec === spec) return;
    if (current) {
      bound.delete(entry.key);
      // Paused, or changed in place: a stream consumer stays (a paused trigger's messages wait in
      // it). Deleted, moved to another stream or consumer, or no longer a NATS feed: released.
      const keep = (want && current.place === place) || (entry.operation === "PUT" && isPaused(entry));
      await (keep ? current.binding.stop() : current.binding.remove());
    }
    if (!want) return;
    const { reg, params } = want;
    const binding = params.stream
      ? bindStream(jsm, reg, { ...params, stream: params.stream }, fire, logger)
      : bindCoreSubject(opts.nc, reg, params, fire, logger);
    bound.set(entry.key, { binding, spec, place });
  };

  // LastValue first, then every change. Applied one after another so a quick add-then-delete of
  // one key never leaves a binding behind.
  const follower = await followBucket(feeds, apply, logger, "NATS feed registrations");
  logger.info("NATS feed service started");

  return {
    async stop() {
      await follower.stop();
      await Promise.all([...bound.values()].map((b) => b.binding.stop()));
      bound.clear();
    },
  };
}

function isPaused(entry: KvWatchEntry): boolean {
  return (entryJson(entry) as { status?: unknown } | null | undefined)?.status === "paused";
}

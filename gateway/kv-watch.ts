// Following a KV bucket: its current records, then every change, handed one at a time and in
// order to a function. An async function finishes with one entry before it gets the next, so a
// quick put-then-delete of a key is never applied the wrong way round. An entry the function
// throws on is logged and skipped: one bad record never stops the watch for the others. Used by
// every component that keeps a bucket's records in memory or acts on their changes.
import type { KV, KvEntry, KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "pino";

export interface BucketFollower {
  /** Ends the watch; resolves once the entry being applied, if any, is done. */
  stop(): Promise<void>;
}

/** `what` names the records in log lines: "alarm registrations", "API routes". */
export async function followBucket(
  kv: KV,
  apply: (entry: KvWatchEntry) => void | Promise<void>,
  logger: Logger,
  what: string,
): Promise<BucketFollower> {
  const watcher = await kv.watch();
  const following = (async () => {
    for await (const entry of watcher) {
      try {
        await apply(entry);
      } catch (err) {
        logger.error({ err, key: entry.key }, `could not apply a change to ${what}`);
      }
    }
  })().catch((err) => logger.error({ err }, `watching ${what} stopped`));
  return {
    async stop() {
      watcher.stop();
      await following;
    },
  };
}

/** The entry's value as JSON; undefined when it holds no JSON (a record no Vespid wrote). */
export function entryJson(entry: KvEntry): unknown {
  try {
    return entry.json();
  } catch {
    return undefined;
  }
}

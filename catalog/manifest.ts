// The system catalog: namespace `whisk.system` and its published packages, as OpenWhisk installs
// them (`utils`, `alarms`), plus Vespid's `nats`. The utils actions are ordinary JS actions whose
// code lives next to this file (catalog/utils/*.js) and runs in guests like any user's; the feed
// actions are builtin (contracts BuiltinKind): the runner runs them itself (runner/builtin.ts →
// catalog/feeds/), as they write feed registrations to NATS and guests have no network.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { BuiltinKind, KeyValue } from "../contracts/index.ts";

export const SYSTEM_NAMESPACE = "whisk.system";

export interface CatalogAction {
  name: string;
  exec: { kind: "nodejs:default"; code: string } | { kind: BuiltinKind; code: string };
  annotations: KeyValue[];
}

export interface CatalogPackage {
  name: string;
  annotations: KeyValue[];
  actions: CatalogAction[];
}

const utilsCode = (file: string) => readFileSync(fileURLToPath(new URL(`./utils/${file}`, import.meta.url)), "utf8");

const describe = (description: string, parameters?: Array<{ name: string; required: boolean; description: string }>): KeyValue[] => [
  { key: "description", value: description },
  ...(parameters ? [{ key: "parameters", value: parameters }] : []),
];

const util = (name: string, description: string, parameters?: Parameters<typeof describe>[1]): CatalogAction => ({
  name,
  exec: { kind: "nodejs:default", code: utilsCode(`${name}.js`) },
  annotations: describe(description, parameters),
});

/** A feed action (annotation `feed: true`, as `wsk package get --summary` shows feeds). */
const feed = (name: string, kind: BuiltinKind, module: string, description: string, parameters: Parameters<typeof describe>[1]): CatalogAction => ({
  name,
  exec: {
    kind,
    code: `// Run by the Vespid platform itself, not in a guest: ${module}.\n// Lifecycle events CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE of a trigger's feed.\n`,
  },
  annotations: [...describe(description, parameters), { key: "feed", value: true }],
});

/** What serves the three alarm feeds, for their `code` (people reading the action). */
const ALARM_FEEDS_MODULE = "catalog/feeds/lifecycle.ts, fired by triggers/alarms.ts";

const lifecycle = [
  { name: "lifecycleEvent", required: true, description: "CREATE, READ, UPDATE, DELETE, PAUSE or UNPAUSE" },
  { name: "triggerName", required: true, description: "the trigger, /namespace/name" },
  { name: "authKey", required: false, description: "sent by OpenWhisk clients; not used (the caller's namespace is known)" },
];
const dates = [
  { name: "startDate", required: false, description: "no fire before this (ISO 8601 or epoch ms)" },
  { name: "stopDate", required: false, description: "no fire from this on (ISO 8601 or epoch ms)" },
];
const common = [
  { name: "trigger_payload", required: false, description: "the payload of every fire (an object or its JSON)" },
  { name: "missed", required: false, description: "ticks missed while no alarms service ran: \"skip\" (default; once: \"fire-once\") or \"fire-once\"" },
];

export const CATALOG: CatalogPackage[] = [
  {
    name: "utils",
    annotations: describe("Building blocks that format and assemble data"),
    actions: [
      util("echo", "Returns the input", [{ name: "payload", required: false, description: "Any JSON entity" }]),
      util("cat", "Concatenates input into a string", [{ name: "lines", required: true, description: "An array of strings or numbers" }]),
      util("sort", "Sorts an array", [{ name: "lines", required: true, description: "An array of strings" }]),
      util("head", "Extract prefix of an array", [
        { name: "lines", required: true, description: "An array of strings" },
        { name: "num", required: false, description: "The length of the prefix (default 1)" },
      ]),
      util("date", "Current date and time"),
      util("split", "Split a string into an array", [
        { name: "payload", required: true, description: "A string" },
        { name: "separator", required: false, description: "The string to split at (default: line ends)" },
      ]),
    ],
  },
  {
    name: "alarms",
    annotations: describe("Alarms and periodic utility"),
    actions: [
      feed("alarm", "builtin:alarm", ALARM_FEEDS_MODULE, "Fire trigger event on a time-based schedule using cron", [
        ...lifecycle,
        { name: "cron", required: true, description: "5 fields (minute first) or 6 (seconds first)" },
        { name: "timezone", required: false, description: "IANA time zone the cron is read in (default UTC)" },
        ...dates,
        { name: "maxTriggers", required: false, description: "stop after this many fires (-1: no limit)" },
        ...common,
      ]),
      feed("once", "builtin:once", ALARM_FEEDS_MODULE, "Fire trigger event once on a specific date", [
        ...lifecycle,
        { name: "date", required: true, description: "when to fire (ISO 8601 or epoch ms)" },
        { name: "deleteAfterFire", required: false, description: "false (default), true (delete the trigger) or \"rules\" (and its rules)" },
        ...common,
      ]),
      feed("interval", "builtin:interval", ALARM_FEEDS_MODULE, "Fire trigger event on an interval based schedule", [
        ...lifecycle,
        { name: "minutes", required: true, description: "minutes between fires" },
        ...dates,
        ...common,
      ]),
    ],
  },
  {
    name: "nats",
    annotations: describe("Fire triggers from messages on NATS subjects or JetStream streams"),
    actions: [
      feed("subscribe", "builtin:nats", "catalog/feeds/lifecycle.ts, served by triggers/nats-feed.ts", "Fire the trigger for every message on a subject", [
        ...lifecycle,
        { name: "subject", required: true, description: "the subject (wildcards allowed; not under vespid., $JS., $KV., $SYS., _INBOX.)" },
        { name: "stream", required: false, description: "read this JetStream stream instead of core NATS" },
        { name: "durable", required: false, description: "the stream consumer's name (needs stream)" },
      ]),
    ],
  },
];

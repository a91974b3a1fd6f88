// The load a fault is injected under, and the counting afterwards: how many calls were accepted,
// recorded, lost, overwritten and run again.
//
// What can be observed, and how:
// - accepted: a 2xx (or a blocking 502, an action's own failure) that names an activation id;
// - recorded: GET /activations/{id} answers 200 with the record, once the load is over and the
//   fault repaired, within a bound;
// - lost: accepted, and no record within that bound;
// - overwritten: the activations bucket keeps one message per key, so every record write that
//   replaced (or deleted) an earlier one leaves a gap: last sequence minus messages held;
// - re-executed: a call that ran again and found its record there (runner/recorder.ts logs each
//   "an activation record existed already"), plus every overwrite. A re-execution of a call cut
//   off mid-run before it wrote anything leaves no trace: that is the one kind allowed;
// - a blocking caller's answer that differs from the stored record (each run returns a nonce).
// - cut off and re-run: just before the fault, 4 calls of ~1.5 s are started (one per runner slot);
//   those whose record says they started after the fault were cut off mid-run, or still waiting
//   for a slot, and ran (again) afterwards.
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ACTIVATIONS_BUCKET } from "../contracts/index.ts";
import type { ChaosPlatform } from "./platform.ts";

export const ACTION = "chaos-echo";
/**
 * Busy for a few ms, so that a killed runner has calls in flight; returns a nonce unique to this
 * run, so a second run of the same call is told apart from the first.
 */
const ACTION_CODE = `function main(params) {
  const end = Date.now() + 3;
  while (Date.now() < end) {}
  return { n: params.n, nonce: Math.random().toString(36).slice(2) + "-" + Date.now() };
}`;

/**
 * Runs ~1.5 s: a few of these are started just before each fault, so that the fault finds calls
 * mid-run (the 2,000 short calls rarely are: they take a few ms each).
 */
export const INFLIGHT_ACTION = "chaos-inflight";
const INFLIGHT_CODE = ACTION_CODE.replace("Date.now() + 3", "Date.now() + 1500");
/** In-flight calls started before each fault: the two runners' slots (2 × capacity 2). */
const INFLIGHT_CALLS = 4;

/** Messages of runner/recorder.ts, runner/invocation.ts and scheduler/dispatcher.ts that the counts read. */
export const LOG = {
  recordExisted: "an activation record existed already; it stands, this one is dropped",
  redeliveredHasRecord: "a redelivered invocation has its record already; not run again",
  recordNotStored: "could not store an activation record",
  schedulerGaveUp: "giving up on an invocation",
};

export interface LoadOptions {
  /** Non-blocking calls (default 2000). */
  total?: number;
  /** Calls started per second (open loop, default VESPID_CHAOS_RATE or 120). */
  ratePerSec?: number;
  /** Clients making blocking calls one after another while the load runs (default 3). */
  blockingClients?: number;
  /** Injected once this many non-blocking calls were started; the load goes on meanwhile. */
  fault?: { atCall: number; inject(): Promise<void> };
}

export interface CaseCounts {
  case: string;
  accepted: number;
  /** Answers that accepted nothing, by status ("error" for no answer at all). */
  refused: Record<string, number>;
  /** From the first refusal to the last, s. */
  refusingSeconds: number;
  recorded: number;
  lost: number;
  /** Records of calls that ended in a system error (status "whisk internal error"). */
  systemErrors: number;
  overwritten: number;
  reExecuted: number;
  redeliveriesSkipped: number;
  blockingAnswered: number;
  blockingMismatched: number;
  /** Median and slowest blocking call that was accepted, ms. */
  blockingP50Ms: number;
  blockingMaxMs: number;
  /** The errors of system-error records, each once, for the report. */
  systemErrorSample: string[];
  /** From the end of the load until every accepted call had a record (or the bound), s. */
  drainSeconds: number;
  /**
   * Of the calls running when the fault came (INFLIGHT_CALLS ~1.5 s calls started 0.7 s before
   * it), those whose record says they started after the fault: cut off mid-run and run again.
   */
  cutOffRerun: number;
  /** Ids of lost calls, a few, for the report. */
  lostSample: string[];
}

interface Accepted {
  id: string;
  /** The blocking answer's nonce, for blocking calls answered with a record. */
  nonce?: string;
  /** One of the ~1.5 s calls started just before the fault. */
  inflight?: boolean;
  /** How long the blocking call took, ms. */
  ms?: number;
}

export async function createAction(platform: ChaosPlatform): Promise<void> {
  for (const [name, code] of [[ACTION, ACTION_CODE], [INFLIGHT_ACTION, INFLIGHT_CODE]] as const) {
    const res = await call(platform, platform.gateways[0]!.url, "PUT", `/api/v1/namespaces/_/actions/${name}`, { exec: { kind: "nodejs", code } });
    if (res.status !== 200) throw new Error(`could not create ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  }
}

export async function call(platform: ChaosPlatform, base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 15_000) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(platform.apiKey).toString("base64")}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

export interface LoadResult {
  accepted: Accepted[];
  refused: Record<string, number>;
  faultAt?: number;
  endedAt: number;
  /** From the first refusal to the last, ms: how long the platform turned calls away. */
  refusingMs?: number;
}

/** Runs the load, injecting the fault on the way; resolves when every call has its answer. */
export async function runLoad(platform: ChaosPlatform, opts: LoadOptions = {}): Promise<LoadResult> {
  const total = opts.total ?? 2000;
  const rate = opts.ratePerSec ?? Number(process.env.VESPID_CHAOS_RATE ?? 120);
  const accepted: Accepted[] = [];
  const refused: Record<string, number> = {};
  let firstRefusal: number | undefined;
  let lastRefusal: number | undefined;
  const refuse = (why: string): void => {
    refused[why] = (refused[why] ?? 0) + 1;
    firstRefusal ??= Date.now();
    lastRefusal = Date.now();
  };
  const gateways = platform.gateways.map((gateway) => gateway.url);
  const invoke = `/api/v1/namespaces/_/actions/${ACTION}`;
  let loadDone = false;
  let faultAt: number | undefined;
  let faultDone: Promise<void> = Promise.resolve();

  /** One call; true when it was accepted. */
  const one = async (n: number, blocking: boolean): Promise<boolean> => {
    try {
      const t0 = Date.now();
      const res = await call(platform, gateways[n % gateways.length]!, "POST", `${invoke}${blocking ? "?blocking=true" : ""}`, { n }, {}, blocking ? 90_000 : 15_000);
      const id = res.body?.activationId;
      if ((res.status >= 200 && res.status < 300) || (blocking && res.status === 502 && id)) {
        if (typeof id !== "string") return (refuse(`${res.status} without id`), false);
        accepted.push({ id, ...(blocking && { ms: Date.now() - t0 }), ...(blocking && res.status !== 202 && { nonce: res.body?.response?.result?.nonce ?? "" }) });
        return true;
      }
      // A refusal must say when to come back (issue 10: every 503 and 429 has Retry-After).
      const unsaid = (res.status === 503 || res.status === 429) && !res.headers.get("retry-after");
      refuse(`${res.status}${unsaid ? " without Retry-After" : ""}`);
    } catch (err) {
      refuse(`no answer (${(err as Error).name})`);
    }
    return false;
  };

  // Blocking clients: one call after another, while the non-blocking load lasts; a client whose
  // call was refused waits a moment (as Retry-After asks) instead of spinning.
  const blocking = Array.from({ length: opts.blockingClients ?? 3 }, async (_, client) => {
    for (let i = 0; !loadDone; i++) {
      if (!(await one(1_000_000 + client * 10_000 + i, true))) await new Promise((resolve) => setTimeout(resolve, 500));
    }
  });

  const started = Date.now();
  const inFlight = new Set<Promise<void>>();
  for (let n = 0; n < total; n++) {
    if (opts.fault && n === opts.fault.atCall) {
      const { inject } = opts.fault;
      faultDone = (async () => {
        // Calls mid-run when the fault comes: started, given time to reach their runners.
        await Promise.all(Array.from({ length: INFLIGHT_CALLS }, async (_, i) => {
          try {
            const res = await call(platform, gateways[0]!, "POST", `/api/v1/namespaces/_/actions/${INFLIGHT_ACTION}`, { n: 2_000_000 + i });
            if (res.status >= 200 && res.status < 300 && typeof res.body?.activationId === "string") accepted.push({ id: res.body.activationId, inflight: true });
            else refuse(String(res.status));
          } catch (err) {
            refuse(`no answer (${(err as Error).name})`);
          }
        }));
        await new Promise((resolve) => setTimeout(resolve, 700));
        faultAt = Date.now();
        await inject();
      })();
    }
    // Open loop: call n starts at its time, whatever the answers before it.
    const due = started + (n * 1000) / rate;
    if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
    const p: Promise<void> = one(n, false).then(
      () => undefined,
      () => undefined,
    ).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  loadDone = true;
  await Promise.all(blocking);
  await faultDone;
  return { accepted, refused, faultAt, endedAt: Date.now(), refusingMs: firstRefusal === undefined ? 0 : lastRefusal! - firstRefusal };
}

/** Waits (up to boundMs) until every accepted call has a record, then counts. */
export async function countOutcome(platform: ChaosPlatform, name: string, load: LoadResult, boundMs: number): Promise<CaseCounts> {
  const ids = new Set(load.accepted.map((a) => a.id));
  const waitedFrom = Date.now();
  const present = await waitForRecords(platform.nc, ids, boundMs);
  const drainSeconds = (Date.now() - waitedFrom) / 1000;
  // Late duplicates (a redelivery still under way) get a moment to show before counting.
  await new Promise((resolve) => setTimeout(resolve, 3_000));

  // The API's view: GET each accepted id once.
  const gateway = platform.gateways[0]!.url;
  const records = new Map<string, any>();
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
        for (let attempt = 0; attempt < 3; attempt++) {
          try {
            const res = await call(platform, gateway, "GET", `/api/v1/namespaces/_/activations/${id}`);
            if (res.status === 200) records.set(id, res.body);
            if (res.status === 200 || res.status === 404) break;
          } catch {}
        }
      }
    }),
  );
  const lost = [...ids].filter((id) => !records.has(id));
  const systemErrorRecords = [...records.values()].filter((record) => record?.response?.status === "whisk internal error");
  const systemErrorSample = [...new Set(systemErrorRecords.map((record) => String(record.response?.result?.error ?? "")))].slice(0, 5);
  const blockingMs = load.accepted.flatMap((a) => (a.ms === undefined ? [] : [a.ms])).sort((a, b) => a - b);
  let blockingAnswered = 0;
  let blockingMismatched = 0;
  for (const a of load.accepted) {
    if (a.nonce === undefined) continue;
    blockingAnswered++;
    const stored = records.get(a.id);
    if (stored && (stored.response?.result?.nonce ?? "") !== a.nonce) blockingMismatched++;
  }
  const cutOffRerun = load.accepted.filter((a) => a.inflight && load.faultAt !== undefined && (records.get(a.id)?.start ?? 0) > load.faultAt).length;

  const jsm = await jetstreamManager(platform.nc);
  const state = (await jsm.streams.info(`KV_${ACTIVATIONS_BUCKET}`)).state;
  const overwritten = state.last_seq - state.messages;
  let existed = 0;
  let redeliveriesSkipped = 0;
  for (const runner of platform.runners) {
    existed += await runner.countLogLines(LOG.recordExisted);
    redeliveriesSkipped += await runner.countLogLines(LOG.redeliveredHasRecord);
  }
  void present;
  return {
    case: name,
    accepted: ids.size,
    refused: load.refused,
    refusingSeconds: Math.round((load.refusingMs ?? 0) / 100) / 10,
    recorded: records.size,
    lost: lost.length,
    systemErrors: systemErrorRecords.length,
    systemErrorSample,
    overwritten,
    reExecuted: existed + overwritten,
    redeliveriesSkipped,
    blockingAnswered,
    blockingMismatched,
    blockingP50Ms: blockingMs[Math.floor(blockingMs.length / 2)] ?? 0,
    blockingMaxMs: blockingMs.at(-1) ?? 0,
    drainSeconds: Math.round(drainSeconds * 10) / 10,
    cutOffRerun,
    lostSample: lost.slice(0, 5),
  };
}

/** Polls the activations bucket's keys until every id has one, or the bound passes; returns how many do. */
async function waitForRecords(nc: NatsConnection, ids: Set<string>, boundMs: number): Promise<number> {
  const deadline = Date.now() + boundMs;
  const kv = await new Kvm(nc).open(ACTIVATIONS_BUCKET);
  let found = 0;
  for (;;) {
    try {
      const keys = new Set<string>();
      for await (const key of await kv.keys("guest.>")) keys.add(key.slice("guest.".length));
      found = [...ids].filter((id) => keys.has(id)).length;
      if (found === ids.size) return found;
    } catch {
      // NATS away for the moment: try again.
    }
    if (Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/** The per-case table printed at the end of the suite. */
export function formatTable(rows: CaseCounts[]): string {
  const header = ["case", "accepted", "refused", "refusing s", "recorded", "lost", "sys-errors", "overwritten", "re-executed", "redelivery-skips", "cut-off re-run", "blocking", "blocking p50/max ms", "blocking≠record", "drain s"];
  const lines = rows.map((r) => [
    r.case,
    r.accepted,
    Object.entries(r.refused).map(([status, n]) => `${n}×${status}`).join(" ") || "0",
    r.refusingSeconds,
    r.recorded,
    r.lost,
    r.systemErrors,
    r.overwritten,
    r.reExecuted,
    r.redeliveriesSkipped,
    `${r.cutOffRerun}/${INFLIGHT_CALLS}`,
    r.blockingAnswered,
    `${r.blockingP50Ms}/${r.blockingMaxMs}`,
    r.blockingMismatched,
    r.drainSeconds,
  ].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ");
  return [fmt(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...lines.map(fmt)].join("\n");
}

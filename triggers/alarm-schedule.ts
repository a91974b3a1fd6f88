// The alarm feeds' parameters and when they fire: pure functions shared by the feed actions
// (catalog/feeds/, which refuse bad parameters at CREATE/UPDATE) and the alarms service
// (triggers/alarms.ts, which computes the ticks). Parameter names and meanings are OpenWhisk's
// alarms package's (`/whisk.system/alarms/{alarm,once,interval}`), plus `missed`.
import { Cron } from "croner";

export type AlarmKind = "alarm" | "once" | "interval";

/** What to do about ticks that fell while no alarms service ran. */
export type MissedPolicy = "skip" | "fire-once";
/** `once` defaults to firing late rather than never; recurring alarms skip, as OpenWhisk's provider does. */
export const DEFAULT_MISSED: Record<AlarmKind, MissedPolicy> = { alarm: "skip", interval: "skip", once: "fire-once" };

/** What `once` does after it fired (OpenWhisk's `deleteAfterFire`). */
export type DeleteAfterFire = "false" | "true" | "rules";

interface Common {
  /** The fire's payload (OpenWhisk's `trigger_payload`). */
  payload: Record<string, unknown>;
  missed: MissedPolicy;
}
export type AlarmSpec =
  | (Common & { kind: "alarm"; cron: string; timezone?: string; startDate?: number; stopDate?: number; maxTriggers?: number })
  | (Common & { kind: "interval"; minutes: number; startDate?: number; stopDate?: number })
  | (Common & { kind: "once"; date: number; deleteAfterFire: DeleteAfterFire });

export type Parsed = { ok: true; spec: AlarmSpec } | { ok: false; error: string };

const MINUTE_MS = 60_000;
/** Beyond this a date is surely a mistake (year 10000). */
const MAX_DATE_MS = 253_402_300_799_999;

/**
 * The feed parameters of `kind`, checked: `params` is what CREATE/UPDATE received, without the
 * lifecycle fields. `now` bounds dates that must lie ahead (only at CREATE/UPDATE: a stored
 * registration whose date has passed is still valid).
 */
export function parseAlarmParams(kind: AlarmKind, params: Record<string, unknown>, opts: { now?: number } = {}): Parsed {
  try {
    const payload = parsePayload(params.trigger_payload);
    const missed = parseMissed(params.missed, kind);
    switch (kind) {
      case "alarm": {
        const cron = requiredString(params.cron, "cron");
        const timezone = params.timezone === undefined || params.timezone === "" ? undefined : parseTimezone(params.timezone);
        checkCron(cron, timezone);
        const { startDate, stopDate } = parseRange(params, opts.now);
        const maxTriggers = parseMaxTriggers(params.maxTriggers);
        const spec: AlarmSpec = { kind, cron, payload, missed, ...(timezone && { timezone }), ...(startDate !== undefined && { startDate }), ...(stopDate !== undefined && { stopDate }), ...(maxTriggers !== undefined && { maxTriggers }) };
        if (opts.now !== undefined && nextTick(spec, opts.now, 0) === undefined) throw new ParamError("cron: the schedule never fires between startDate and stopDate");
        return { ok: true, spec };
      }
      case "interval": {
        const minutes = params.minutes;
        // OpenWhisk's CLI sends `--param minutes 2` as the number 2; a numeric string is accepted too.
        const n = typeof minutes === "string" && /^\d+$/.test(minutes.trim()) ? Number(minutes) : minutes;
        if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 525_600) {
          throw new ParamError(`minutes: must be a whole number of minutes from 1 to 525600, got ${show(minutes)}`);
        }
        const { startDate, stopDate } = parseRange(params, opts.now);
        return { ok: true, spec: { kind, minutes: n, payload, missed, ...(startDate !== undefined && { startDate }), ...(stopDate !== undefined && { stopDate }) } };
      }
      case "once": {
        if (params.date === undefined) throw new ParamError("date: is required (ISO 8601, e.g. 2030-01-01T00:00:00Z, or epoch milliseconds)");
        const date = parseDate(params.date, "date");
        if (opts.now !== undefined && date <= opts.now) throw new ParamError(`date: ${new Date(date).toISOString()} is in the past; it must lie in the future`);
        return { ok: true, spec: { kind, date, payload, missed, deleteAfterFire: parseDeleteAfterFire(params.deleteAfterFire) } };
      }
    }
  } catch (err) {
    if (err instanceof ParamError) return { ok: false, error: err.message };
    throw err;
  }
}

/**
 * The first tick strictly after `after` (epoch ms), or undefined when the alarm has no tick left
 * (past stopDate, a `once` that passed). `anchor` is when an interval without startDate counts
 * from: its registration time.
 */
export function nextTick(spec: AlarmSpec, after: number, anchor: number, minuteMs = MINUTE_MS): number | undefined {
  let tick: number | undefined;
  switch (spec.kind) {
    case "once":
      return spec.date > after ? spec.date : undefined;
    case "interval": {
      const start = spec.startDate ?? anchor;
      const period = spec.minutes * minuteMs;
      tick = after < start ? start : start + (Math.floor((after - start) / period) + 1) * period;
      break;
    }
    case "alarm": {
      const from = spec.startDate !== undefined && spec.startDate > after ? spec.startDate - 1 : after;
      // croner's nextRun is strictly after the date given, at whole seconds.
      const next = new Cron(spec.cron, { ...(spec.timezone && { timezone: spec.timezone }) }).nextRun(new Date(from));
      tick = next ? next.getTime() : undefined;
      break;
    }
  }
  if (tick === undefined || (spec.stopDate !== undefined && tick >= spec.stopDate)) return undefined;
  return tick;
}

class ParamError extends Error {}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

function requiredString(value: unknown, name: string): string {
  if (value === undefined || value === null || value === "") throw new ParamError(`${name}: is required`);
  if (typeof value !== "string") throw new ParamError(`${name}: must be a string, got ${show(value)}`);
  return value;
}

/** `trigger_payload`: an object, or its JSON text (how `wsk --param` sends it quoted). */
function parsePayload(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null || value === "") return {};
  let payload = value;
  if (typeof value === "string") {
    try {
      payload = JSON.parse(value);
    } catch {
      throw new ParamError(`trigger_payload: must be a JSON object, got the string ${show(value)}`);
    }
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) throw new ParamError(`trigger_payload: must be a JSON object, got ${show(value)}`);
  return payload as Record<string, unknown>;
}

function parseMissed(value: unknown, kind: AlarmKind): MissedPolicy {
  if (value === undefined || value === null) return DEFAULT_MISSED[kind];
  if (value === "skip" || value === "fire-once") return value;
  throw new ParamError(`missed: must be "skip" or "fire-once", got ${show(value)}`);
}

function parseTimezone(value: unknown): string {
  if (typeof value !== "string") throw new ParamError(`timezone: must be an IANA time zone name such as "Europe/Paris", got ${show(value)}`);
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: value });
  } catch {
    throw new ParamError(`timezone: unknown time zone ${show(value)}; use an IANA name such as "Europe/Paris" or "UTC"`);
  }
  return value;
}

/** 5 fields (minute first) or 6 (second first), as OpenWhisk's alarms accept; croner checks the values. */
function checkCron(cron: string, timezone: string | undefined): void {
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    throw new ParamError(`cron: ${show(cron)} has ${fields} field${fields === 1 ? "" : "s"}; it needs 5 (minute hour day-of-month month day-of-week) or 6 (a seconds field first)`);
  }
  try {
    new Cron(cron, { ...(timezone && { timezone }) }).nextRun();
  } catch (err) {
    throw new ParamError(`cron: ${show(cron)} is not a valid cron expression: ${(err as Error).message.replace(/^CronPattern: /, "")}`);
  }
}

/** An ISO 8601 string or epoch milliseconds, as OpenWhisk's alarms take dates. */
function parseDate(value: unknown, name: string): number {
  let ms: number;
  if (typeof value === "number") ms = value;
  else if (typeof value === "string" && /^\d+$/.test(value.trim())) ms = Number(value);
  else if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value.trim())) ms = Date.parse(value);
  else ms = NaN;
  if (!Number.isFinite(ms) || !Number.isInteger(ms) || ms < 0 || ms > MAX_DATE_MS) {
    throw new ParamError(`${name}: must be an ISO 8601 date such as 2030-01-01T00:00:00Z or epoch milliseconds, got ${show(value)}`);
  }
  return ms;
}

function parseRange(params: Record<string, unknown>, now: number | undefined): { startDate?: number; stopDate?: number } {
  const startDate = params.startDate === undefined || params.startDate === "" ? undefined : parseDate(params.startDate, "startDate");
  const stopDate = params.stopDate === undefined || params.stopDate === "" ? undefined : parseDate(params.stopDate, "stopDate");
  if (startDate !== undefined && stopDate !== undefined && stopDate <= startDate) {
    throw new ParamError(`stopDate: ${new Date(stopDate).toISOString()} must be after startDate ${new Date(startDate).toISOString()}`);
  }
  if (now !== undefined && stopDate !== undefined && stopDate <= now) throw new ParamError(`stopDate: ${new Date(stopDate).toISOString()} is in the past`);
  return { ...(startDate !== undefined && { startDate }), ...(stopDate !== undefined && { stopDate }) };
}

/** Absent or -1: no limit (OpenWhisk's deprecated parameter, kept for its users). */
function parseMaxTriggers(value: unknown): number | undefined {
  if (value === undefined || value === null || value === -1 || value === "-1") return undefined;
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) throw new ParamError(`maxTriggers: must be a positive whole number (or -1 for no limit), got ${show(value)}`);
  return n;
}

function parseDeleteAfterFire(value: unknown): DeleteAfterFire {
  if (value === undefined || value === null || value === false || value === "false") return "false";
  if (value === true || value === "true") return "true";
  if (value === "rules") return "rules";
  throw new ParamError(`deleteAfterFire: must be false, true or "rules", got ${show(value)}`);
}

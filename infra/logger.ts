// One logger for the whole process; components get children tagged with their name.
import { pino, type Logger, type LevelWithSilent } from "pino";
import { PinoPretty } from "pino-pretty";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `json`: one JSON object per line, for machines; `pretty`: coloured, one readable line per entry. */
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** A person watching a terminal reads pretty lines; a pipe or a file gets JSON lines to parse. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY ? "pretty" : "json";
}

/**
 * Always on stderr, so stdout stays free for what is printed for humans (the banner, the CLI's
 * output). Written synchronously in both formats: a fatal line must be out before the process
 * exits, and pino-pretty runs in this thread rather than a worker so no line is lost at exit.
 */
export function createLogger(level: LogLevel, format: LogFormat = defaultLogFormat()): Logger {
  const options = { name: "vespid", level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === "pretty") {
    // pino-pretty reads pino's numeric levels, so the label formatter of the JSON form is left out.
    const pretty = PinoPretty({ destination: 2, sync: true, colorize: Boolean(process.stderr.isTTY), ignore: "pid,hostname", translateTime: "HH:MM:ss.l", singleLine: true });
    return pino(options, pretty);
  }
  return pino({ ...options, formatters: { level: (label) => ({ level: label }) } }, pino.destination({ fd: 2, sync: true }));
}

/**
 * The ids that tie a log line to one call: spread into a line's bindings where the event is at
 * hand (`logger.debug({ ...callIds(event) }, …)`). A plain object rather than a child logger, so
 * a call costs nothing when nothing is logged about it.
 */
export function callIds(event: { activationId: string; requestId?: string }): { activationId: string; reqId?: string } {
  return event.requestId === undefined ? { activationId: event.activationId } : { activationId: event.activationId, reqId: event.requestId };
}

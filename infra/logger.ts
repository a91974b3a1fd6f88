// One logger for the whole process; components get children tagged with their name.
import { pino, type Logger, type LevelWithSilent } from "pino";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Single-line JSON on stderr, so stdout stays free for what the CLI prints for humans. */
export function createLogger(level: LogLevel): Logger {
  return pino(
    {
      name: "vespid",
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

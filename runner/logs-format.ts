// Guest log lines as OpenWhisk prints them: `2026-11-27T23:10:01.123456Z stdout: text`, one entry
// per line of output.
import type { LogLine } from "./engine.ts";

/**
 * Log bytes kept per activation; the runner opens the engine with this limit and the marker line
 * below names it. Smaller than OpenWhisk's 10 MB because the whole record, with a result of up to
 * 1 MiB, must fit one NATS message.
 */
export const LOG_LIMIT_BYTES = 1024 * 1024;

/** OpenWhisk's own wording, so tools that look for it recognise cut logs. */
export const TRUNCATED_LOGS_MARKER = `Logs were truncated because the total bytes size exceeds the limit of ${LOG_LIMIT_BYTES} bytes.`;

export function formatLogs(lines: readonly LogLine[], truncated: boolean, end: number): string[] {
  const formatted = lines.flatMap((line) =>
    line.text
      .replace(/\r?\n$/, "")
      .split(/\r?\n/)
      .map((text) => `${timestamp(line.time)} ${line.stream}: ${text}`),
  );
  if (truncated) formatted.push(`${timestamp(end)} stderr: ${TRUNCATED_LOGS_MARKER}`);
  return formatted;
}

/** ISO 8601 with microseconds; the engine's times are epoch ms with a fractional part. */
function timestamp(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const micros = Math.floor((epochMs - wholeMs) * 1000);
  return new Date(wholeMs).toISOString().replace("Z", `${String(micros).padStart(3, "0")}Z`);
}

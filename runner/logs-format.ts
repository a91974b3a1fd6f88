// Guest log lines as OpenWhisk prints them: `2026-11-27T23:10:01.123456Z stdout: text`, one entry
// per line of output.
import type { LogLine } from "./engine.ts";

/** OpenWhisk's megabyte, in which `limits.logs` is given (its ByteSize counts MB as 1024²). */
export const LOG_LIMIT_UNIT = 1024 * 1024;

/**
 * Most log bytes an activation may keep, whatever its `limits.logs` says (OpenWhisk allows up to
 * 10 MB). The whole record — logs, a result of up to 1 MiB, annotations — must fit one NATS message
 * (it is both the KV value and the reply to a blocking caller), and formatting adds a timestamp and
 * stream name to every line. So an action keeps at most half of the server's max_payload, and never
 * more than 4 MiB (half of the embedded server's 8 MiB). A record that still does not fit loses its
 * logs (fitActivation in activation.ts) rather than failing to be stored.
 */
export const MAX_RECORD_LOG_BYTES = 4 * LOG_LIMIT_UNIT;

/** Log bytes the engine keeps for an action with `limits.logs` of `limitMb`, on a server with `maxPayload`. */
export function logLimitBytes(limitMb: number, maxPayload: number): number {
  return Math.max(0, Math.min(limitMb * LOG_LIMIT_UNIT, MAX_RECORD_LOG_BYTES, Math.floor(maxPayload / 2)));
}

/** OpenWhisk's own wording, so tools that look for it recognise cut logs. */
export const truncatedLogsMarker = (limitBytes: number): string =>
  `Logs were truncated because the total bytes size exceeds the limit of ${limitBytes} bytes.`;

/** `limitBytes` is the limit the engine applied, named in the marker line when `truncated`. */
export function formatLogs(lines: readonly LogLine[], truncated: boolean, end: number, limitBytes: number): string[] {
  const formatted = lines.flatMap((line) =>
    line.text
      .replace(/\r?\n$/, "")
      .split(/\r?\n/)
      .map((text) => `${timestamp(line.time)} ${line.stream}: ${text}`),
  );
  if (truncated) formatted.push(`${timestamp(end)} stderr: ${truncatedLogsMarker(limitBytes)}`);
  return formatted;
}

/** ISO 8601 with microseconds; the engine's times are epoch ms with a fractional part. */
function timestamp(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const micros = Math.floor((epochMs - wholeMs) * 1000);
  return new Date(wholeMs).toISOString().replace("Z", `${String(micros).padStart(3, "0")}Z`);
}

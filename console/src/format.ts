// How figures read in the console: milliseconds, bytes, dates, JSON.

export function ms(value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 100) return `${Math.round(value)} ms`;
  return `${value.toFixed(value >= 10 ? 1 : 2)} ms`;
}

export function bytes(value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${n.toFixed(unit === 0 || n >= 100 ? 0 : 1)} ${units[unit]}`;
}

export const time = (epochMs: unknown): string => (typeof epochMs === "number" ? new Date(epochMs).toLocaleString() : "–");

export const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "undefined";

export function number(value: unknown, digits = 1): string {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** OpenWhisk's statusCode of an activation in words. */
export const STATUS_NAMES = ["success", "application error", "action developer error", "whisk internal error"] as const;
export const statusName = (code: unknown): string => (typeof code === "number" && STATUS_NAMES[code]) || `status ${String(code)}`;

export interface Annotated {
  annotations?: Array<{ key: string; value: unknown }>;
}
export const annotation = (record: Annotated, key: string): unknown => record.annotations?.find((a) => a.key === key)?.value;

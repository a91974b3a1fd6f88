// What the CLI prints: tables and short lines for people, the API's JSON as is for scripts
// (--json), errors with a hint on stderr, and a spinner on stderr only when it is a terminal (so
// pipes and tests see clean output).
import Table from "cli-table3";
import { createSpinner } from "nanospinner";
import { CliError } from "./errors.ts";

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** A table with a header row; cells are stringified, empty values shown as "-". */
export function printTable(head: string[], rows: unknown[][], emptyText = "(none)"): void {
  if (rows.length === 0) {
    console.log(emptyText);
    return;
  }
  // No rule between rows: long listings stay compact.
  const table = new Table({ head, style: { head: process.stdout.isTTY ? ["cyan"] : [], border: [] }, chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" } });
  for (const row of rows) table.push(row.map((cell) => (cell === undefined || cell === null || cell === "" ? "-" : String(cell))));
  console.log(table.toString());
}

/** `key  value` lines, aligned. */
export function printFields(fields: Array<[string, unknown]>): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [k, v] of fields) console.log(`${k.padEnd(width)}  ${v === undefined || v === null || v === "" ? "-" : typeof v === "string" ? v : JSON.stringify(v)}`);
}

export function printError(err: unknown): void {
  if (err instanceof CliError) {
    console.error(`error: ${err.message}`);
    if (err.hint) console.error(`  ${err.hint}`);
  } else {
    console.error(`error: ${(err as Error)?.stack ?? String(err)}`);
  }
}

export interface Progress {
  update(text: string): void;
  succeed(text?: string): void;
  fail(text?: string): void;
  stop(): void;
}

const silent: Progress = { update() {}, succeed() {}, fail() {}, stop() {} };

/** A spinner on stderr while `text` is going on; nothing at all when stderr is not a terminal. */
export function progress(text: string): Progress {
  // A terminal of unknown width (columns 0, as under some wrappers) would make the spinner's
  // line count divide by zero.
  if (!process.stderr.isTTY || !(process.stderr.columns > 0)) return silent;
  const spinner = createSpinner(text, { stream: process.stderr }).start();
  return {
    update: (t) => void spinner.update({ text: t }),
    succeed: (t) => void spinner.success(t === undefined ? undefined : { text: t }),
    fail: (t) => void spinner.error(t === undefined ? undefined : { text: t }),
    stop: () => void spinner.clear().stop(),
  };
}

/** Runs `work` under a spinner, clearing it whatever happens. */
export async function withProgress<T>(text: string, work: (p: Progress) => Promise<T>): Promise<T> {
  const p = progress(text);
  try {
    return await work(p);
  } finally {
    p.stop();
  }
}

/** A timestamp as wsk shows it: local date and time. */
export function formatTime(ms: number | undefined): string {
  if (!ms) return "-";
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The value of annotation `key` of an entity. */
export function annotationOf(entity: { annotations?: Array<{ key: string; value: unknown }> }, key: string): unknown {
  return entity.annotations?.find((a) => a.key === key)?.value;
}

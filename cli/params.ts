// wsk's parameters and annotations: `-p key value` (two words, which argument parsers do not
// take as one option), `-P file.json`, `-a key value`, `-A file.json`. The value of `-p`/`-a` is
// JSON when it parses as JSON, else the string itself, as in wsk.
import { readFile } from "node:fs/promises";
import { UsageError } from "./errors.ts";

/** Options that take a key and a value. */
const PAIR_OPTIONS = new Set(["-p", "--param", "-a", "--annotation"]);
/** Joins key and value into the single token the parser sees; no argument can hold a NUL. */
const SEPARATOR = "\u0000";

/**
 * Rewrites `-p key value` into `-p key<NUL>value`, so the parser sees one option value. Stops at
 * `--`. A pair option without both words is a usage error.
 */
export function joinPairs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (PAIR_OPTIONS.has(arg)) {
      const key = argv[i + 1];
      const value = argv[i + 2];
      if (key === undefined || value === undefined) throw new UsageError(`${arg} takes a key and a value: ${arg} name Ada`);
      out.push(arg, `${key}${SEPARATOR}${value}`);
      i += 2;
      continue;
    }
    out.push(arg);
  }
  return out;
}

export interface KeyValue {
  key: string;
  value: unknown;
}

/** Parser of one `-p`/`-a` occurrence, collecting into a list. */
export function collectPair(token: string, previous: KeyValue[] = []): KeyValue[] {
  const at = token.indexOf(SEPARATOR);
  if (at < 0) throw new UsageError(`a parameter needs a key and a value, e.g. -p name Ada`);
  const key = token.slice(0, at);
  if (!key) throw new UsageError("a parameter's key is empty");
  return [...previous.filter((p) => p.key !== key), { key, value: parseValue(token.slice(at + 1)) }];
}

export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The object in a `-P`/`-A` JSON file, as key-value pairs. */
export async function readPairsFile(file: string, flag: string): Promise<KeyValue[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag} ${file}: not JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError(`${flag} ${file}: must hold a JSON object`);
  return Object.entries(parsed).map(([key, value]) => ({ key, value }));
}

/** File pairs first, then command-line pairs, which win for the same key. */
export async function gatherPairs(pairs: KeyValue[] | undefined, file: string | undefined, fileFlag: string): Promise<KeyValue[] | undefined> {
  if (!pairs && !file) return undefined;
  const fromFile = file ? await readPairsFile(file, fileFlag) : [];
  const keys = new Set((pairs ?? []).map((p) => p.key));
  return [...fromFile.filter((p) => !keys.has(p.key)), ...(pairs ?? [])];
}

export const toObject = (pairs: KeyValue[] | undefined): Record<string, unknown> => Object.fromEntries((pairs ?? []).map((p) => [p.key, p.value]));

/** A whole number within bounds, for --timeout and such. */
export function wholeNumber(flag: string, min = 0) {
  return (text: string): number => {
    if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`${flag} must be a whole number${min > 0 ? ` ≥ ${min}` : ""}, got ${JSON.stringify(text)}`);
    return Number(text);
  };
}

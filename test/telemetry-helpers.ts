// For the telemetry tests: a small parser of Prometheus' text exposition format, the actions the
// tests run, and polling until the once-a-second metrics have caught up.

export const ECHO_JS = "function main(params) { return { echo: params }; }";
export const FAIL_JS = "function main() { return { error: 'failed on purpose' }; }";
/** Keeps ~40 MiB of strings alive at once. */
export const MEMORY_BOMB_JS = "function main() { const keep = []; for (let i = 0; i < 40; i++) keep.push('x'.repeat(1024 * 1024 - i)); return { n: keep.length }; }";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedMetrics {
  samples: Sample[];
  /** # TYPE of each metric family. */
  types: Map<string, string>;
}

/** Label values as the format escapes them: \\, \" and \n. */
const unescape = (v: string) => v.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));

/** Parses the text format; throws on a line it cannot read, so a malformed exposition fails the test. */
export function metricsOf(text: string): ParsedMetrics {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    const body = m[2] ?? "";
    let got: RegExpExecArray | null;
    let consumed = 0;
    while ((got = re.exec(body))) {
      labels[got[1]!] = unescape(got[2]!);
      consumed = re.lastIndex;
    }
    if (consumed !== body.length) throw new Error(`unreadable labels in: ${line}`);
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== "NaN") throw new Error(`unreadable value in: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

/** The samples of `name` whose labels include `labels`. */
export const seriesOf = (m: ParsedMetrics, name: string, labels: Record<string, string> = {}): Sample[] =>
  m.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** The sum of the matching samples, or undefined when there is none. */
export function sampleValue(m: ParsedMetrics, name: string, labels: Record<string, string>): number | undefined {
  const found = seriesOf(m, name, labels);
  return found.length === 0 ? undefined : found.reduce((n, s) => n + s.value, 0);
}

/** Polls `probe` every 250 ms until it returns something, for at most `ms`. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// How deeply user JSON may nest: request bodies at the gateway, parameters on their way to a
// runner, results on their way back. Every bound here is checked without recursion, since what it
// guards against is a document deep enough to overflow the stack of whatever recurses over it.

/**
 * Arrays and objects open at once in one JSON document, the outermost counting as 1 (`{}` is 1,
 * `{"a": [1]}` is 2).
 *
 * 100 is Ruby's JSON `max_nesting` default and under serde_json's 128, so whatever Vespid accepts
 * parses with the defaults of the common parsers an action's own code or a client may use, and
 * it is far below what recurses safely here: V8's JSON.stringify overflows at a few thousand levels
 * (the gateway serialises parameters to queue them, the runner serialises results to store them),
 * and the guest's QuickJS parses parameters recursively too. Real parameters and results nest a
 * handful of levels; OpenWhisk states no depth bound, but its JSON parsers impose their own.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * Where the JSON text `text` first nests deeper than `limit`: the index of the bracket that opens
 * level `limit + 1`, or -1 when it never does. It reads brackets outside strings only and does not
 * check that the text is JSON (the parser does that after), in O(length) without recursion, so
 * it can run before a parse or anything else that recurses.
 */
export function jsonTextTooDeepAt(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string, to the next quote not escaped by an odd run of backslashes (indexOf:
      // code, the bulk of a big body, is one long string).
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return -1; // unterminated: the parser says so
        let backslashes = 0;
        while (text.charCodeAt(i - 1 - backslashes) === 0x5c /* \ */) backslashes++;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return i;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return -1;
}

/**
 * Whether the parsed JSON value `value` nests arrays and objects deeper than `limit` (a bare
 * scalar is 0, `{}` is 1). Iterative, with one frame per open level, so it holds at most `limit`
 * frames and stops at the first level past the limit: a hostile value costs no more than the part
 * of it within the bound. Objects count as their enumerable own values, as JSON.stringify sees
 * them. For a value that is also serialised, jsonTextTooDeepAt on the text is cheaper: this walk
 * costs about what JSON.stringify does.
 */
export function jsonValueTooDeep(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  if (value === null || typeof value !== "object") return false;
  if (limit < 1) return true;
  const childrenOf = (v: object): unknown[] => (Array.isArray(v) ? v : Object.values(v));
  // frames[k] is the children of the container open at level k + 1; positions[k] the next to visit.
  const frames: unknown[][] = [childrenOf(value)];
  const positions: number[] = [0];
  while (frames.length > 0) {
    const top = frames.length - 1;
    const children = frames[top]!;
    const i = positions[top]!;
    if (i >= children.length) {
      frames.pop();
      positions.pop();
      continue;
    }
    positions[top] = i + 1;
    const child = children[i];
    if (child === null || typeof child !== "object") continue;
    if (frames.length >= limit) return true;
    frames.push(childrenOf(child));
    positions.push(0);
  }
  return false;
}

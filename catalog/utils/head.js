/**
 * The first `num` lines (default 1), like Unix `head -n`.
 * @param lines an array of strings.
 * @param num how many to keep.
 * @returns {lines, num}
 */
function main(params) {
  const lines = params.lines || [];
  if (!Array.isArray(lines)) return { error: "lines must be an array" };
  const num = params.num || 1;
  if (typeof num !== "number" || !Number.isInteger(num) || num < 0) return { error: "num must be a non-negative integer" };
  return { lines: lines.slice(0, num), num };
}

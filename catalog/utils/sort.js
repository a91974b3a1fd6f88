/**
 * Sorts lines as JavaScript's Array.prototype.sort does (by their string form).
 * @param lines an array of strings (or numbers).
 * @returns {lines, length}
 */
function main(params) {
  const lines = params.lines || [];
  if (!Array.isArray(lines)) return { error: "lines must be an array" };
  const sorted = lines.slice().sort();
  return { lines: sorted, length: sorted.length };
}

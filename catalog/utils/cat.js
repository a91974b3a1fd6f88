/**
 * Like Unix `cat`: the input as lines and as one newline-separated string. Other fields of the
 * input are dropped.
 * @param lines an array of strings or numbers; when absent,
 * @param payload a string split at line ends.
 * @returns {lines, payload}
 */
function main(params) {
  let lines = [];
  if (params.lines) lines = params.lines;
  else if (params.payload !== undefined && params.payload !== null && params.payload !== "") lines = String(params.payload).split(/\r?\n/);
  if (!Array.isArray(lines)) return { error: "lines must be an array" };
  return { lines, payload: lines.join("\n") };
}

/**
 * Splits a string into lines.
 * @param payload the string.
 * @param separator (optional) the string to split at; line ends (\n or \r\n) when absent.
 * @returns {lines, payload}
 */
function main(params) {
  if (params.payload === undefined || params.payload === null) return { error: "payload is required: the string to split" };
  const payload = String(params.payload);
  const separator = params.separator === undefined || params.separator === null ? /\r?\n/ : String(params.separator);
  return { lines: payload.split(separator), payload };
}

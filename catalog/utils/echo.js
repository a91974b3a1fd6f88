/**
 * Returns its input as it is: a building block for sequences and rules.
 * @param payload (optional) any JSON value; every other parameter is returned too.
 */
function main(params) {
  return params;
}

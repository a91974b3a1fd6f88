/**
 * The current date and time, as an ISO 8601 string in UTC.
 * @returns {date}
 */
function main() {
  const date = new Date().toISOString();
  console.log("It is now " + date);
  return { date };
}

// Entity versions as OpenWhisk keeps them: semver strings, 0.0.1 for a new action, package,
// trigger or rule, and the patch number bumped by every update.

/** The version an entity gets when written: `previous` (absent for a new entity) with its patch bumped. */
export function nextVersion(previous: string | undefined): string {
  if (previous === undefined) return "0.0.1";
  const [major = 0, minor = 0, patch = 0] = previous.split(".").map(Number);
  return `${major}.${minor}.${patch + 1}`;
}

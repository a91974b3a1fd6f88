// The CLI's failures, each with the exit code it ends in and a hint saying what to do next.
// Exit codes: 0 success, 1 the API or the client failed (including a failed activation of a
// blocking invoke), 2 the command line was wrong.

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** The command line is wrong: bad flag, missing argument, value out of range. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, EXIT_USAGE, hint);
  }
}

/** The API answered with an error status. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
    hint?: string,
  ) {
    super(message, EXIT_FAILURE, hint);
  }
}

/** What to do next after an error status, when the status alone says it. */
export function hintForStatus(status: number, entity?: string): string | undefined {
  switch (status) {
    case 401:
      return "check your key: vespid property get (set it with vespid property set --auth uuid:key)";
    case 403:
      return "this key's namespace may not do that: check vespid property get, or ask for a key of the namespace that owns it";
    case 404:
      return entity ? `see what exists: vespid ${entity} list` : undefined;
    case 409:
      return entity ? `it exists already: use vespid ${entity} update` : undefined;
    case 429:
      return "the namespace's invocation limit is reached: wait a moment and retry";
    case 502:
      return "the action failed: see its logs with vespid activation logs --last";
    case 503:
      return "the platform has no capacity right now (is a runner running?): retry shortly";
    default:
      return undefined;
  }
}

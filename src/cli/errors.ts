/** Bad command-line input: reported to the user as one line, never as a stack trace. */
export class CliError extends Error {
  override name = "CliError";
}

/** The error for an option given together with one it excludes (long names, without the dashes). */
export function conflicting(option: string, other: string): CliError {
  return new CliError(`option '--${option}' conflicts with '--${other}'`);
}

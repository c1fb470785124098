/** Bad command-line input: reported to the user as one line, never as a stack trace. */
export class CliError extends Error {
  override name = "CliError";
}

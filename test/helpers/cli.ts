/** What the command-line tests share: the Config a command line gives, and the one-line error it gets instead. */
import { parseCommandLine, type Config } from "../../src/cli/config.ts";
import { CliError } from "../../src/cli/errors.ts";

/** The Config for a command line: `orzo` arguments (pasta unless the first one is passt). */
export function run(args: string[]): Config {
  const invocation = parseCommandLine("orzo", args, { SHELL: "/bin/sh" });
  if (invocation.action !== "run") throw new Error(`expected a run, got ${invocation.action}`);
  return invocation.config;
}

/** The CliError message a command line gets; fails when it is accepted. */
export function refused(args: string[]): string {
  try {
    run(args);
  } catch (e) {
    if (e instanceof CliError) return e.message;
    throw e;
  }
  throw new Error(`expected ${args.join(" ")} to be refused`);
}

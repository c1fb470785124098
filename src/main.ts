/** Entry point: parse the command line, set up logging, run the selected mode. */
import { renderHelp } from "./cli/commands.ts";
import { invokedProgram, parseCommandLine, type Config } from "./cli/config.ts";
import { CliError } from "./cli/errors.ts";
import { PROGRAM_NAME, VERSION_TEXT } from "./cli/version.ts";
import { log, setupLogging, writeAll } from "./log.ts";
import { AGENT_ARG } from "./ns/agent_protocol.ts";
import { runAgent } from "./ns/agent_process.ts";

const STDOUT = 1;
const STDERR = 2;

/** Starts the configured mode and returns the exit status; pasta and passt start-up are not written yet. */
export function runMode(config: Config): number {
  writeAll(STDERR, `${PROGRAM_NAME}: ${config.mode} mode is not available in this build yet\n`);
  return 1;
}

/** Runs orzo for one command line and returns the exit status; bad input is one line on stderr, not a trace. */
export async function main(program: string, args: readonly string[]): Promise<number> {
  try {
    const invocation = parseCommandLine(program, args);
    switch (invocation.action) {
      case "help":
        writeAll(STDOUT, `${await renderHelp(invocation.command, process.stdout.isTTY === true)}\n`);
        return 0;
      case "version":
        writeAll(STDOUT, `${VERSION_TEXT}\n`);
        return 0;
      case "run":
        setupLogging(invocation.config);
        log.debug(`configuration: ${JSON.stringify(invocation.config)}`);
        return runMode(invocation.config);
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    writeAll(STDERR, `${PROGRAM_NAME}: ${e.message}\n`);
    return 1;
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  // The namespace agent role is checked first: it must enter namespaces before anything starts a thread.
  // Exit explicitly once done: a finished subprocess or signal handler must not keep the process around.
  process.exit(args[0] === AGENT_ARG ? await runAgent(args[1]) : await main(invokedProgram(), args));
}

/** orzo proper: parse the command line, set up logging, run the selected mode. */
import { renderHelp } from "./cli/commands.ts";
import { parseCommandLine, type Config } from "./cli/config.ts";
import { CliError } from "./cli/errors.ts";
import { PROGRAM_NAME, VERSION_TEXT } from "./cli/version.ts";
import { log, setupLogging, writeAll } from "./log.ts";
import { runPasst } from "./passt.ts";
import { runPasta } from "./pasta.ts";

const STDOUT = 1;
const STDERR = 2;

/**
 * Runs the configured mode and returns the exit status. Failures at start-up (a namespace that cannot be
 * entered, a netlink request the kernel refuses...) are one line naming the cause, not a stack trace.
 */
export async function runMode(config: Config, args: readonly string[]): Promise<number> {
  // pasta running a command is quiet unless asked otherwise: the command's output is what the user watches.
  if (config.command.length > 0 && config.logLevel === "info") setupLogging({ ...config, logLevel: "warn" });
  // The background half of a hand-off is started as `orzo MODE ARGS`, however this one was invoked.
  const handOffArgs = args[0] === config.mode ? args : [config.mode, ...args];
  try {
    return await (config.mode === "passt" ? runPasst(config, handOffArgs) : runPasta(config, handOffArgs));
  } catch (e) {
    log.debug(e instanceof Error ? (e.stack ?? e.message) : String(e));
    writeAll(STDERR, `${PROGRAM_NAME}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
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
        return await runMode(invocation.config, args);
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    writeAll(STDERR, `${PROGRAM_NAME}: ${e.message}\n`);
    return 1;
  }
}

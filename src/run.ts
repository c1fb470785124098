/** orzo proper: parse the command line, set up logging, run the selected mode. */
import { renderHelp } from "./cli/commands.ts";
import { parseCommandLine, type Config } from "./cli/config.ts";
import { CliError } from "./cli/errors.ts";
import { PROGRAM_NAME, VERSION_TEXT } from "./cli/version.ts";
import { log, setupLogging, writeAll } from "./log.ts";
import { execIsolated, startIsolatedInBackground } from "./isolation/stage1.ts";
import { takeStage2State, type Stage2State } from "./isolation/stage2_state.ts";
import { close } from "./syscalls/io.ts";

const STDOUT = 1;
const STDERR = 2;

/** Prints a start-up failure as one line naming the cause (the stack only under --debug); returns status 1. */
function failed(e: unknown): number {
  log.debug(e instanceof Error ? (e.stack ?? e.message) : String(e));
  writeAll(STDERR, `${PROGRAM_NAME}: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}

/**
 * Stage 1: replaces this process with the exec chain that ends in stage 2 (isolation/stage1.ts), or, when the
 * mode goes to the background, starts the chain as a child and waits until it is ready.
 */
function startInstance(config: Config, args: readonly string[]): number | Promise<number> {
  // Both halves of a hand-off, and the exec chain, start orzo as `orzo MODE ARGS`, however this one was invoked.
  const modeArgs = args[0] === config.mode ? args : [config.mode, ...args];
  const daemon = !config.foreground && (config.mode === "passt" || config.command.length === 0);
  try {
    return daemon ? startIsolatedInBackground(config, modeArgs) : execIsolated(config, modeArgs);
  } catch (e) {
    return failed(e);
  }
}

/**
 * Stage 2: runs the configured mode and returns the exit status. Failures at start-up (a namespace that cannot
 * be entered, a netlink request the kernel refuses...) are one line naming the cause, not a stack trace.
 */
export async function runMode(config: Config, state: Stage2State): Promise<number> {
  try {
    // Loaded here, in stage 2 only: stage 1 has no use for the data path, and loading it costs start-up time.
    if (config.mode === "passt") return await (require("./passt.ts") as typeof import("./passt.ts")).runPasst(config, state);
    return await (require("./pasta.ts") as typeof import("./pasta.ts")).runPasta(config, state);
  } catch (e) {
    return failed(e);
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
      case "run": {
        const state = takeStage2State();
        const config = invocation.config;
        // pasta running a command is quiet unless asked otherwise: the command's output is what the user watches.
        const quiet = config.mode === "pasta" && config.logLevel === "info" && config.command.length > 0;
        setupLogging({ ...config, logLevel: quiet ? "warn" : config.logLevel, logFd: state?.logFd });
        if (state) {
          if (state.exeFd !== undefined) close(state.exeFd);
          return await runMode(config, state);
        }
        log.debug(`configuration: ${JSON.stringify(config)}`);
        return await startInstance(config, args);
      }
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    writeAll(STDERR, `${PROGRAM_NAME}: ${e.message}\n`);
    return 1;
  }
}

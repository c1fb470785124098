/** The run-time configuration, and how a command line (program name and arguments) becomes one. */
import type { LogLevel } from "../log.ts";
import { CliError } from "./errors.ts";
import { MODES, parseOptions, type Mode, type ParsedOptions } from "./options.ts";

/** Everything one orzo process needs to know about what to do, from the command line and defaults. */
export interface Config {
  readonly mode: Mode;
  /** The most verbose level printed. */
  readonly logLevel: LogLevel;
  /** Log only to this file (truncated at start) instead of stderr. */
  readonly logFile?: string;
  /** Stay in the foreground instead of becoming a daemon once set up. */
  readonly foreground: boolean;
  /** Write the process ID here. */
  readonly pidFile?: string;
  /** pasta: the command to run in a new network namespace (the user's shell by default); otherwise empty. */
  readonly command: readonly string[];
  /** pasta: join the network namespace of this process instead of creating one. */
  readonly targetPid?: number;
}

/** A command as help names it: `orzo`, `orzo pasta`, or `pasta` when invoked through a link. */
export type CommandPath = readonly ["orzo"] | readonly ["orzo", Mode] | readonly [Mode];

/** What a command line asks for. */
export type Invocation =
  | { readonly action: "run"; readonly config: Config }
  | { readonly action: "help"; readonly command: CommandPath }
  | { readonly action: "version" };

/** Environment variables, injectable so parsing stays a pure function. */
export type Environment = Readonly<Record<string, string | undefined>>;

// Linux PID_MAX_LIMIT on 64-bit systems: no process can have a larger PID.
const PID_MAX = 4194304;

/**
 * The path the program was invoked by. A compiled executable has its build-time name in argv[1]
 * (`/$bunfs/root/orzo`) and the link-resolved binary in execPath, so only argv0 keeps the name of a `pasta` link;
 * under `bun src/main.ts`, argv0 is "bun" and argv[1] is the script.
 */
export function invokedProgram(argv0: string = process.argv0, argv: readonly string[] = process.argv): string {
  const script = argv[1];
  return script === undefined || script.startsWith("/$bunfs/") ? argv0 : script;
}

/** The mode implied by the program's name, as pasta decides: basename contains "pasta", else "passt". */
export function detectMode(program: string): Mode | undefined {
  const basename = program.slice(program.lastIndexOf("/") + 1);
  if (basename.includes("pasta")) return "pasta";
  if (basename.includes("passt")) return "passt";
  return undefined;
}

/**
 * Turns a command line into what it asks for. Through a `pasta`/`passt` link the arguments are that command's;
 * as `orzo`, a first argument `pasta` or `passt` selects the mode and anything else runs pasta. Throws CliError.
 */
export function parseCommandLine(
  program: string,
  args: readonly string[],
  env: Environment = process.env,
): Invocation {
  const linked = detectMode(program);
  if (linked !== undefined) return interpret([linked], linked, args, env);
  const first = args[0];
  if (MODES.includes(first as Mode)) return interpret(["orzo", first as Mode], first as Mode, args.slice(1), env);
  if (first === "-h" || first === "--help") return { action: "help", command: ["orzo"] };
  return interpret(["orzo", "pasta"], "pasta", args, env);
}

function interpret(
  command: CommandPath,
  mode: Mode,
  args: readonly string[],
  env: Environment,
): Invocation {
  const { options, operands } = parseOptions(args, mode);
  if (options.help) return { action: "help", command };
  if (options.version) return { action: "version" };
  const target = mode === "pasta" ? pastaTarget(operands, env) : passtTarget(operands);
  return {
    action: "run",
    config: {
      mode,
      logLevel: logLevel(options),
      logFile: options.logFile,
      foreground: options.foreground === true,
      pidFile: options.pidFile,
      ...target,
    },
  };
}

function logLevel(options: ParsedOptions): LogLevel {
  // Conflicting wishes are refused, as pasta does, rather than silently picking one.
  if (options.quiet && (options.debug || options.trace)) {
    throw new CliError(`option '--quiet' conflicts with '--${options.trace ? "trace" : "debug"}'`);
  }
  if (options.trace) return "trace";
  if (options.debug) return "debug";
  return options.quiet ? "warn" : "info";
}

/** pasta operands: nothing (the user's shell), one all-digits PID to join, or a command and its arguments. */
function pastaTarget(
  operands: readonly string[],
  env: Environment,
): Pick<Config, "command" | "targetPid"> {
  if (operands.length === 0) return { command: [env.SHELL || "/bin/sh"] };
  if (operands.length === 1 && /^[0-9]+$/.test(operands[0])) {
    const pid = Number(operands[0]);
    if (pid < 1 || pid > PID_MAX) throw new CliError(`invalid PID '${operands[0]}'`);
    return { command: [], targetPid: pid };
  }
  return { command: operands };
}

function passtTarget(operands: readonly string[]): Pick<Config, "command"> {
  if (operands.length > 0) {
    throw new CliError(`extra non-option argument '${operands[0]}': passt mode takes no command`);
  }
  return { command: [] };
}

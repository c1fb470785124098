/** The run-time configuration, and how a command line (program name and arguments) becomes one. */
import type { LogLevel } from "../log.ts";
import { networkConfig, type NetworkConfig } from "./config-net.ts";
import { CliError } from "./errors.ts";
import { lastGiven, MODES, OPTIONS, parseOptions, type Mode, type ParsedOptions } from "./options.ts";
import { shown, type RunAs } from "./values.ts";

/** Where pasta's namespace comes from and how it is entered. */
export interface NamespaceConfig {
  /** pasta: the command to run in a new network namespace (the user's shell by default); otherwise empty. */
  readonly command: readonly string[];
  /** pasta: join the network namespace of this process instead of creating one. */
  readonly targetPid?: number;
  /** pasta --netns: join this network namespace (a bare NAME already expanded to /run/netns/NAME). */
  readonly netnsPath?: string;
  /** pasta --userns: join this user namespace. */
  readonly usernsPath?: string;
  /** pasta --netns-only, also implied by --netns without --userns: no user namespace is created or joined. */
  readonly netnsOnly: boolean;
  /** pasta --no-netns-quit: keep running when the joined namespace goes away. */
  readonly noNetnsQuit: boolean;
  /** pasta --config-net: configure MTU, addresses and routes of the tap interface. */
  readonly configNet: boolean;
  /** pasta --no-copy-routes (needs --config-net): only a default route. */
  readonly noCopyRoutes: boolean;
  /** pasta --no-copy-addrs (needs --config-net): only one address. */
  readonly noCopyAddrs: boolean;
}

/** passt's link to qemu. */
export interface PasstLinkConfig {
  /** passt -s: the UNIX domain socket to listen on; absent: the first free /tmp/passt_N.socket. */
  readonly socketPath?: string;
  /** passt -F: an inherited, connected socket to use instead of listening. */
  readonly socketFd?: number;
  /** passt -1 (implied by -F): exit when the guest disconnects instead of waiting for the next one. */
  readonly oneOff: boolean;
}

/** Everything one orzo process needs to know about what to do, from the command line and defaults. */
export interface Config extends NetworkConfig, NamespaceConfig, PasstLinkConfig {
  readonly mode: Mode;
  /** The most verbose level printed. */
  readonly logLevel: LogLevel;
  /** Log only to this file (truncated at start) instead of stderr. */
  readonly logFile?: string;
  /** --log-size: the most bytes the log file holds. */
  readonly logSize?: number;
  /** Stay in the foreground instead of becoming a daemon once set up. */
  readonly foreground: boolean;
  /** --stats: seconds between two rows of event counts on stderr (absent or 0: none). */
  readonly stats?: number;
  /** Write the process ID here. */
  readonly pidFile?: string;
  /** -p: capture tap-side frames to this pcap file. */
  readonly pcapFile?: string;
  /** --runas: the identity to switch to (names are looked up when switching). */
  readonly runAs?: RunAs;
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
  const { options, order, operands } = parseOptions(args, mode);
  if (options.help) return { action: "help", command };
  if (options.version) return { action: "version" };
  const config: Config = {
    mode,
    logLevel: logLevel(order),
    logFile: options.logFile,
    logSize: options.logSize,
    foreground: options.foreground === true,
    stats: options.stats,
    pidFile: options.pidFile,
    pcapFile: options.pcapFile,
    runAs: options.runAs,
    ...networkConfig(options, order, mode),
    // pasta has no qemu link; passtLink sets its own.
    oneOff: false,
    ...(mode === "pasta" ? pastaNamespace(options, order, operands, env) : passtLink(options, operands)),
  };
  // As pasta: the counts go to stderr, which a daemon no longer has; pasta running a command stays in the foreground.
  if (config.stats !== undefined && !config.foreground && config.command.length === 0) {
    throw new CliError("option '--stats' needs orzo in the foreground (-f): the counts go to stderr");
  }
  return { action: "run", config };
}

/**
 * -d, --trace and -q in command-line order, as pasta takes them: -d and --trace (which implies -d) undo an
 * earlier -q, -q undoes both, so the last one wins; a -d after --trace leaves tracing on.
 */
function logLevel(order: readonly string[]): LogLevel {
  let debug = false;
  let trace = false;
  let quiet = false;
  for (const key of order) {
    if (key === "debug" || key === "trace") {
      debug = true;
      trace ||= key === "trace";
      quiet = false;
    } else if (key === "quiet") {
      quiet = true;
      debug = trace = false;
    }
  }
  if (trace) return "trace";
  if (debug) return "debug";
  return quiet ? "warn" : "info";
}

/**
 * pasta's namespace: --netns PATH, or from the operands: nothing (the user's shell), one all-digits PID to join,
 * or a command and its arguments.
 */
function pastaNamespace(options: ParsedOptions, order: readonly string[], operands: readonly string[], env: Environment): NamespaceConfig {
  // --userns and --netns-only undo each other: the later one stands, as in pasta.
  const last = lastGiven(order, ["userns", "netnsOnly"] as const);
  const usernsPath = last === "userns" ? options.userns : undefined;
  for (const option of ["noCopyRoutes", "noCopyAddrs"] as const) {
    if (options[option] && !options.configNet) {
      throw new CliError(`option '--${OPTIONS[option].long}' requires '--config-net'`);
    }
  }
  const common = {
    usernsPath,
    noNetnsQuit: options.noNetnsQuit === true,
    configNet: options.configNet === true,
    noCopyRoutes: options.noCopyRoutes === true,
    noCopyAddrs: options.noCopyAddrs === true,
  };
  const netnsOnly = last === "netnsOnly";
  if (options.netns !== undefined) {
    if (operands.length > 0) {
      throw new CliError(`option '--netns' conflicts with the PID or command ${shown(operands[0])}`);
    }
    // Joining a namespace by path without --userns: the caller already has the privileges over it.
    return { ...common, command: [], netnsPath: options.netns, netnsOnly: netnsOnly || usernsPath === undefined };
  }
  if (operands.length === 0) return { ...common, command: [env.SHELL || "/bin/sh"], netnsOnly };
  if (operands.length === 1 && /^[0-9]+$/.test(operands[0])) {
    const pid = Number(operands[0]);
    if (pid < 1 || pid > PID_MAX) throw new CliError(`invalid PID '${operands[0]}'`);
    return { ...common, command: [], targetPid: pid, netnsOnly };
  }
  return { ...common, command: operands, netnsOnly };
}

/** passt's link: a socket path or an inherited socket; passt takes no operands. */
function passtLink(options: ParsedOptions, operands: readonly string[]): NamespaceConfig & PasstLinkConfig {
  if (operands.length > 0) {
    throw new CliError(`extra non-option argument ${shown(operands[0])}: passt mode takes no command`);
  }
  if (options.socketPath !== undefined && options.socketFd !== undefined) {
    throw new CliError("option '--fd' conflicts with '--socket'");
  }
  return {
    command: [],
    netnsOnly: false,
    noNetnsQuit: false,
    configNet: false,
    noCopyRoutes: false,
    noCopyAddrs: false,
    socketPath: options.socketPath,
    socketFd: options.socketFd,
    oneOff: options.oneOff === true || options.socketFd !== undefined,
  };
}

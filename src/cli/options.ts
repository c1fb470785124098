/**
 * The command-line options: one table, each row saying how an option is spelled, which modes take it, how its
 * value is checked and how it is documented, and a getopt_long-style parser over that table.
 */
import { CliError } from "./errors.ts";

/** The two personalities: pasta (a network namespace) or passt (a qemu guest on a UNIX socket). */
export type Mode = "pasta" | "passt";

/** Every mode; they are also the names of orzo's subcommands. */
export const MODES: readonly Mode[] = ["pasta", "passt"];

/** Which modes accept an option. */
export type ModeScope = Mode | "both";

interface OptionCommon {
  /** Long name, without the leading "--". */
  readonly long: string;
  /** Single-letter short name, without the leading "-". */
  readonly short?: string;
  /** One line for the help text. */
  readonly help: string;
  readonly modes: ModeScope;
}

/** An option without a value: given or not; giving it twice is the same as once. */
export interface FlagOption extends OptionCommon {
  readonly kind: "flag";
  /** Parsing stops when it is seen (help, version), so what follows cannot turn it into an error. */
  readonly terminal: boolean;
}

/** An option with a required value: "single" keeps the last one given, "multiple" keeps all, in order. */
export interface ValueOption<T, K extends "single" | "multiple" = "single" | "multiple"> extends OptionCommon {
  readonly kind: K;
  /** Placeholder for the value in help, e.g. PATH. */
  readonly valueName: string;
  /** Checks and converts the raw value; throws CliError with the reason when it is malformed. */
  readonly parse: (raw: string) => T;
}

/** Any row of the option table. */
export type OptionDef = FlagOption | ValueOption<unknown>;

/** An option table: parsed-value names to rows. */
export type OptionTable = Record<string, OptionDef>;

type FlagRow = Omit<FlagOption, "kind" | "modes" | "terminal"> & { modes?: ModeScope; terminal?: boolean };
type ValueRow<T> = Omit<ValueOption<T>, "kind" | "modes"> & { modes?: ModeScope };

/** A flag row; modes default to both. */
export function flag(row: FlagRow): FlagOption {
  return { modes: "both", terminal: false, ...row, kind: "flag" };
}

/** A row whose last value wins; modes default to both. */
export function single<T>(row: ValueRow<T>): ValueOption<T, "single"> {
  return { modes: "both", ...row, kind: "single" };
}

/** A repeatable row whose values accumulate in order (like -t/-u/-T/-U); modes default to both. */
export function multiple<T>(row: ValueRow<T>): ValueOption<T, "multiple"> {
  return { modes: "both", ...row, kind: "multiple" };
}

// Linux PATH_MAX, including the terminating NUL: longer paths would fail in every system call anyway.
const PATH_MAX = 4096;

/** A file system path: not empty, and short enough for the kernel. */
function filePath(raw: string): string {
  if (raw === "") throw new CliError("empty path");
  if (Buffer.byteLength(raw) >= PATH_MAX) throw new CliError(`path longer than ${PATH_MAX - 1} bytes`);
  return raw;
}

/**
 * The option table, in help order. Keys name the parsed values; later options are new rows, e.g.
 * `tcpPorts: multiple({ long: "tcp-ports", short: "t", valueName: "SPEC", parse: portSpec, help: "…" })`.
 */
export const OPTIONS = {
  debug: flag({ long: "debug", short: "d", help: "Print debugging messages" }),
  trace: flag({ long: "trace", help: "Print per-packet messages too (implies --debug)" }),
  quiet: flag({ long: "quiet", short: "q", help: "Print only warnings and errors" }),
  logFile: single({
    long: "log-file",
    short: "l",
    valueName: "PATH",
    parse: filePath,
    help: "Log to PATH (truncated first) instead of stderr",
  }),
  foreground: flag({
    long: "foreground",
    short: "f",
    help: "Stay in the foreground instead of running as a daemon",
  }),
  pidFile: single({
    long: "pid",
    short: "P",
    valueName: "PATH",
    parse: filePath,
    help: "Write the process ID to PATH",
  }),
  version: flag({ long: "version", help: "Print the version and exit", terminal: true }),
  help: flag({ long: "help", short: "h", help: "Print this help and exit", terminal: true }),
} satisfies OptionTable;

type OptionValue<O> =
  O extends FlagOption ? true
  : O extends ValueOption<infer T, "multiple"> ? T[]
  : O extends ValueOption<infer T, "single"> ? T
  : never;

/** The options given on a command line, each converted by its row; absent keys were not given. */
export type ParsedOptions<Table extends OptionTable = typeof OPTIONS> = {
  -readonly [K in keyof Table]?: OptionValue<Table[K]>;
};

/** Options and operands of one command line. */
export interface ParsedArgs<Table extends OptionTable = typeof OPTIONS> {
  readonly options: ParsedOptions<Table>;
  /** Arguments after the options: for pasta, the command to run or a PID. */
  readonly operands: readonly string[];
}

/** Resolves a long name as getopt_long does: an exact name, or a prefix of exactly one name. */
function findLong(rows: readonly [string, OptionDef][], name: string): string {
  const exact = rows.find(([, def]) => def.long === name);
  if (exact !== undefined) return exact[0];
  const candidates = name === "" ? [] : rows.filter(([, def]) => def.long.startsWith(name));
  if (candidates.length === 1) return candidates[0][0];
  if (candidates.length === 0) throw new CliError(`unrecognized option '--${name}'`);
  const names = candidates.map(([, def]) => `'--${def.long}'`).join(" ");
  throw new CliError(`option '--${name}' is ambiguous; possibilities: ${names}`);
}

/**
 * Parses options like getopt_long with a leading "+" (as pasta does): short flags cluster (`-dq`), a short
 * option's value is the rest of its word or the next word (`-Pfile`, `-P file`), a long option's value follows
 * "=" or is the next word, long names may be abbreviated, "--" ends the options, and so does the first word that
 * is not an option. Options of the other mode, unknown options and malformed values throw CliError.
 */
export function parseOptions<Table extends OptionTable = typeof OPTIONS>(
  args: readonly string[],
  mode: Mode,
  table: Table = OPTIONS as OptionTable as Table,
): ParsedArgs<Table> {
  const rows = Object.entries(table);
  const values: Record<string, unknown> = {};
  const done = (operands: readonly string[]): ParsedArgs<Table> => ({
    options: values as ParsedOptions<Table>,
    operands,
  });
  let next = 0;

  // Returns true when the option ends parsing (help, version).
  const take = (key: string, spelled: string, inlineValue: string | undefined): boolean => {
    const def = table[key];
    if (def.modes !== "both" && def.modes !== mode) {
      throw new CliError(`option '${spelled}' is for ${def.modes} mode only`);
    }
    if (def.kind === "flag") {
      if (inlineValue !== undefined) throw new CliError(`option '${spelled}' doesn't allow an argument`);
      values[key] = true;
      return def.terminal;
    }
    const raw = inlineValue ?? (next < args.length ? args[next++] : undefined);
    if (raw === undefined) throw new CliError(`option '${spelled}' requires an argument`);
    let value: unknown;
    try {
      value = def.parse(raw);
    } catch (e) {
      if (e instanceof CliError) throw new CliError(`invalid value for ${spelled}: ${e.message}`);
      throw e;
    }
    if (def.kind === "multiple") ((values[key] ??= []) as unknown[]).push(value);
    else values[key] = value;
    return false;
  };

  while (next < args.length) {
    const arg = args[next++];
    if (arg === "--") return done(args.slice(next));
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const key = findLong(rows, eq < 0 ? arg.slice(2) : arg.slice(2, eq));
      if (take(key, `--${table[key].long}`, eq < 0 ? undefined : arg.slice(eq + 1))) return done([]);
      continue;
    }
    if (arg.length < 2 || arg[0] !== "-") return done(args.slice(next - 1));
    for (let at = 1; at < arg.length; ) {
      const letter = String.fromCodePoint(arg.codePointAt(at)!);
      at += letter.length;
      const row = rows.find(([, def]) => def.short === letter);
      if (row === undefined) throw new CliError(`invalid option -- '${letter}'`);
      const [key, def] = row;
      // A valued option takes the rest of its word, which ends the cluster.
      if (def.kind !== "flag" && at < arg.length) {
        take(key, `-${letter}`, arg.slice(at));
        break;
      }
      if (take(key, `-${letter}`, undefined)) return done([]);
    }
  }
  return done([]);
}

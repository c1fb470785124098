/**
 * Logging: a consola instance whose lines go to stderr or, with --log-file, only to that file (kept within
 * --log-size), and once orzo runs in the background without one, to the system logger; written synchronously so
 * nothing is lost when the process exits. And rate-limited channels for per-packet paths.
 */
import { createConsola, LogLevels, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";
import { CliError } from "./cli/errors.ts";
import { VERSION_TEXT } from "./cli/version.ts";
import { LOG_SIZE_DEFAULT, LogFile, Syslog, writeAll } from "./log_outputs.ts";

/** How much is printed: errors only, also warnings, also information (default), also debugging, also packets. */
export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

/** The part of the configuration that logging needs. */
export interface LogSettings {
  readonly logLevel: LogLevel;
  readonly logFile?: string;
  /** --log-size: the most bytes the log file holds (default: 1 MiB). */
  readonly logSize?: number;
  /** The log file already open (stage 2 gets it from stage 1, which could still open it): used instead of logFile. */
  readonly logFd?: number;
}

/** A monotonic clock in milliseconds; injectable so tests need not sleep. */
export type Clock = () => number;

/** Writes all of data to fd synchronously; failures are dropped, as there is nowhere left to report them. */
export { writeAll };

const STDERR = 2;

const monotonicMs: Clock = () => performance.now();

let clock: Clock = monotonicMs;
/** Where lines go instead of stderr: the log file, or the system logger once in the background; none: stderr. */
let output: LogFile | Syslog | undefined;

/**
 * util.format, loaded on first use: importing node:util starts Bun threads, and the namespace thread must be
 * single-threaded until it has entered its user namespace.
 */
function format(...args: unknown[]): string {
  return (require("node:util") as typeof import("node:util")).format(...args);
}

// Seconds since the process started, as pasta stamps its lines.
function stamp(): string {
  return (clock() / 1000).toFixed(4);
}

function stamped(logObj: LogObject): string {
  return `${stamp()}: ${format(...logObj.args)}\n`;
}

/** syslog(3) severities by consola level: error, warning, then info for log and info, debug below. */
const SEVERITY = [3, 4, 6, 6, 7, 7];

const reporter: ConsolaReporter = {
  log(logObj) {
    if (output instanceof LogFile) output.write(stamped(logObj), stamp());
    else if (output instanceof Syslog) output.send(SEVERITY[Math.min(Math.max(logObj.level, 0), 5)], format(...logObj.args));
    else writeAll(STDERR, log.level >= LogLevels.debug ? stamped(logObj) : `${format(...logObj.args)}\n`);
  },
};

let instance: ConsolaInstance | undefined;
let level: number = LogLevels.info;

/**
 * The consola instance, made on first use: making it touches process.stdout, which starts Bun's I/O threads,
 * and the namespace thread must still be single-threaded when it enters a user namespace.
 */
function consola(): ConsolaInstance {
  instance ??= createConsola({
    level,
    reporters: [reporter],
    // consola would otherwise hold back repeated lines behind a timer; RateLimitedLog does that job here.
    throttle: Number.NEGATIVE_INFINITY,
  });
  return instance;
}

/** The process-wide logger: log.error/warn/info/debug/trace(format, ...args), and the level in force. */
export const log = {
  error: (...args: [unknown, ...unknown[]]): void => consola().error(...args),
  warn: (...args: [unknown, ...unknown[]]): void => consola().warn(...args),
  info: (...args: [unknown, ...unknown[]]): void => consola().info(...args),
  debug: (...args: [unknown, ...unknown[]]): void => {
    if (level >= LogLevels.debug) consola().debug(...args);
  },
  trace: (...args: [unknown, ...unknown[]]): void => {
    if (level >= LogLevels.trace) consola().trace(...args);
  },
  get level(): number {
    return level;
  },
  set level(v: number) {
    level = v;
    if (instance) instance.level = v;
  },
};

/** Whether messages of a level are printed: lets hot paths skip building a message nobody will see. */
export function logEnabled(level: LogLevel): boolean {
  return LogLevels[level] <= log.level;
}

/**
 * Applies the log level and destination. With a log file: truncate it, write the header line
 * "orzo VERSION: EXE (PID)", and from then on write nothing to stderr. Throws CliError if the file cannot be
 * opened. Can be called again; a previous log file is closed.
 */
export function setupLogging(settings: LogSettings, now: Clock = monotonicMs): void {
  clock = now;
  const size = settings.logSize ?? LOG_SIZE_DEFAULT;
  if (output !== undefined && output.fd !== settings.logFd) output.close();
  output = undefined;
  if (settings.logFd !== undefined) output = LogFile.adopt(settings.logFd, size);
  else if (settings.logFile !== undefined) {
    try {
      output = LogFile.create(settings.logFile, size, `${VERSION_TEXT}: ${process.execPath} (${process.pid})`);
    } catch (e) {
      throw new CliError(`cannot open log file: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  log.level = LogLevels[settings.logLevel];
}

/**
 * From now on, lines go to the system logger on fd (from openSyslog), tagged with name and the PID: for orzo in
 * the background without a log file, whose stderr is /dev/null from now on.
 */
export function logToSyslog(fd: number, name: string): void {
  output = new Syslog(fd, name);
}

/** The open log file's fd, if logging goes to one (stage 1 hands it to stage 2). */
export function logFileFd(): number | undefined {
  return output instanceof LogFile ? output.fd : undefined;
}

type Print = (...args: unknown[]) => void;

/**
 * A log channel that prints at most one message per interval and counts the rest, reporting the count with the
 * next message it prints. A suppressed call costs a level check, a clock read and an increment.
 */
export class RateLimitedLog {
  readonly #now: Clock;
  #last = Number.NEGATIVE_INFINITY;
  #suppressed = 0;

  /** intervalMs: the least time between two printed messages; now: the clock, for tests. */
  constructor(
    readonly intervalMs: number,
    now: Clock = monotonicMs,
  ) {
    this.#now = now;
  }

  /** Logs an error, unless one was printed through this channel less than an interval ago. */
  error(...args: unknown[]): void {
    this.#emit(LogLevels.error, log.error, args);
  }

  /** Logs a warning, unless a message was printed through this channel less than an interval ago. */
  warn(...args: unknown[]): void {
    this.#emit(LogLevels.warn, log.warn, args);
  }

  /** Logs information, unless a message was printed through this channel less than an interval ago. */
  info(...args: unknown[]): void {
    this.#emit(LogLevels.info, log.info, args);
  }

  /** Logs a debugging message, unless a message was printed through this channel less than an interval ago. */
  debug(...args: unknown[]): void {
    this.#emit(LogLevels.debug, log.debug, args);
  }

  /** Logs a trace message, unless a message was printed through this channel less than an interval ago. */
  trace(...args: unknown[]): void {
    this.#emit(LogLevels.trace, log.trace, args);
  }

  #emit(level: number, print: Print, args: unknown[]): void {
    // Messages below the log level would not be printed anyway: they neither print nor count.
    if (level > log.level) return;
    const now = this.#now();
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++;
      return;
    }
    this.#last = now;
    if (this.#suppressed === 0) {
      print(...args);
      return;
    }
    // Formatted first, so a format string's placeholders cannot swallow the count.
    print(`${format(...args)} (${this.#suppressed} similar messages suppressed)`);
    this.#suppressed = 0;
  }
}

const channels = new Map<string, RateLimitedLog>();

/**
 * The rate-limited channel for a key, created on first use; call sites sharing a key share the budget.
 * Hoist the call out of per-packet code: `const badFrame = rateLimited("tap: bad frame");`.
 */
export function rateLimited(key: string, intervalMs = 1000, now: Clock = monotonicMs): RateLimitedLog {
  let channel = channels.get(key);
  if (channel === undefined) {
    channel = new RateLimitedLog(intervalMs, now);
    channels.set(key, channel);
  }
  return channel;
}

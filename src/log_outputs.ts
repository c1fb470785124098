/**
 * Where log lines go besides stderr: the log file of -l, kept within --log-size, and the system logger once orzo
 * runs in the background without -l (/dev/log, connected in stage 1: the empty root of stage 5 has no /dev/log).
 *
 * A full log file loses its oldest part, as passt's does: the first line (the header) stays, marked with the
 * time of the cut, then about 30 % of the size is given up from the start of what follows, up to the next line
 * boundary, and the rest is kept. The kept part is read back, the file emptied and written again, so the log
 * never holds a partial line. Messages are cut to 8 KiB (passt's line buffer), which keeps one message always
 * within what a cut frees, since the size is at least five times that.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK } from "./syscalls/constants.ts";
import { close } from "./syscalls/io.ts";
import { connect, trySocket } from "./syscalls/socket.ts";

/** The longest message written to the file or sent to the system logger, in bytes (passt's BUFSIZ). */
export const LOG_LINE_MAX = 8192;
/** --log-size by default: 1 MiB, as passt. */
export const LOG_SIZE_DEFAULT = 1 << 20;
/** The least --log-size: five of the longest messages (or pages, if larger), as passt. */
export const LOG_SIZE_MIN = 5 * LOG_LINE_MAX;
/** What a cut gives up: 30 % of the size, rounded up to whole pages, as passt's. */
const CUT_PERCENT = 30;
const PAGE = 4096;
/** syslog(3)'s facility for daemons. */
const LOG_DAEMON = 3 << 3;
const SYSLOG_PATH = "/dev/log";
// Appending: writes land at the end however the file was cut; readable, for the cut.
const LOG_FILE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND;

/** A message as UTF-8, cut to LOG_LINE_MAX bytes, ending in a newline. */
function lineBytes(text: string): Buffer {
  const bytes = Buffer.from(text.endsWith("\n") ? text : `${text}\n`);
  if (bytes.length <= LOG_LINE_MAX) return bytes;
  bytes[LOG_LINE_MAX - 1] = 0x0a;
  return bytes.subarray(0, LOG_LINE_MAX);
}

/** Writes all of data to fd synchronously and returns the bytes written; failures are dropped, as there is nowhere left to report them. */
export function writeAll(fd: number, data: string | Uint8Array): number {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  let done = 0;
  try {
    while (done < bytes.length) done += writeSync(fd, bytes, done);
  } catch {
    // EPIPE, EAGAIN, a full disk or a gone system logger must not take the process down for the sake of a log line.
  }
  return done;
}

/** The -l log file, bounded by --log-size. */
export class LogFile {
  /** Bytes in the file. */
  private size: number;
  /** The header line, without its newline: written again, marked, at each cut. */
  private readonly header: string;
  private readonly cut: number;

  private constructor(
    readonly fd: number,
    private readonly maxSize: number,
    header: string,
    size: number,
  ) {
    this.header = header;
    this.size = size;
    this.cut = Math.ceil((maxSize * CUT_PERCENT) / 100 / PAGE) * PAGE;
  }

  /** Creates (mode 0600) or truncates the file at path and writes the header line; throws when it cannot. */
  static create(path: string, maxSize: number, header: string): LogFile {
    const fd = openSync(path, LOG_FILE_FLAGS, 0o600);
    const file = new LogFile(fd, maxSize, header, 0);
    file.size = writeAll(fd, Buffer.from(`${header}\n`));
    return file;
  }

  /** Takes on a log file stage 1 opened and started: its size and header line are read from it. */
  static adopt(fd: number, maxSize: number): LogFile {
    const head = Buffer.alloc(LOG_LINE_MAX);
    const n = readSync(fd, head, 0, head.length, 0);
    const nl = head.subarray(0, n).indexOf(0x0a);
    return new LogFile(fd, maxSize, head.toString("utf8", 0, nl < 0 ? n : nl), fstatSync(fd).size);
  }

  /** Appends one message, first cutting the oldest part when it would fill the file; `stamp` marks a cut. */
  write(text: string, stamp: string): void {
    const bytes = lineBytes(text);
    if (this.size + bytes.length >= this.maxSize) this.cutOldest(stamp);
    this.size += writeAll(this.fd, bytes);
  }

  /** Closes the file. */
  close(): void {
    closeSync(this.fd);
  }

  private cutOldest(stamp: string): void {
    const from = Buffer.byteLength(this.header) + 1 + this.cut;
    const kept = Buffer.alloc(Math.max(0, this.size - from));
    const n = kept.length === 0 ? 0 : readSync(this.fd, kept, 0, kept.length, from);
    // Nothing before the first line boundary of what is kept: it is the end of a line given up.
    const start = kept.subarray(0, n).indexOf(0x0a) + 1;
    const notice = Buffer.from(`${this.header} - log truncated at ${stamp}\n`);
    try {
      ftruncateSync(this.fd, 0);
    } catch {
      return;
    }
    this.size = writeAll(this.fd, notice);
    if (start > 0) this.size += writeAll(this.fd, kept.subarray(start, n));
  }
}

/**
 * The system logger's socket, connected now (stage 1), or undefined where there is none. Non-blocking: a logger
 * that falls behind loses messages rather than stalling traffic.
 */
export function openSyslog(): number | undefined {
  const fd = trySocket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return undefined;
  if (connect(fd, { family: "unix", path: SYSLOG_PATH }) === 0) return fd;
  close(fd);
  return undefined;
}

/** Messages to the system logger: "<PRI>NAME[PID]: message", the logger adds the time. */
export class Syslog {
  private readonly tag: string;

  /** fd: from openSyslog; name: the program name messages carry. */
  constructor(
    readonly fd: number,
    name: string,
  ) {
    this.tag = `${name}[${process.pid}]: `;
  }

  /** Sends one message at a syslog(3) severity (3 error, 4 warning, 6 info, 7 debug). */
  send(severity: number, text: string): void {
    writeAll(this.fd, lineBytes(`<${LOG_DAEMON | severity}>${this.tag}${text}`));
  }

  /** Closes the socket. */
  close(): void {
    close(this.fd);
  }
}

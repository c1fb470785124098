/**
 * Automatic forwarding (`-t auto`, `-T auto`, pasta's default): every second, read which ports are bound on the
 * other side from its /proc/net files, and open or close listeners so that exactly those ports of the scanning
 * rules are forwarded (doc/architecture.md §8).
 *
 * The namespace's files are opened once by the namespace thread (a /proc/net file shows the network namespace of
 * whoever opened it) and re-read from offset 0 at every scan; the host's are ours. Ports where orzo itself
 * listens on the other side are left out, or `-t auto` and `-T auto` together would forward a port back to
 * where it came from. A UDP table also forwards the ports of listening TCP sockets (protocols like iperf3's use
 * both); those are checked against the ports where orzo's TCP listeners are, its UDP ones against its UDP ones.
 */
import { readSync } from "node:fs";
import { log, rateLimited } from "../log.ts";
import { boundPortMap, newPortMap, portBitTest, scanListenMap, type ProcNetTexts } from "./procnet.ts";
import { ruleForPort, type ForwardTable } from "./rules.ts";

const READ_CHUNK = 1 << 16;
const scanLog = rateLimited("auto forwarding");

/** The /proc/net files of one side, as fds that stay open. */
export interface ProcNetFds {
  readonly tcp?: number;
  readonly tcp6?: number;
  readonly udp?: number;
  readonly udp6?: number;
}

/** Opens and closes the listeners of one table. */
export interface ScanListeners {
  /** Opens a listener for a port of rule `rule`; returns its fd or -errno. */
  open(port: number, rule: number): number;
  /** Closes a listener opened by open(). */
  close(fd: number, port: number): void;
  /** Ports orzo listens on where the scanned sockets live (never forwarded back there). */
  readonly exclude: Uint32Array;
  /** UDP tables: ports of orzo's TCP listeners there, excluded from the TCP ports a UDP table also takes. */
  readonly excludeTcp?: Uint32Array;
}

/** Keeps the listeners of a table's scanning rules in step with the ports bound on the other side. */
export class PortScanner {
  /** Scans done, listeners opened and closed, ports that failed. */
  readonly stats = { scans: 0, opened: 0, closed: 0, failed: 0 };
  private readonly bound = newPortMap();
  private readonly boundTcp = newPortMap();
  private readonly noExclude = newPortMap();
  private readonly wanted = newPortMap();
  private readonly open = new Map<number, number>();
  private readonly buf = Buffer.alloc(READ_CHUNK);

  constructor(
    private readonly table: ForwardTable,
    private readonly files: ProcNetFds,
    private readonly listeners: ScanListeners,
  ) {}

  /** Reads the other side's ports and opens or closes listeners to match. */
  scan(): void {
    this.stats.scans++;
    const texts: ProcNetTexts = {
      tcp: this.read(this.files.tcp),
      tcp6: this.read(this.files.tcp6),
      udp: this.read(this.files.udp),
      udp6: this.read(this.files.udp6),
    };
    let exclude = this.listeners.exclude;
    const excludeTcp = this.listeners.excludeTcp;
    let malformed: number;
    if (this.table.proto === "udp" && excludeTcp !== undefined) {
      // Each protocol's ports without orzo's own listeners of that protocol, then nothing more to exclude.
      malformed = boundPortMap("udp", { udp: texts.udp, udp6: texts.udp6 }, this.bound).malformed;
      malformed += boundPortMap("tcp", texts, this.boundTcp).malformed;
      for (let w = 0; w < this.bound.length; w++) this.bound[w] = (this.bound[w] & ~exclude[w]) | (this.boundTcp[w] & ~excludeTcp[w]);
      exclude = this.noExclude;
    } else {
      malformed = boundPortMap(this.table.proto, texts, this.bound).malformed;
    }
    if (malformed > 0) scanLog.debug(`auto forwarding: ${malformed} unreadable /proc/net lines`);
    scanListenMap(this.table, this.bound, exclude, this.wanted);
    for (const [port, fd] of this.open) {
      if (portBitTest(this.wanted, port)) continue;
      this.listeners.close(fd, port);
      this.open.delete(port);
      this.stats.closed++;
      log.debug(`auto forwarding: ${this.table.proto} port ${port} no longer bound, listener closed`);
    }
    for (let w = 0; w < this.wanted.length; w++) {
      if (this.wanted[w] === 0) continue;
      for (let b = 0; b < 32; b++) {
        const port = w * 32 + b;
        if (!(this.wanted[w] & (1 << b)) || this.open.has(port)) continue;
        const rule = ruleForPort(this.table, port);
        const fd = rule < 0 ? -1 : this.listeners.open(port, rule);
        if (fd < 0) {
          this.stats.failed++;
          scanLog.debug(`auto forwarding: cannot listen on ${this.table.proto} port ${port} (errno ${-fd})`);
          continue;
        }
        this.open.set(port, fd);
        this.stats.opened++;
        log.debug(`auto forwarding: ${this.table.proto} port ${port} bound on the other side, listening`);
      }
    }
  }

  /** The whole text of a /proc/net file from its start, or undefined when it cannot be read. */
  private read(fd: number | undefined): string | undefined {
    if (fd === undefined) return undefined;
    const parts: string[] = [];
    let pos = 0;
    try {
      for (;;) {
        const n = readSync(fd, this.buf, 0, READ_CHUNK, pos);
        if (n <= 0) break;
        parts.push(this.buf.toString("latin1", 0, n));
        pos += n;
      }
    } catch (e) {
      scanLog.warn(`auto forwarding: cannot read /proc/net: ${(e as Error).message}`);
      return undefined;
    }
    return parts.join("");
  }
}

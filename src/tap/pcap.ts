/**
 * --pcap FILE: every Ethernet frame on the link, both ways, in a libpcap file (src/wire/pcap.ts).
 *
 * The capture decorates a link rather than living in it, as smoltcp's PcapWriter wraps a device: the sink the
 * link hands frames from the guest to is wrapped (each frame is recorded as it is read, then handed on), and the
 * link's flush is wrapped (each batch to the guest is recorded as it is flushed). Without --pcap neither wrapper
 * exists, so the data path is exactly what it is without this file. Frames are recorded as the link carries
 * them: Ethernet frames without the tap's virtio-net header or the stream's length, TCP super-frames of up to
 * 64 KiB whole (cut to the snapshot length), and TCP checksums left to the kernel as the partial sums they are.
 *
 * Records are copied into one preallocated buffer and written with one write() per loop cycle (or when the
 * buffer fills), never one per frame. A write the file does not take (a full disk) drops the records it held:
 * they are counted and the failure is logged, rate-limited, and the link never waits for the file.
 */
import { CliError } from "../cli/errors.ts";
import { rateLimited } from "../log.ts";
import type { EventLoop } from "../loop.ts";
import { O_APPEND, O_CLOEXEC, O_CREAT, O_TRUNC, O_WRONLY } from "../syscalls/constants.ts";
import { errnoName, errnoText } from "../syscalls/errno.ts";
import { close, ftruncate, tryOpen, write, writeBytes } from "../syscalls/io.ts";
import { copyMem, Mem } from "../syscalls/mem.ts";
import { PCAP_FILE_HLEN, PCAP_REC_HLEN, PCAP_SNAPLEN, pcapFileHeaderEmit, pcapRecordCaplen, pcapRecordEmit } from "../wire/pcap.ts";
import type { FrameSink, Link } from "./link.ts";

/** Records held before they are written: a loop cycle's worth at full speed, at least one of the largest. */
const BUFFER_BYTES = 4 << 20;
const writeFailedLog = rateLimited("pcap: write failed");

/**
 * Opens (creates or truncates, mode 0600) the capture file and writes its header; returns the fd. Throws a
 * CliError naming the path and the reason. Kept apart from the writer so start-up can open the file early.
 */
export function openPcapFile(path: string): number {
  // O_APPEND: after a short write is cut back (PcapWriter.flush), the next write lands at the new end of the file.
  const fd = tryOpen(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600);
  if (fd < 0) throw new CliError(`--pcap ${path}: ${errnoText(-fd)}`);
  const header = new Uint8Array(PCAP_FILE_HLEN);
  pcapFileHeaderEmit(new DataView(header.buffer), 0);
  const r = writeBytes(fd, header);
  if (r !== header.length) {
    close(fd);
    throw new CliError(`--pcap ${path}: ${r < 0 ? errnoText(-r) : "the file header was cut short"}`);
  }
  return fd;
}

/** Counters of a capture. */
export interface PcapStats {
  /** Frames written to the file. */
  frames: number;
  /** Frames lost because the file did not take them. */
  dropped: number;
  /** Writes that failed or stopped short. */
  failedWrites: number;
}

/** Buffers capture records and writes them to a file opened by openPcapFile. */
export class PcapWriter {
  /** Counters. */
  readonly stats: PcapStats = { frames: 0, dropped: 0, failedWrites: 0 };
  private readonly buf = new Mem(BUFFER_BYTES);
  private fill = 0;
  /** Records in buf. */
  private held = 0;
  /** Where the file ends: what a short write is cut back to. */
  private fileSize = PCAP_FILE_HLEN;
  /**
   * performance.now() plus this is the wall-clock time that records carry. The monotonic clock drifts from the
   * wall clock (a virtual machine's is stepped), so the offset is taken again at every flush: once per loop
   * cycle, not per frame.
   */
  private epochMs = Date.now() - performance.now();

  /** fd: the capture file, just opened by openPcapFile (its header written, nothing after it). */
  constructor(readonly fd: number) {}

  /** Appends a record of the len-byte frame at address addr, seen at now (performance.now() milliseconds). */
  record(addr: number, len: number, now: number): void {
    if (PCAP_REC_HLEN + Math.min(len, PCAP_SNAPLEN) > this.buf.bytes.length - this.fill) this.flush();
    const at = this.fill;
    const caplen = pcapRecordEmit(this.buf.view, at, this.epochMs + now, len);
    copyMem(this.buf.addr + at + PCAP_REC_HLEN, addr, caplen);
    this.fill = at + PCAP_REC_HLEN + caplen;
    this.held++;
  }

  /** Writes the records held in one write(); what the file does not take is dropped and counted. */
  flush(): void {
    const len = this.fill;
    this.epochMs = Date.now() - performance.now();
    if (len === 0) return;
    const r = write(this.fd, this.buf.addr, len);
    if (r === len) {
      this.stats.frames += this.held;
      this.fileSize += len;
    } else this.shortWrite(r);
    this.fill = 0;
    this.held = 0;
  }

  /** A write that failed or stopped short (r: bytes written or -errno): keeps the whole records it wrote. */
  private shortWrite(r: number): void {
    const written = Math.max(r, 0);
    let whole = 0;
    let records = 0;
    while (records < this.held) {
      const next = whole + PCAP_REC_HLEN + pcapRecordCaplen(this.buf.view, whole);
      if (next > written) break;
      whole = next;
      records++;
    }
    let note = "";
    if (written > whole) {
      // A record cut short would make the reader misparse every later one: end the file at the last whole one.
      const t = ftruncate(this.fd, this.fileSize + whole);
      if (t < 0) note = `; cutting off the partial record failed: ${errnoName(-t)}`;
      this.fileSize += t < 0 ? written : whole;
    } else this.fileSize += whole;
    this.stats.frames += records;
    this.stats.dropped += this.held - records;
    this.stats.failedWrites++;
    const why = r < 0 ? errnoText(-r) : `${written} of ${this.fill} bytes written`;
    writeFailedLog.warn(`pcap: writing the capture failed (${why}${note}): ${this.stats.dropped} frames dropped so far`);
  }
}

/** Records each frame from the guest, then hands it on. */
class CapturingSink implements FrameSink {
  constructor(private readonly inner: FrameSink, private readonly writer: PcapWriter) {}

  frame(buf: Uint8Array, addr: number, off: number, len: number, now: number): void {
    this.writer.record(addr + off, len, now);
    this.inner.frame(buf, addr, off, len, now);
  }

  flushInput(): void {
    this.inner.flushInput();
  }
}

/** The capture of one link, both ways, into a pcap file. */
export class LinkCapture {
  /** The file's writer. */
  readonly writer: PcapWriter;

  /** fd: from openPcapFile. The records of each loop cycle are written once it has flushed its frames. */
  constructor(loop: EventLoop, fd: number) {
    this.writer = new PcapWriter(fd);
    loop.afterFlush(() => this.writer.flush());
  }

  /** The sink to give the link in place of inner: it records frames from the guest. */
  sink(inner: FrameSink): FrameSink {
    return new CapturingSink(inner, this.writer);
  }

  /** Makes link record every batch it flushes to the guest; returns it. */
  link<L extends Link>(link: L): L {
    const writer = this.writer;
    link.observeOutput((addr, offs, lens, count) => {
      const now = performance.now();
      for (let i = 0; i < count; i++) writer.record(addr + offs[i], lens[i], now);
    });
    return link;
  }
}

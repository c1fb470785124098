/**
 * A guest that speaks passt's stream protocol from the test itself, in place of qemu: frames go out with their
 * 32-bit big-endian length in front, and frames coming back are split out of the byte stream the same way. On
 * top of it, a minimal scripted TCP client (handshake, segments within the peer's window, go-back-N
 * retransmission, in-order receive, FIN both ways) so a test can move data through orzo's TCP path by hand.
 *
 * Waits poll a non-blocking socket in small steps, so the test's own event loop (child processes, timers) keeps
 * running; each has a timeout.
 */
import { AF_UNIX, F_SETFL, MSG_DONTWAIT, MSG_NOSIGNAL, O_NONBLOCK, SOCK_CLOEXEC, SOCK_STREAM } from "../../src/syscalls/constants.ts";
import { Errno } from "../../src/syscalls/errno.ts";
import { close, fcntl, recv, send } from "../../src/syscalls/io.ts";
import { Mem } from "../../src/syscalls/mem.ts";
import { connect, socket } from "../../src/syscalls/socket.ts";
import { rd16, rd32 } from "../../src/wire/bytes.ts";
import { ETH_HLEN, ETHERTYPE_IPV4, ethEmit } from "../../src/wire/ethernet.ts";
import { IPPROTO_TCP } from "../../src/wire/ip.ts";
import { IP4_HLEN, ipv4ChecksumOk, ipv4Emit } from "../../src/wire/ipv4.ts";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, tcpChecksumOk4, tcpEmit, tcpSetChecksum4 } from "../../src/wire/tcp.ts";

/** One end of the stream protocol over a connected UNIX socket. */
export class StreamGuest {
  /** Frames received and not yet taken, in order. */
  readonly frames: Uint8Array[] = [];
  private readonly buf = new Mem(1 << 20);
  private acc: Uint8Array = new Uint8Array(0);
  private eof = false;

  constructor(readonly fd: number) {}

  /**
   * Connects to orzo's socket path. The connect blocks while orzo's backlog (passt's is 0) still holds an earlier
   * connection; the socket is non-blocking from then on.
   */
  static connect(path: string): StreamGuest {
    const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const r = connect(fd, { family: "unix", path });
    if (r < 0) {
      close(fd);
      throw new Error(`connect ${path}: errno ${-r}`);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return new StreamGuest(fd);
  }

  /** The stream bytes for frames: each one's length, then the frame. */
  static encode(...frames: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(frames.reduce((n, f) => n + 4 + f.length, 0));
    let at = 0;
    for (const f of frames) {
      new DataView(out.buffer).setUint32(at, f.length, false);
      out.set(f, at + 4);
      at += 4 + f.length;
    }
    return out;
  }

  /** Writes raw stream bytes, all of them (waiting for room in the socket, up to timeoutMs). */
  async write(bytes: Uint8Array, timeoutMs = 5000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let done = 0;
    while (done < bytes.length) {
      const n = Math.min(bytes.length - done, this.buf.bytes.length);
      this.buf.bytes.set(bytes.subarray(done, done + n), 0);
      const r = send(this.fd, this.buf.addr, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0) done += r;
      else if (r !== -Errno.EAGAIN) throw new Error(`send: errno ${-r}`);
      else if (performance.now() > deadline) throw new Error("the socket stayed full");
      else await Bun.sleep(1);
    }
  }

  /** Sends frames with their length prefixes. */
  send(...frames: Uint8Array[]): Promise<void> {
    return this.write(StreamGuest.encode(...frames));
  }

  /** Reads what the socket has; returns false at EOF or on an error (the connection is gone). */
  pump(): boolean {
    for (;;) {
      const r = recv(this.fd, this.buf.addr, this.buf.bytes.length, MSG_DONTWAIT);
      if (r === -Errno.EAGAIN) break;
      if (r <= 0) {
        this.eof = true;
        break;
      }
      const next = new Uint8Array(this.acc.length + r);
      next.set(this.acc, 0);
      next.set(this.buf.bytes.subarray(0, r), this.acc.length);
      this.acc = next;
    }
    let at = 0;
    while (this.acc.length - at >= 4) {
      const len = rd32(this.acc, at);
      if (this.acc.length - at - 4 < len) break;
      this.frames.push(this.acc.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    this.acc = this.acc.slice(at);
    return !this.eof;
  }

  /** Takes the first received frame that matches pred, waiting up to timeoutMs for it. */
  async take(pred: (f: Uint8Array) => boolean, timeoutMs = 5000, what = "a matching frame"): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.pump();
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.eof) throw new Error(`connection closed while waiting for ${what}`);
      if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms (${this.frames.length} others)`);
      await Bun.sleep(1);
    }
  }

  /** Resolves true once orzo closed the connection (EOF), false if it did not within timeoutMs. */
  async closedByPeer(timeoutMs = 5000): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.pump()) {
      if (performance.now() > deadline) return false;
      await Bun.sleep(2);
    }
    return true;
  }

  /** Closes our end. */
  close(): void {
    close(this.fd);
  }
}

/** Addressing of a scripted TCP connection: IPv4 addresses and MACs as bytes. */
export interface TcpEnds {
  guestMac: Uint8Array;
  gatewayMac: Uint8Array;
  guest: Uint8Array;
  server: Uint8Array;
  sport: number;
  dport: number;
}

const L4 = ETH_HLEN + IP4_HLEN;
const MSS = 1460;
const WINDOW = 65535;
const RTO_MS = 200;

/** A TCP segment from the guest's point of view, parsed from a frame orzo sent. */
interface Segment {
  flags: number;
  seq: number;
  ack: number;
  window: number;
  data: Uint8Array;
}

/** A TCP/IPv4 client run by hand over a StreamGuest: no options but MSS, no window scaling, no SACK. */
export class ScriptedTcp {
  /** Bytes received from the server, in order. */
  received: Uint8Array[] = [];
  /** True once the server's FIN arrived (in order). */
  finReceived = false;
  private sndUna = 0;
  private sndNxt = 0;
  private rcvNxt = 0;
  private peerWindow = 0;
  private readonly iss = 1000;

  constructor(private readonly g: StreamGuest, private readonly e: TcpEnds) {}

  /** The three-way handshake. */
  async connect(timeoutMs = 5000): Promise<void> {
    await this.g.send(this.segment(this.iss, 0, TCP_SYN, new Uint8Array(0), MSS));
    const synAck = await this.next(timeoutMs, "SYN-ACK");
    if ((synAck.flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK) || synAck.ack !== this.iss + 1) {
      throw new Error(`expected a SYN-ACK for ${this.iss + 1}, got flags ${synAck.flags} ack ${synAck.ack}`);
    }
    this.sndUna = this.sndNxt = this.iss + 1;
    this.rcvNxt = (synAck.seq + 1) >>> 0;
    this.peerWindow = synAck.window;
    await this.g.send(this.segment(this.sndNxt, this.rcvNxt, TCP_ACK));
  }

  /**
   * Sends data and then FIN (when fin is set) while taking in what the server sends; resolves once everything
   * sent is acknowledged and, if untilFin, the server's FIN arrived.
   */
  async exchange(data: Uint8Array, opts: { fin: boolean; untilFin: boolean; timeoutMs?: number }): Promise<void> {
    const deadline = performance.now() + (opts.timeoutMs ?? 20_000);
    const start = this.sndUna;
    const end = start + data.length;
    const finSeq = opts.fin ? end : -1;
    let lastProgress = performance.now();
    for (;;) {
      const acked = this.sndUna === end + (opts.fin ? 1 : 0);
      if (acked && (!opts.untilFin || this.finReceived)) return;
      if (performance.now() > deadline) throw new Error(`TCP exchange stalled: ${this.sndUna - start} of ${data.length} acknowledged, FIN ${this.finReceived}`);
      // Go back to the first unacknowledged byte when nothing moved for a while.
      if (performance.now() - lastProgress > RTO_MS) {
        this.sndNxt = this.sndUna;
        lastProgress = performance.now();
      }
      const out: Uint8Array[] = [];
      while (this.sndNxt < end && this.sndNxt - this.sndUna < this.peerWindow) {
        const n = Math.min(MSS, end - this.sndNxt, this.peerWindow - (this.sndNxt - this.sndUna));
        out.push(this.segment(this.sndNxt, this.rcvNxt, TCP_ACK | TCP_PSH, data.subarray(this.sndNxt - start, this.sndNxt - start + n)));
        this.sndNxt += n;
      }
      if (this.sndNxt === end && finSeq >= 0 && this.sndUna <= end) {
        out.push(this.segment(end, this.rcvNxt, TCP_ACK | TCP_FIN));
        this.sndNxt = end + 1;
      }
      if (out.length > 0) await this.g.send(...out);
      const before = this.sndUna;
      await this.drain();
      if (this.sndUna !== before) lastProgress = performance.now();
    }
  }

  /** Sends our FIN after the server's, without waiting for its acknowledgment (the last ACK of the connection). */
  async finish(): Promise<void> {
    await this.g.send(this.segment(this.sndNxt, this.rcvNxt, TCP_ACK | TCP_FIN));
    this.sndNxt++;
  }

  /** Takes every TCP frame received so far (waiting briefly for one), updating state and acknowledging data. */
  private async drain(): Promise<void> {
    let ackNeeded = false;
    try {
      for (let seg = await this.next(5, "segment"); ; seg = await this.next(0, "segment")) {
        if (seg.flags & TCP_RST) throw new Error("connection reset by orzo");
        if (seg.flags & TCP_ACK && seqAfter(seg.ack, this.sndUna) && !seqAfter(seg.ack, this.sndNxt)) this.sndUna = seg.ack;
        this.peerWindow = seg.window;
        if (seg.data.length > 0 || seg.flags & TCP_FIN) ackNeeded = true;
        const skip = (this.rcvNxt - seg.seq) >>> 0;
        if (seg.data.length > 0 && skip < seg.data.length) {
          if (skip > 0x7fffffff) continue; // beyond what we expect: out of order, acknowledged as a duplicate
          this.received.push(seg.data.subarray(skip));
          this.rcvNxt = (this.rcvNxt + seg.data.length - skip) >>> 0;
        }
        if (seg.flags & TCP_FIN && ((seg.seq + seg.data.length) >>> 0) === this.rcvNxt && !this.finReceived) {
          this.finReceived = true;
          this.rcvNxt = (this.rcvNxt + 1) >>> 0;
        }
      }
    } catch (e) {
      if (!(e instanceof NoSegment)) throw e;
    }
    if (ackNeeded) await this.g.send(this.segment(this.sndNxt, this.rcvNxt, TCP_ACK));
  }

  /** The next TCP segment of this connection, checked (IPv4 and TCP checksums); throws NoSegment on timeout. */
  private async next(timeoutMs: number, what: string): Promise<Segment> {
    const e = this.e;
    const match = (f: Uint8Array) =>
      rd16(f, 12) === ETHERTYPE_IPV4 && f[ETH_HLEN + 9] === IPPROTO_TCP && rd16(f, L4) === e.dport && rd16(f, L4 + 2) === e.sport;
    let f: Uint8Array;
    try {
      f = await this.g.take(match, timeoutMs, what);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith("no ")) throw new NoSegment(err.message);
      throw err;
    }
    const totLen = rd16(f, ETH_HLEN + 2);
    const tcpLen = totLen - IP4_HLEN;
    if (!ipv4ChecksumOk(f, ETH_HLEN, IP4_HLEN) || !tcpChecksumOk4(f, ETH_HLEN, L4, tcpLen)) throw new Error("bad checksum from orzo");
    const hlen = (f[L4 + 12] >> 4) * 4;
    return { flags: f[L4 + 13], seq: rd32(f, L4 + 4), ack: rd32(f, L4 + 8), window: rd16(f, L4 + 14), data: f.slice(L4 + hlen, ETH_HLEN + totLen) };
  }

  /** A segment from the guest to the server. */
  private segment(seq: number, ack: number, flags: number, data: Uint8Array = new Uint8Array(0), mss = 0): Uint8Array {
    const e = this.e;
    const hlen = 20 + (mss ? 4 : 0);
    const f = new Uint8Array(L4 + hlen + data.length);
    ethEmit(f, 0, e.gatewayMac, 0, e.guestMac, 0, ETHERTYPE_IPV4);
    ipv4Emit(f, ETH_HLEN, e.guest, 0, e.server, 0, IPPROTO_TCP, hlen + data.length, 64);
    tcpEmit(f, L4, e.sport, e.dport, seq >>> 0, ack >>> 0, flags, WINDOW, mss);
    f.set(data, L4 + hlen);
    tcpSetChecksum4(f, ETH_HLEN, L4, hlen + data.length);
    return f;
  }
}

/** No segment arrived in time (an ordinary outcome while draining). */
class NoSegment extends Error {}

/** True when sequence number a comes after b (modulo 2^32). */
function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/**
 * Spliced TCP connections (pasta only): loopback traffic joined socket to socket without the tap (doc/tcp.md §11).
 *
 * A connection accepted from the host's loopback on a -t port is connected inside the namespace to the same (or
 * mapped) port, and one accepted on a -T listener in the namespace is connected to the host's loopback. Side 0
 * is the accepted socket, side 1 the one we connect. Bytes move with splice(2) through a pipe per direction, so
 * they never enter this process: read from one side into its pipe, then from the pipe into the other side. When
 * the other side cannot take more (OUT_WAIT on that side), this side stops reading (its mask loses EPOLLIN) until
 * EPOLLOUT says the other side drained; the bytes left in the pipe are tracked, so nothing is lost or reordered.
 * A FIN read on one side becomes shutdown(SHUT_WR) on the other once its pipe is empty; both FINs sent, or an
 * error anywhere, and the connection closes (with RST on errors: SO_LINGER 0 on both sockets).
 *
 * Namespace sockets come from a pool the namespace thread refills in the background (ns_pool.ts), so an inbound
 * connection does not wait for a round trip to the namespace thread.
 */
import { EpollType, sidxFlow, sidxSide } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import { AF_INET, AF_INET6, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, F_SETPIPE_SZ, IPPROTO_TCP, O_CLOEXEC, O_NONBLOCK, SHUT_WR, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SPLICE_F_MORE, SPLICE_F_MOVE, SPLICE_F_NONBLOCK, TCP_NODELAY } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { close, fcntl, pipe2, splice } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { sockaddrFromInany } from "../syscalls/sockaddr.ts";
import { connectRaw, setsockoptInt, shutdown, socketError, trySocket } from "../syscalls/socket.ts";
import { logEnabled, rateLimited } from "../log.ts";
import { INANY_LEN, inanyIsV4 } from "../wire/inany.ts";
import { flowEpollSet, flows } from "./epoll.ts";
import { FlowType, INISIDE, Pif, TGTSIDE, type FlowTable, type Side } from "./flow.ts";
import { SpliceEvent, SpliceFlag, spliceFinRcvd, spliceFinSent, spliceOutWait } from "./splice_state.ts";
import type { TcpSockIo } from "./tcp_sockio.ts";
import { NsSocketPool, type NamespaceSockets } from "./ns_pool.ts";

/**
 * Pipe capacity asked for first (pasta's too): a splice moves at most a pipe's worth. Refusals (above
 * fs.pipe-max-size without privileges, or beyond the user's pipe pages) halve it for this and later pipes, down to
 * the kernel's default of 64 KiB.
 */
const PIPE_SIZE_MAX = 8 << 20;
const PIPE_SIZE_DEFAULT = 64 << 10;
/** Empty pipes kept for the next connections, as pairs of ends: a new sized pipe costs three syscalls or more. */
const PIPE_POOL_PAIRS = 32;
const ZERO = new Uint8Array(INANY_LEN);
const spliceLog = rateLimited("splice: reset");

/** Spliced connections between the host's and the namespace's loopback. */
export class TcpSplice {
  /** Counters. */
  readonly stats = { opened: 0, closed: 0, resets: 0, bytes: 0 };
  private readonly t: FlowTable;
  /** Pipe ends by flow and source side (2f + side): bytes read from that side wait here for the other. */
  private readonly pipeR: Int32Array;
  private readonly pipeW: Int32Array;
  /** Bytes in each pipe. */
  private readonly pending: Float64Array;
  private readonly pool: NsSocketPool | undefined;
  /** Pooled empty pipes: read end, write end, read end, … */
  private readonly pipePool: number[] = [];
  private readonly sa = new Mem(128);
  /** The largest pipe size the kernel granted lately: what is asked for next, and the most a splice asks for. */
  private pipeSize = PIPE_SIZE_MAX;

  constructor(loop: EventLoop, private readonly io: TcpSockIo, ns: NamespaceSockets | undefined) {
    const t = (this.t = flows());
    this.pool = ns && new NsSocketPool(ns, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    this.pipeR = new Int32Array(2 * t.capacity);
    this.pipeW = new Int32Array(2 * t.capacity);
    this.pending = new Float64Array(2 * t.capacity);
    t.setTypeOps(FlowType.TCP_SPLICE, {
      shouldFree: (f) => (t.flags[f] & SpliceFlag.CLOSING) !== 0,
      release: (f) => this.release(f),
    });
    loop.on(EpollType.TCP_SPLICE, (_fd, payload, events) => this.event(sidxFlow(payload), sidxSide(payload) as Side, events));
  }

  /** True when spliced connections into the namespace are possible (pasta with an agent). */
  get toNamespace(): boolean {
    return this.pool !== undefined;
  }

  /**
   * Joins an accepted socket s (side 0, on pif iniPif, peer and local addresses as inany with ports) to a new
   * socket on tgtPif connected to tgtAddr:tgtPort. Returns false when it cannot (the caller resets s).
   */
  open(s: number, iniPif: Pif, peer: Uint8Array, peerPort: number, local: Uint8Array, localPort: number, tgtPif: Pif, tgtAddr: Uint8Array, tgtPort: number): boolean {
    const v4 = inanyIsV4(tgtAddr, 0);
    const sock = tgtPif === Pif.SPLICE ? this.pool?.take(v4) ?? -1 : trySocket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock < 0) return false;
    const t = this.t;
    const f = t.alloc();
    if (f < 0) {
      close(sock);
      return false;
    }
    t.initiate(f, iniPif, peer, 0, peerPort, local, 0, localPort);
    t.target(f, tgtPif, ZERO, 0, 0, tgtAddr, 0, tgtPort);
    t.setType(f, FlowType.TCP_SPLICE);
    t.fd[2 * f + INISIDE] = s;
    t.fd[2 * f + TGTSIDE] = sock;
    this.pipeR.fill(-1, 2 * f, 2 * f + 2);
    this.pipeW.fill(-1, 2 * f, 2 * f + 2);
    // s came from a listener set up with TCP_NODELAY, which accepted sockets inherit.
    setsockoptInt(sock, IPPROTO_TCP, TCP_NODELAY, 1);
    t.events[f] = SpliceEvent.CONNECT;
    const len = sockaddrFromInany(this.sa, 0, tgtAddr, 0, tgtPort, 0);
    const r = connectRaw(sock, this.sa.addr, len);
    // Side 0 joins epoll once connected: a connect on loopback ends within microseconds, and the accepted socket
    // has nothing to say before (its data waits in the kernel).
    const e1 = r === -Errno.EINPROGRESS ? flowEpollSet(EpollType.TCP_SPLICE, f, TGTSIDE) : 0;
    t.activate(f);
    this.stats.opened++;
    if (r < 0 && r !== -Errno.EINPROGRESS) this.reset(f, `connect: errno ${-r}`);
    else if (e1 < 0) this.reset(f, `epoll: errno ${-e1}`);
    else if (r === 0) this.connected(f);
    return true;
  }

  private event(f: number, side: Side, events: number): void {
    const t = this.t;
    if (t.type[f] !== FlowType.TCP_SPLICE || t.flags[f] & SpliceFlag.CLOSING) return;
    if (t.events[f] & SpliceEvent.CONNECT) {
      // A failed connect reports EPOLLERR (and EPOLLHUP); EPOLLOUT alone means connected, no SO_ERROR to ask.
      if (side === TGTSIDE && events & (EPOLLERR | EPOLLHUP)) this.reset(f, `connect: errno ${socketError(t.fd[2 * f + TGTSIDE])}`);
      else if (side === TGTSIDE && events & EPOLLOUT) this.connected(f);
      return;
    }
    if (events & EPOLLERR) {
      this.reset(f, `socket error ${socketError(t.fd[2 * f + side])}`);
      return;
    }
    if (events & EPOLLOUT) this.forward(f, (1 - side) as Side);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) this.forward(f, side);
  }

  /** The target side connected: pipes in place, both sides start reading. */
  private connected(f: number): void {
    const t = this.t;
    for (let side = 0; side < 2; side++) {
      const i = 2 * f + side;
      if (this.pipePool.length > 0) {
        this.pipeW[i] = this.pipePool.pop()!;
        this.pipeR[i] = this.pipePool.pop()!;
        continue;
      }
      try {
        const [r, w] = pipe2(O_NONBLOCK | O_CLOEXEC);
        this.pipeR[i] = r;
        this.pipeW[i] = w;
      } catch (e) {
        this.reset(f, `no pipe: ${(e as Error).message}`);
        return;
      }
      while (this.pipeSize > PIPE_SIZE_DEFAULT && fcntl(this.pipeW[i], F_SETPIPE_SZ, this.pipeSize) < 0) this.pipeSize >>= 1;
    }
    t.events[f] = SpliceEvent.ESTABLISHED;
    if (!this.epoll(f)) return;
    this.forward(f, INISIDE);
    this.forward(f, TGTSIDE);
  }

  /** Moves what side `from` has to the other side, until one would block; carries FIN across. */
  private forward(f: number, from: Side): void {
    const t = this.t;
    if (t.flags[f] & SpliceFlag.CLOSING || !(t.events[f] & SpliceEvent.ESTABLISHED)) return;
    const to = (1 - from) as Side;
    const i = 2 * f + from;
    const src = t.fd[i];
    const dst = t.fd[2 * f + to];
    const before = t.events[f];
    const cap = this.pipeSize;
    for (;;) {
      let readMore = false;
      if (!(t.events[f] & spliceFinRcvd(from)) && this.pending[i] < cap) {
        const ask = cap - this.pending[i];
        const n = splice(src, this.pipeW[i], ask, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n === 0) t.events[f] |= spliceFinRcvd(from);
        else if (n > 0) {
          this.pending[i] += n;
          // Less than asked: the socket is drained for now. It is level-triggered, so epoll reports what comes
          // next, and no read needs to end in EAGAIN to find that out.
          readMore = n === ask;
        } else if (n !== -Errno.EAGAIN && n !== -Errno.EINTR) {
          this.reset(f, `splice read: errno ${-n}`);
          return;
        }
      }
      if (this.pending[i] > 0) {
        const more = this.pending[i] >= cap * 0.9 ? SPLICE_F_MORE : 0;
        const m = splice(this.pipeR[i], dst, this.pending[i], SPLICE_F_MOVE | SPLICE_F_NONBLOCK | more);
        if (m > 0) {
          this.pending[i] -= m;
          this.stats.bytes += m;
        } else if (m !== -Errno.EAGAIN && m !== -Errno.EINTR) {
          this.reset(f, `splice write: errno ${-m}`);
          return;
        }
        if (this.pending[i] > 0 && m <= 0) break;
      }
      if (!readMore) break;
    }
    if (this.pending[i] > 0) t.events[f] |= spliceOutWait(to);
    else t.events[f] &= ~spliceOutWait(to);
    if (t.events[f] & spliceFinRcvd(from) && this.pending[i] === 0 && !(t.events[f] & spliceFinSent(to))) {
      shutdown(dst, SHUT_WR);
      t.events[f] |= spliceFinSent(to);
    }
    if ((t.events[f] & (spliceFinSent(0) | spliceFinSent(1))) === (spliceFinSent(0) | spliceFinSent(1))) {
      this.close(f);
      return;
    }
    if (t.events[f] !== before) this.epoll(f);
  }

  /** Sets both sides' events; false after a reset if epoll refused (ENOSPC, ENOMEM): a side left out would hang. */
  private epoll(f: number): boolean {
    const r = flowEpollSet(EpollType.TCP_SPLICE, f, INISIDE) || flowEpollSet(EpollType.TCP_SPLICE, f, TGTSIDE);
    if (r < 0) this.reset(f, `epoll: errno ${-r}`);
    return r >= 0;
  }

  /** Resets both sockets (RST to both peers). */
  private reset(f: number, why: string): void {
    const t = this.t;
    if (logEnabled("debug")) spliceLog.debug(`TCP_SPLICE flow ${f}: reset (${why})`);
    this.stats.resets++;
    this.io.lingerZero(t.fd[2 * f + INISIDE]);
    if (t.fd[2 * f + TGTSIDE] >= 0) this.io.lingerZero(t.fd[2 * f + TGTSIDE]);
    this.close(f);
  }

  /** CLOSING: no more forwarding; sockets (leaving epoll as they close) and pipes go at the end of the cycle. */
  private close(f: number): void {
    const t = this.t;
    t.flags[f] |= SpliceFlag.CLOSING;
    t.markFree(f);
    this.epoll(f);
    this.stats.closed++;
  }

  private release(f: number): void {
    for (let i = 2 * f; i < 2 * f + 2; i++) {
      // Only a pipe known to be empty may serve another connection; one a reset left bytes in is closed.
      if (this.pipeR[i] >= 0 && this.pending[i] === 0 && this.pipePool.length < 2 * PIPE_POOL_PAIRS) {
        this.pipePool.push(this.pipeR[i], this.pipeW[i]);
      } else {
        if (this.pipeR[i] >= 0) close(this.pipeR[i]);
        if (this.pipeW[i] >= 0) close(this.pipeW[i]);
      }
      this.pipeR[i] = this.pipeW[i] = -1;
      this.pending[i] = 0;
    }
  }

  /** Closes the pooled namespace sockets and pipes. */
  closePool(): void {
    this.pool?.close();
    for (const fd of this.pipePool.splice(0)) close(fd);
  }
}

/**
 * TCP between the guest (tap) and host sockets, without a TCP stack: each guest connection is mirrored by one
 * kernel socket on the host, and orzo only translates between the two (doc/tcp.md).
 *
 * Theory of operation. Toward the guest, orzo invents the sequence space (an RFC 6528 style ISN) and keeps no
 * payload buffers: bytes in the socket's receive queue from seqAckFromTap on are exactly the bytes not yet
 * acknowledged by the guest; they are peeked (never read) and sent as segments up to the guest's MSS within its
 * window, and dropped from the socket only when the guest acknowledges them, so a retransmission is a rewind
 * and a new peek. From the guest, payload in sequence is written straight from the tap buffer into the socket
 * and acknowledged as the socket takes it; the window offered to the guest is the socket's free send space, so
 * the guest rarely sends more than the socket can take, and what arrives in order while the socket is full goes
 * to a bounded spill buffer instead of being dropped (pasta's weak spot, doc/tcp.md §6).
 *
 * Connection state is a set of event bits (TcpEvent) and condition flags (TcpFlag); the socket's epoll events
 * are computed from them by flowEpollSet. Retransmission runs on one timerfd per connection (TCP_TIMER), made
 * only once the guest leaves data unacknowledged for 2 ms, and armed lazily: acknowledgments only record
 * progress, and an expiry that finds recent progress re-arms for the rest.
 * Acknowledgments to the guest are batched per loop cycle, and small ones briefly delayed for a reply to carry
 * them (tcp_ack.ts). Closed connections are freed by the flow table at the end of the cycle.
 */
import { EpollType, sidxFlow } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { CLOCK_MONOTONIC, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, MSG_DONTWAIT, MSG_NOSIGNAL, SHUT_WR, TFD_CLOEXEC, TFD_NONBLOCK } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { send } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { shutdown, socketError } from "../syscalls/socket.ts";
import { timerfdCreate, timerfdSet } from "../syscalls/timer.ts";
import { logEnabled, rateLimited } from "../log.ts";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST } from "../wire/tcp.ts";
import { flowEpollSet, flows } from "./epoll.ts";
import { FlowType, INISIDE, Pif, TGTSIDE, type FlowTable, type Side } from "./flow.ts";
import { FlowQueue, INACTIVITY_MS, isV4, MAX_WINDOW, mssForMtu, rtoMs, seqAdd, seqLe, seqLt, seqSub, TCP_MAX_RETRIES, TcpConns, TcpSpill, type TcpStats } from "./tcp_conn.ts";
import { TCP_SUPER_FRAME_PAYLOAD, TcpTapOut } from "./tcp_out.ts";
import { TcpAcks } from "./tcp_ack.ts";
import { TcpSockIo } from "./tcp_sockio.ts";
import { TcpEvent, TcpFlag } from "./tcp_state.ts";

/** Most bytes peeked from one socket per wake-up. */
const PEEK_MAX = 2 << 20;
const SPILL_SIZE = 512 << 10;
const SPILL_BUFFERS = 32;
/** Tap-side keepalive interval. */
const KEEPALIVE_MS = 30_000;
/** How long a connection waits for an acknowledgment before its retransmission timer is armed. */
const ARM_GRACE_MS = 2;

const resetLog = rateLimited("tcp: reset");

/** Every tap-side TCP connection, and the socket and timer events that drive them. */
export class TcpFlows {
  /** Counters. */
  readonly stats: TcpStats = { opened: 0, closed: 0, resets: 0, spilled: 0, refused: 0, retransmits: 0 };
  /** Sequence state by flow. */
  readonly c: TcpConns;
  /** Frames to the guest. */
  readonly out: TcpTapOut;
  /** Socket primitives. */
  readonly io: TcpSockIo;
  private readonly t: FlowTable;
  private readonly spill = new TcpSpill(SPILL_SIZE, SPILL_BUFFERS);
  private readonly spillMem: Mem[] = [];
  private readonly peekBuf = new Mem(PEEK_MAX);
  /** When the guest last acknowledged new data (or the timer was last armed), by flow: lazy RTO. */
  private readonly progress: Float64Array;
  /** Timer armed, by flow. */
  private readonly armed: Uint8Array;
  /** Flows that began waiting for an acknowledgment this cycle, and those still waiting from earlier cycles. */
  private readonly toArm: FlowQueue;
  private readonly waiting: FlowQueue;
  private readonly wait = (f: number): void => this.waiting.add(f);
  /** The current cycle's wake-up time, when timers are armed. */
  private cycle = 0;
  /** ACKs owed to the guest. */
  private readonly acks: TcpAcks;
  private now = 0;

  private readonly offload: boolean;

  constructor(loop: EventLoop, private readonly nc: NetConf, link: Link) {
    const t = (this.t = flows());
    this.offload = link.offload;
    this.c = new TcpConns(t.capacity);
    this.io = new TcpSockIo(t.capacity);
    this.out = new TcpTapOut(nc, link, t, this.c);
    this.progress = new Float64Array(t.capacity);
    this.armed = new Uint8Array(t.capacity);
    this.toArm = new FlowQueue(t.capacity);
    this.waiting = new FlowQueue(t.capacity);
    this.acks = new TcpAcks(t, this.c, loop, {
      updateWindow: (f, forced) => this.updateWindow(f, forced),
      sendAck: (f) => this.out.flags(f, this.tapSide(f), TCP_ACK),
    });
    t.setTypeOps(FlowType.TCP, {
      shouldFree: (f, now, timerDue) => this.shouldFree(f, now, timerDue),
      release: (f) => this.release(f),
    });
    loop.on(EpollType.TCP, (_fd, payload, events, now) => this.sockEvent(sidxFlow(payload), events, now));
    loop.on(EpollType.TCP_TIMER, (_fd, payload, _events, now) => this.timerEvent(payload, now));
    loop.onFlush((now) => this.flushAcks(now));
    loop.afterFlush((now) => this.armQueuedTimers(loop, now));
    loop.every(KEEPALIVE_MS, (now) => this.keepalive(now));
  }

  /** Every 30 s, an ACK one byte behind to connections the guest was silent on: RST if it forgot (doc/tcp.md §8). */
  keepalive(now: number): void {
    const t = this.t;
    t.forEachActive((f) => {
      if (t.type[f] !== FlowType.TCP || !(t.events[f] & TcpEvent.ESTABLISHED) || now - t.lastActive[f] < KEEPALIVE_MS) return;
      this.out.segment(f, this.tapSide(f), TCP_ACK, seqAdd(this.c.seqToTap[f], -1), null, 0, 0);
    });
  }

  /** The side of flow f that faces the guest. */
  tapSide(f: number): Side {
    return this.t.pif[2 * f + TGTSIDE] === Pif.TAP ? TGTSIDE : INISIDE;
  }

  /** The socket of flow f. */
  sock(f: number): number {
    return this.t.fd[2 * f + (1 - this.tapSide(f))];
  }

  /** The most payload per segment toward the guest for our MTU. */
  ourMss(v4: boolean): number {
    return mssForMtu(this.nc.mtu > 0 ? this.nc.mtu : 65520, v4);
  }

  /** Registers the socket with the events its state calls for. */
  epoll(f: number): void {
    flowEpollSet(EpollType.TCP, f, (1 - this.tapSide(f)) as Side);
  }

  /** Sets or clears flag bits; the epoll mask follows when STALLED or SOCK_OUT_WAIT changed. */
  setFlags(f: number, set: number, clear: number): void {
    const t = this.t;
    const before = t.flags[f];
    const after = ((before & ~clear) | set) >>> 0;
    if (after === before) return;
    t.flags[f] = after;
    if ((before ^ after) & TcpFlag.SOCK_OUT_WAIT) this.epoll(f);
    if (after & TcpFlag.ACK_FROM_TAP_DUE && !(before & TcpFlag.ACK_FROM_TAP_DUE)) {
      this.progress[f] = this.now;
      // Armed after this cycle's frames are out, and only if still waiting a cycle later (armQueuedTimers).
      if (!this.armed[f]) this.toArm.add(f);
    }
  }

  /** Owes the guest an ACK at the end of this cycle (forced: even if nothing changed, and without delay). */
  ackLater(f: number, forced: boolean): void {
    this.acks.later(f, forced);
  }

  /** Discards what the guest acknowledged and sends the ACKs owed now (the loop does this after every wake-up). */
  flushAcks(now = performance.now()): void {
    this.io.flushDiscards();
    this.acks.flush(now);
  }

  /**
   * Recomputes the window offered to the guest. While what the guest wrote since the last measurement leaves more
   * than half of the space then measured (and several segments' worth), the window is that remainder and no
   * syscall is made (the right edge stays put); otherwise, or when forced (the guest probes a small window), the
   * socket is asked again (SO_SNDBUF, SIOCOUTQ).
   */
  updateWindow(f: number, forced = false): void {
    const c = this.c;
    const estimate = c.sndSpace[f] - c.writtenSince[f];
    if (!forced && estimate > c.sndSpace[f] / 2 && estimate >= 4 * c.mss[f] && c.spillLen[f] === 0) {
      c.wndToTap[f] = Math.min(estimate, 65535 * (1 << c.wsToTap[f]), MAX_WINDOW);
      return;
    }
    const space = this.io.sendSpace(this.sock(f));
    c.sndSpace[f] = space;
    c.writtenSince[f] = 0;
    let w = space - c.spillLen[f];
    // Silly-window avoidance (RFC 1122 4.2.3.3): a sliver of window under one segment is offered as none, so the
    // guest waits for our update (EPOLLOUT below) rather than for its persist timer.
    if (w < 0 || (w < c.mss[f] && w < this.io.lastSndbuf / 2)) w = 0;
    const max = 65535 * (1 << c.wsToTap[f]);
    c.wndToTap[f] = Math.min(w, max, MAX_WINDOW);
    // A mostly full socket: have EPOLLOUT tell us when it drained (the kernel signals at a third free or so),
    // so the guest hears of the space at once instead of probing for it after its persist timer.
    if (w < this.io.lastSndbuf / 4) this.setFlags(f, TcpFlag.SOCK_OUT_WAIT, 0);
  }

  // --- socket side -------------------------------------------------------------------------------------------

  /** Events on a connection's socket. */
  sockEvent(f: number, events: number, now: number): void {
    const t = this.t;
    this.now = now;
    const ev = t.events[f];
    if (t.type[f] !== FlowType.TCP || ev === TcpEvent.CLOSED) return;
    if (ev === TcpEvent.TAP_SYN_RCVD) {
      if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) this.connectDone(f);
      return;
    }
    if (events & EPOLLERR) {
      this.reset(f, `socket error ${socketError(this.sock(f))}`);
      return;
    }
    if (!(ev & TcpEvent.ESTABLISHED)) return;
    if (events & EPOLLOUT) this.drainSpill(f);
    if (events & (EPOLLRDHUP | EPOLLHUP) && !(t.events[f] & TcpEvent.SOCK_FIN_RCVD)) {
      t.events[f] |= TcpEvent.SOCK_FIN_RCVD;
      this.epoll(f);
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) this.sockToTap(f);
    this.maybeClose(f);
  }

  /** A non-blocking connect finished: SYN-ACK to the guest, or RST when it failed. */
  private connectDone(f: number): void {
    const err = socketError(this.sock(f));
    if (err !== 0) {
      this.stats.refused++;
      this.reset(f, `connect failed: errno ${err}`);
      return;
    }
    this.synAckToTap(f);
  }

  /** Answers the guest's SYN once the host side is connected. */
  synAckToTap(f: number): void {
    const t = this.t;
    const c = this.c;
    const isn = c.seqToTap[f];
    const ts = this.tapSide(f);
    this.out.syn(f, ts, TCP_ACK, isn, this.ourMss(isV4(t, f, ts)));
    c.seqToTap[f] = c.seqAckFromTap[f] = seqAdd(isn, 1);
    t.events[f] = TcpEvent.TAP_SYN_RCVD | TcpEvent.TAP_SYN_ACK_SENT;
    this.epoll(f);
    this.setFlags(f, TcpFlag.ACK_FROM_TAP_DUE, 0);
  }

  /**
   * Sends socket data the guest has not seen, as far as its window allows; at end of stream with everything
   * acknowledged, a FIN.
   */
  sockToTap(f: number): void {
    // The socket is edge-triggered: keep going while a peek filled the buffer and the window has room.
    while (this.sockToTapOnce(f));
  }

  /** One peek's worth of sockToTap; true when the buffer was filled and there may be more to send now. */
  private sockToTapOnce(f: number): boolean {
    const t = this.t;
    const c = this.c;
    const ev = t.events[f];
    if (!(ev & TcpEvent.ESTABLISHED) || ev & TcpEvent.TAP_FIN_SENT) return false;
    if (seqLt(c.seqToTap[f], c.seqAckFromTap[f])) c.seqToTap[f] = c.seqAckFromTap[f];
    const inFlight = seqSub(c.seqToTap[f], c.seqAckFromTap[f]);
    const wnd = c.wndFromTap[f];
    if (inFlight >= wnd) {
      this.setFlags(f, TcpFlag.STALLED | TcpFlag.ACK_FROM_TAP_BLOCKS | TcpFlag.ACK_FROM_TAP_DUE, TcpFlag.SOCK_DRAINED);
      return false;
    }
    const want = Math.min(wnd - inFlight, PEEK_MAX);
    const fd = this.sock(f);
    const n = this.io.peek(fd, this.peekBuf, 0, want, inFlight);
    if (n === -Errno.EAGAIN || n === -Errno.EINTR) {
      this.setFlags(f, (inFlight > 0 ? TcpFlag.STALLED : 0) | TcpFlag.SOCK_DRAINED, TcpFlag.ACK_FROM_TAP_BLOCKS);
      return false;
    }
    if (n < 0) {
      this.reset(f, `peek failed: errno ${-n}`);
      return false;
    }
    if (n === 0) {
      t.events[f] |= TcpEvent.SOCK_FIN_RCVD;
      if (inFlight > 0) {
        // No edge follows end of stream: the guest's ACK of what is in flight must come back here for the FIN.
        this.setFlags(f, TcpFlag.STALLED, TcpFlag.ACK_FROM_TAP_BLOCKS | TcpFlag.SOCK_DRAINED);
        return false;
      }
      c.seqAckToTap[f] = c.seqFromTap[f];
      this.updateWindow(f);
      this.out.flags(f, this.tapSide(f), TCP_FIN | TCP_ACK);
      c.seqToTap[f] = seqAdd(c.seqToTap[f], 1);
      t.events[f] |= TcpEvent.TAP_FIN_SENT;
      this.epoll(f);
      this.setFlags(f, TcpFlag.ACK_FROM_TAP_DUE, TcpFlag.STALLED);
      return false;
    }
    const ts = this.tapSide(f);
    // With offload, super-frames of whole MSS multiples: the kernel cuts them into the guest's MSS.
    const mss = this.offload ? Math.max(c.mss[f], TCP_SUPER_FRAME_PAYLOAD - (TCP_SUPER_FRAME_PAYLOAD % c.mss[f])) : c.mss[f];
    c.seqAckToTap[f] = c.seqFromTap[f];
    this.updateWindow(f);
    for (let p = 0; p < n; p += mss) {
      const len = Math.min(mss, n - p);
      this.out.segment(f, ts, p + len >= n ? TCP_ACK | TCP_PSH : TCP_ACK, c.seqToTap[f], this.peekBuf.bytes, p, len);
      c.seqToTap[f] = seqAdd(c.seqToTap[f], len);
    }
    // Less than asked for: the queue is drained up to what is in flight, so wait for the next edge.
    // Drained, unless the socket already reported its FIN: then no edge follows, and the ACK must peek for it.
    const short = n < want;
    const drained = short && !(t.events[f] & TcpEvent.SOCK_FIN_RCVD);
    const set = TcpFlag.ACK_FROM_TAP_DUE | (short ? TcpFlag.STALLED : 0) | (drained ? TcpFlag.SOCK_DRAINED : 0);
    this.setFlags(f, set, TcpFlag.ACK_FROM_TAP_BLOCKS | (short ? 0 : TcpFlag.STALLED) | (drained ? 0 : TcpFlag.SOCK_DRAINED));
    return n === want;
  }

  /** Writes held guest data once the socket has room; then the FIN it may have been waiting behind. */
  drainSpill(f: number): void {
    const t = this.t;
    const c = this.c;
    const len = c.spillLen[f];
    if (len > 0) {
      const b = c.spillBuf[f];
      const mem = this.spillMem[b];
      const n = send(this.sock(f), mem.addr, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && n !== -Errno.EAGAIN && n !== -Errno.EINTR) {
        this.reset(f, `send failed: errno ${-n}`);
        return;
      }
      if (n > 0) {
        mem.bytes.copyWithin(0, n, len);
        c.spillLen[f] = len - n;
        c.writtenSince[f] += n;
      }
      if (c.spillLen[f] > 0) return;
      this.spill.give(b);
      c.spillBuf[f] = -1;
    }
    this.setFlags(f, 0, TcpFlag.SOCK_OUT_WAIT);
    if (t.events[f] & TcpEvent.TAP_FIN_RCVD && !(t.events[f] & TcpEvent.SOCK_FIN_SENT)) this.finToSock(f);
    this.ackLater(f, false);
  }

  /** The guest closed its side and all its data is in the socket: close the socket's write side. */
  finToSock(f: number): void {
    shutdown(this.sock(f), SHUT_WR);
    this.t.events[f] |= TcpEvent.SOCK_FIN_SENT;
  }

  /**
   * Queues guest payload at addr (len bytes, starting at sequence seq) into the socket: written directly when
   * the socket takes it, held in the spill buffer when it is momentarily full.
   */
  dataFromTap(f: number, addr: number, bytes: Uint8Array, off: number, len: number, seq: number): void {
    const c = this.c;
    const expected = c.seqFromTap[f];
    if (seqLt(expected, seq)) {
      this.dupAck(f);
      return;
    }
    const skip = seqSub(expected, seq);
    if (skip >= len) {
      this.ackLater(f, true);
      return;
    }
    off += skip;
    len -= skip;
    let written = 0;
    if (c.spillLen[f] === 0) {
      const n = send(this.sock(f), addr + off, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && n !== -Errno.EAGAIN && n !== -Errno.EINTR) {
        this.reset(f, `send failed: errno ${-n}`);
        return;
      }
      written = n > 0 ? n : 0;
    }
    c.writtenSince[f] += written;
    if (written < len) written += this.spillIn(f, bytes, off + written, len - written);
    c.seqFromTap[f] = seqAdd(expected, written);
    if (written < len) this.dupAck(f);
    else this.ackLater(f, false);
  }

  /** Holds guest data the socket could not take; returns how much was held. */
  private spillIn(f: number, bytes: Uint8Array, off: number, len: number): number {
    const c = this.c;
    if (c.spillBuf[f] < 0) {
      const b = this.spill.take();
      if (b < 0) return 0;
      this.spillMem[b] ??= new Mem(SPILL_SIZE);
      c.spillBuf[f] = b;
    }
    const room = SPILL_SIZE - c.spillLen[f];
    const n = Math.min(room, len);
    this.spillMem[c.spillBuf[f]].bytes.set(bytes.subarray(off, off + n), c.spillLen[f]);
    c.spillLen[f] += n;
    this.stats.spilled += n;
    this.setFlags(f, TcpFlag.SOCK_OUT_WAIT, 0);
    return n;
  }

  /** Two identical ACKs for the next expected byte, once per gap: the guest retransmits from there. */
  dupAck(f: number): void {
    const c = this.c;
    if (c.seqDupAck[f] === c.seqFromTap[f] && c.seqAckToTap[f] === c.seqFromTap[f]) return;
    c.seqDupAck[f] = c.seqFromTap[f];
    c.seqAckToTap[f] = c.seqFromTap[f];
    this.updateWindow(f);
    const ts = this.tapSide(f);
    this.out.flags(f, ts, TCP_ACK);
    this.out.flags(f, ts, TCP_ACK);
  }

  /**
   * An acknowledgment (and window) from the guest: drops acknowledged bytes from the socket, rewinds on a
   * duplicate ACK, and sends more when the window opened. pure: a segment without payload or FIN.
   */
  ackFromTap(f: number, ack: number, wnd: number, pure: boolean): void {
    const t = this.t;
    const c = this.c;
    const before = c.seqAckFromTap[f];
    let progress = false;
    let rewind = false;
    if (seqLt(before, ack) && seqLe(ack, c.seqToTap[f])) {
      let consume = seqSub(ack, before);
      if (t.events[f] & TcpEvent.TAP_FIN_SENT && ack === c.seqToTap[f]) {
        consume--;
        t.events[f] |= TcpEvent.TAP_FIN_ACKED;
      }
      if (consume > 0 && this.io.discardAcked(f, this.sock(f), consume) < 0) return;
      c.seqAckFromTap[f] = ack;
      c.retries[f] = 0;
      this.progress[f] = this.now;
      progress = true;
      if (ack === c.seqToTap[f]) this.setFlags(f, 0, TcpFlag.ACK_FROM_TAP_DUE);
    } else if (pure && ack === before && wnd === c.wndFromTapRaw[f] && c.seqToTap[f] !== before && c.seqDupAck[f] !== (ack ^ 0x80000000) >>> 0) {
      // A duplicate ACK: the guest missed a segment. Resend from there, once per acknowledgment number.
      c.seqDupAck[f] = (ack ^ 0x80000000) >>> 0;
      rewind = true;
    }
    const inFlight = seqSub(c.seqToTap[f], c.seqAckFromTap[f]);
    if (wnd === 0 && inFlight > 0) {
      rewind = true;
    } else {
      const oldWnd = c.wndFromTap[f];
      c.wndFromTapRaw[f] = wnd;
      c.wndFromTap[f] = Math.min(wnd * (1 << c.wsFromTap[f]), MAX_WINDOW);
      if (c.wndFromTap[f] > oldWnd) progress = true;
    }
    if (rewind) this.rewind(f);
    if (progress || rewind) {
      if (t.flags[f] & (TcpFlag.STALLED | TcpFlag.ACK_FROM_TAP_BLOCKS)) this.setFlags(f, 0, TcpFlag.STALLED | TcpFlag.ACK_FROM_TAP_BLOCKS);
      if (rewind || !(t.flags[f] & TcpFlag.SOCK_DRAINED)) this.sockToTap(f);
    }
  }

  /** Forgets what was sent but not acknowledged: the next peek resends it. */
  private rewind(f: number): void {
    const t = this.t;
    const c = this.c;
    if (c.seqToTap[f] === c.seqAckFromTap[f]) return;
    this.stats.retransmits++;
    if (t.events[f] & TcpEvent.TAP_FIN_SENT && !(t.events[f] & TcpEvent.TAP_FIN_ACKED)) t.events[f] &= ~TcpEvent.TAP_FIN_SENT;
    c.seqToTap[f] = c.seqAckFromTap[f];
    this.io.rewind(f, this.sock(f));
    this.epoll(f);
  }

  // --- timers and closing ------------------------------------------------------------------------------------

  /**
   * Arms the timers of connections waiting for an acknowledgment for ARM_GRACE_MS without progress: the grace
   * lets a short connection finish without a timer fd (four syscalls), as guests answer within microseconds.
   */
  armQueuedTimers(loop: EventLoop, now: number): void {
    this.cycle = now;
    this.waiting.drain(this.armIfDue);
    this.toArm.drain(this.wait);
    if (!this.waiting.empty) loop.wakeBy(now + ARM_GRACE_MS);
  }

  /** Arms a waiting flow's timer if it still waits, and made no progress within the grace (else: waits on). */
  private readonly armIfDue = (f: number): void => {
    const t = this.t;
    if (t.type[f] !== FlowType.TCP || t.events[f] === TcpEvent.CLOSED || !(t.flags[f] & TcpFlag.ACK_FROM_TAP_DUE)) return;
    if (this.cycle - this.progress[f] < ARM_GRACE_MS) this.toArm.add(f);
    else this.arm(f);
  };

  /** Arms the connection's timer for its retransmission timeout. */
  private arm(f: number): void {
    const t = this.t;
    if (this.armed[f]) return;
    if (t.timer[f] < 0) {
      try {
        t.timer[f] = timerfdCreate(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
      } catch (e) {
        this.reset(f, `no timer: ${(e as Error).message}`);
        return;
      }
      flowEpollSet(EpollType.TCP_TIMER, f, INISIDE);
    }
    this.armed[f] = 1;
    timerfdSet(t.timer[f], this.rto(f), 0);
  }

  private rto(f: number): number {
    return rtoMs(this.c.retries[f], !(this.t.events[f] & TcpEvent.ESTABLISHED));
  }

  /** The timer expired: retransmit (or give up) if the guest still owes an acknowledgment. */
  timerEvent(f: number, now: number): void {
    const t = this.t;
    const c = this.c;
    this.now = now;
    this.armed[f] = 0;
    if (t.type[f] !== FlowType.TCP || t.events[f] === TcpEvent.CLOSED || !(t.flags[f] & TcpFlag.ACK_FROM_TAP_DUE)) return;
    const rto = this.rto(f);
    const since = now - this.progress[f];
    if (since < rto - 1) {
      this.armed[f] = 1;
      timerfdSet(t.timer[f], rto - since, 0);
      return;
    }
    if (c.retries[f] >= TCP_MAX_RETRIES) {
      this.reset(f, "retransmission limit");
      return;
    }
    c.retries[f]++;
    this.progress[f] = now;
    const ev = t.events[f];
    const ts = this.tapSide(f);
    if (ev === TcpEvent.SOCK_ACCEPTED) {
      this.out.syn(f, ts, 0, seqAdd(c.seqToTap[f], -1), this.ourMss(isV4(t, f, ts)));
    } else if (ev & TcpEvent.TAP_SYN_ACK_SENT && !(ev & TcpEvent.ESTABLISHED)) {
      this.out.syn(f, ts, TCP_ACK, seqAdd(c.seqToTap[f], -1), this.ourMss(isV4(t, f, ts)));
    } else if (ev & TcpEvent.ESTABLISHED) {
      if (c.seqToTap[f] === c.seqAckFromTap[f]) {
        this.setFlags(f, 0, TcpFlag.ACK_FROM_TAP_DUE);
        return;
      }
      if (c.wndFromTap[f] === 0) c.wndFromTap[f] = 1;
      this.rewind(f);
      this.setFlags(f, 0, TcpFlag.STALLED | TcpFlag.ACK_FROM_TAP_BLOCKS);
      this.sockToTap(f);
    }
    this.arm(f);
  }

  /** Closes cleanly once both directions are finished. */
  maybeClose(f: number): void {
    const ev = this.t.events[f];
    const done = TcpEvent.TAP_FIN_SENT | TcpEvent.TAP_FIN_ACKED | TcpEvent.SOCK_FIN_SENT;
    if ((ev & done) !== done) return;
    // The guest's FIN (often in this very segment) is acknowledged now: a closed flow sends nothing later.
    const c = this.c;
    if (this.acks.owed(f) || c.seqAckToTap[f] !== c.seqFromTap[f]) {
      c.seqAckToTap[f] = c.seqFromTap[f];
      this.out.flags(f, this.tapSide(f), TCP_ACK);
    }
    this.closed(f);
  }

  /** Resets both sides: RST to the guest, RST to the host peer. */
  reset(f: number, why: string): void {
    const t = this.t;
    if (t.events[f] === TcpEvent.CLOSED) return;
    if (logEnabled("debug")) resetLog.debug(`TCP flow ${f}: reset (${why})`);
    this.stats.resets++;
    this.out.flags(f, this.tapSide(f), TCP_RST | TCP_ACK);
    this.io.lingerZero(this.sock(f));
    this.closed(f);
  }

  /** The guest reset the connection: reset the host side too. */
  resetFromTap(f: number): void {
    this.stats.resets++;
    this.io.lingerZero(this.sock(f));
    this.closed(f);
  }

  /** CLOSED: out of the tap-side hash now; fds closed at the end of the cycle, which takes them out of epoll. */
  closed(f: number): void {
    const t = this.t;
    t.events[f] = TcpEvent.CLOSED;
    t.markFree(f);
    this.epoll(f);
    const ts = this.tapSide(f);
    if (t.hashed[f] & (1 << ts)) t.hashRemove(f, ts);
    this.stats.closed++;
  }

  private shouldFree(f: number, now: number, timerDue: boolean): boolean {
    if (this.t.events[f] === TcpEvent.CLOSED) return true;
    if (timerDue && now - this.t.lastActive[f] > INACTIVITY_MS) {
      this.reset(f, "inactivity");
      return true;
    }
    return false;
  }

  private release(f: number): void {
    const c = this.c;
    this.io.flushDiscard(f);
    if (c.spillBuf[f] >= 0) this.spill.give(c.spillBuf[f]);
    c.spillBuf[f] = -1;
    c.spillLen[f] = 0;
    this.armed[f] = 0;
  }
}

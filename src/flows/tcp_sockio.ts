/**
 * Socket-side primitives of the tap TCP path: peeking at data not yet sent to the guest, discarding what the
 * guest acknowledged, and estimating how much more the socket can take (the window offered to the guest).
 *
 * Data toward the guest stays in the socket's receive queue until the guest acknowledges it (doc/tcp.md §5): we
 * MSG_PEEK past the bytes already in flight and MSG_TRUNC away the acknowledged ones. Where the kernel keeps a
 * peek offset for TCP (SO_PEEK_OFF, Linux 6.9+), the in-flight bytes are skipped by the kernel; elsewhere they
 * are read into a shared discard buffer in front of the real one.
 *
 * With a peek offset, discards are deferred: acknowledgments in one burst of guest frames add up per connection,
 * and the bytes go in one MSG_TRUNC per connection at the end of the burst (flushDiscards), after the data those
 * frames carried was already sent on. A rewind, and the end of the connection, discard first: the peek offset
 * and close() must see the queue without the acknowledged bytes (unread data would make close() send a RST).
 */
import { IPPROTO_TCP, MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC, SIOCOUTQ, SO_LINGER, SO_PEEK_OFF, SO_SNDBUF, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, AF_INET, TCP_NODELAY } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { close, recv, recvmsg } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { IovecArray } from "../syscalls/msg.ts";
import { ioctlPtr } from "../syscalls/process.ts";
import { getsockoptRaw, setsockoptBytes, setsockoptInt, trySocket } from "../syscalls/socket.ts";
import { LINGER, MSGHDR } from "../syscalls/structs.ts";
import { FlowQueue, MAX_WINDOW } from "./tcp_conn.ts";

const DISCARD_SIZE = 1 << 20;
const DISCARD_IOV = 16;
const LINGER_ZERO = new Uint8Array(LINGER.size).fill(0);
new DataView(LINGER_ZERO.buffer).setInt32(LINGER.onoff, 1, true);

/** Peeks, discards and window estimates for tap-side TCP sockets. */
export class TcpSockIo {
  /** True when the kernel keeps a TCP peek offset (SO_PEEK_OFF). */
  readonly peekOffset: boolean;
  /** The payload part of the send buffer at the last sendSpace() call. */
  lastSndbuf = 0;
  private readonly word = new Mem(16);
  private discard: Mem | undefined;
  private iov: IovecArray | undefined;
  private msg: Mem | undefined;

  /** Acknowledged bytes not yet discarded, and the socket they are in, by flow. */
  private readonly owed: Float64Array;
  private readonly owedFd: Int32Array;
  /** Flows with bytes owed. */
  private readonly owing: FlowQueue;

  constructor(capacity: number) {
    this.peekOffset = probePeekOffset();
    this.owed = new Float64Array(capacity);
    this.owedFd = new Int32Array(capacity);
    this.owing = new FlowQueue(capacity);
  }

  /** Sets a new connection's socket (or a listener, for what it accepts) up: no Nagle delay, the peek offset at 0. */
  prepare(fd: number): void {
    setsockoptInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (this.peekOffset) setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  }

  /** Forgets what flow f sent on socket fd: the next peek starts at the first unacknowledged byte. */
  rewind(f: number, fd: number): void {
    this.flushDiscard(f);
    if (this.peekOffset) setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
  }

  /**
   * Peeks up to len new bytes into mem at off, skipping the alreadySent bytes in flight. Returns the number of new
   * bytes, 0 at end of stream, or -errno (-EAGAIN: nothing new).
   */
  peek(fd: number, mem: Mem, off: number, len: number, alreadySent: number): number {
    if (this.peekOffset || alreadySent === 0) return recv(fd, mem.addr + off, len, MSG_PEEK | MSG_DONTWAIT);
    if (alreadySent > DISCARD_SIZE * DISCARD_IOV) return -Errno.EAGAIN;
    const discard = (this.discard ??= new Mem(DISCARD_SIZE));
    const iov = (this.iov ??= new IovecArray(DISCARD_IOV + 1));
    const msg = (this.msg ??= new Mem(MSGHDR.size));
    let n = 0;
    for (let left = alreadySent; left > 0; left -= DISCARD_SIZE) iov.set(n++, discard.addr, Math.min(left, DISCARD_SIZE));
    iov.set(n++, mem.addr + off, len);
    msg.bytes.fill(0);
    msg.setU64(MSGHDR.iov, iov.addressOf(0));
    msg.setU64(MSGHDR.iovlen, n);
    const r = recvmsg(fd, msg.addr, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0) return r;
    return r > alreadySent ? r - alreadySent : r === alreadySent ? -Errno.EAGAIN : 0;
  }

  /**
   * Drops n acknowledged bytes of flow f from the front of its socket's receive queue: at once without a peek
   * offset (the in-flight count is relative to the front), else at the next flushDiscards. Returns -errno when
   * an immediate discard failed.
   */
  discardAcked(f: number, fd: number, n: number): number {
    if (!this.peekOffset) return recv(fd, 0, n, MSG_TRUNC | MSG_DONTWAIT);
    this.owing.add(f);
    this.owed[f] += n;
    this.owedFd[f] = fd;
    return n;
  }

  /** Discards what flow f owes now (a failure shows on the socket itself, as an error event). */
  readonly flushDiscard = (f: number): void => {
    const n = this.owed[f];
    if (n === 0) return;
    this.owed[f] = 0;
    recv(this.owedFd[f], 0, n, MSG_TRUNC | MSG_DONTWAIT);
  };

  /** Discards what every flow owes: the end of a burst of guest frames. */
  flushDiscards(): void {
    this.owing.drain(this.flushDiscard);
  }

  /**
   * Bytes the socket can take now without queueing beyond its send buffer: the buffer (scaled down for its
   * bookkeeping overhead, as passt does: 100 % below 128 KiB to 75 % above 4 MiB) less what is queued.
   */
  sendSpace(fd: number): number {
    const w = this.word;
    if (getsockoptRaw(fd, SOL_SOCKET, SO_SNDBUF, w.addr, 4) < 0) return 0;
    const sndbuf = w.view.getInt32(0, true);
    if (ioctlPtr(fd, SIOCOUTQ, w.addr + 8) < 0) return 0;
    const queued = w.view.getInt32(8, true);
    this.lastSndbuf = scaleSndbuf(sndbuf);
    const free = this.lastSndbuf - queued;
    return free <= 0 ? 0 : Math.min(free, MAX_WINDOW);
  }

  /** Makes close() send a RST instead of a FIN (SO_LINGER with a zero timeout). */
  lingerZero(fd: number): void {
    setsockoptBytes(fd, SOL_SOCKET, SO_LINGER, LINGER_ZERO);
  }
}

/** The part of a send buffer of this size that holds payload. */
export function scaleSndbuf(sndbuf: number): number {
  const lo = 128 << 10;
  const hi = 4 << 20;
  if (sndbuf <= lo) return sndbuf;
  if (sndbuf >= hi) return Math.floor(sndbuf * 0.75);
  return Math.floor(sndbuf * (1 - (0.25 * (sndbuf - lo)) / (hi - lo)));
}

function probePeekOffset(): boolean {
  const fd = trySocket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const ok = setsockoptInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0) === 0;
  close(fd);
  return ok;
}

/**
 * UDP sockets for flows and listeners: creation with the options every UDP socket gets, binding and connecting
 * to inany addresses, and one reusable msghdr for datagrams whose source and local address matter (listeners,
 * the error queue).
 *
 * Every UDP socket is non-blocking with SO_REUSEADDR (a flow socket shares its port with a listener or with
 * another flow of the same guest port; the kernel delivers to the connected one), IP_PKTINFO/IPV6_RECVPKTINFO
 * (a wildcard-bound socket must learn which local address a datagram reached) and IP_RECVERR/IPV6_RECVERR (ICMP
 * errors are queued rather than lost; the queue must then be emptied, or epoll reports EPOLLERR for ever).
 */
import { cmsgLocalAddress, cmsgSockExtendedErr, type SockExtendedErr } from "../syscalls/cmsg.ts";
import {
  AF_INET, AF_INET6, IP_PKTINFO, IP_RECVERR, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPV6_RECVERR, IPV6_RECVPKTINFO,
  IPV6_V6ONLY, MSG_DONTWAIT, MSG_ERRQUEUE, MSG_NOSIGNAL, SO_ERROR, SO_REUSEADDR, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK,
  SOL_SOCKET,
} from "../syscalls/constants.ts";
import { close, recvmsg, sendmmsg } from "../syscalls/io.ts";
import { Errno } from "../syscalls/errno.ts";
import { Mem } from "../syscalls/mem.ts";
import type { MmsgArray } from "../syscalls/msg.ts";
import { sockaddrFromInany, sockaddrToInany } from "../syscalls/sockaddr.ts";
import { bindRaw, connectRaw, getsockoptRaw, getsocknameRaw, setsockoptInt, trySocket } from "../syscalls/socket.ts";
import { MMSGHDR, MSGHDR, SOCKADDR } from "../syscalls/structs.ts";
import { INANY_LEN } from "../wire/inany.ts";

/** The IPv4 wildcard address as an inany (::ffff:0.0.0.0): binds a socket of the IPv4 family to any address. */
export const ANY4 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
/** The IPv6 wildcard address (::). */
export const ANY6 = new Uint8Array(INANY_LEN);

/** The socket type of every UDP socket of orzo: non-blocking, closed on exec. */
export const UDP_SOCKET_TYPE = SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC;

const sa = new Mem(SOCKADDR.storageSize + 8);
const optval = new Mem(8);

/**
 * Opens a UDP socket with the options every UDP socket of orzo gets; v6only applies to IPv6 sockets (false: a
 * dual-stack listener). Returns the fd, or -errno (the socket closed again) when any step fails.
 */
export function udpSocket(v4: boolean, v6only: boolean): number {
  const fd = trySocket(v4 ? AF_INET : AF_INET6, UDP_SOCKET_TYPE, IPPROTO_UDP);
  return fd < 0 ? fd : udpSocketOptions(fd, v4, v6only);
}

/**
 * Gives a UDP socket made elsewhere (in the namespace, by the namespace thread) the options every UDP socket of orzo gets.
 * Returns the fd, or -errno (the socket closed) when any step fails.
 */
export function udpSocketOptions(fd: number, v4: boolean, v6only: boolean): number {
  let r = setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (r === 0) r = v4 ? setsockoptInt(fd, IPPROTO_IP, IP_PKTINFO, 1) : setsockoptInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
  if (r === 0) r = v4 ? setsockoptInt(fd, IPPROTO_IP, IP_RECVERR, 1) : setsockoptInt(fd, IPPROTO_IPV6, IPV6_RECVERR, 1);
  if (r === 0 && !v4) r = setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? 1 : 0);
  if (r < 0) {
    close(fd);
    return r;
  }
  return fd;
}

/** bind(2) to the inany at a[off] and a port; 0 or -errno. */
export function bindInany(fd: number, a: Uint8Array, off: number, port: number): number {
  return bindRaw(fd, sa.addr, sockaddrFromInany(sa, 0, a, off, port, 0));
}

/** bind(2) to the inany at a[off] and a port where that port is free, else to a port the kernel picks; 0 or -errno. */
export function bindPreferring(fd: number, a: Uint8Array, off: number, port: number): number {
  const r = bindInany(fd, a, off, port);
  return r === 0 || port === 0 ? r : bindInany(fd, a, off, 0);
}

/** connect(2) to the inany at a[off] and a port; 0 or -errno. */
export function connectInany(fd: number, a: Uint8Array, off: number, port: number): number {
  return connectRaw(fd, sa.addr, sockaddrFromInany(sa, 0, a, off, port, 0));
}

/** The local address of a socket into an inany at out[off]; returns the local port, or -errno. */
export function localInany(fd: number, out: Uint8Array, off: number): number {
  const r = getsocknameRaw(fd, sa, 0);
  if (r < 0) return r;
  return sockaddrToInany(sa, 0, out, off);
}

/** The pending error of a socket, cleared by reading it: a positive errno, 0 for none, or -errno on failure. */
export function takeSocketError(fd: number): number {
  const r = getsockoptRaw(fd, SOL_SOCKET, SO_ERROR, optval.addr, 4);
  return r < 0 ? r : optval.view.getInt32(0, true);
}

// Layout of DatagramMsg's memory: msghdr, iovec, source sockaddr, control buffer.
const IOV_OFF = 64;
const NAME_OFF = 128;
const CONTROL_OFF = NAME_OFF + SOCKADDR.storageSize;
const CONTROL_LEN = 256;

/** One msghdr for single datagrams with their source address and control data, reused for every call. */
export class DatagramMsg {
  /** Where the payload goes: len bytes at buf.addr. */
  readonly buf: Mem;
  private readonly mem = new Mem(CONTROL_OFF + CONTROL_LEN);

  constructor(buf: Mem) {
    this.buf = buf;
    const m = this.mem;
    m.setU64(IOV_OFF, buf.addr);
    m.setU64(IOV_OFF + 8, buf.bytes.length);
    m.setU64(MSGHDR.name, m.addr + NAME_OFF);
    m.setU64(MSGHDR.iov, m.addr + IOV_OFF);
    m.setU64(MSGHDR.iovlen, 1);
    m.setU64(MSGHDR.control, m.addr + CONTROL_OFF);
  }

  /** recvmsg(2) of one datagram (flags: MSG_PEEK, MSG_ERRQUEUE...; MSG_DONTWAIT is added); length or -errno. */
  recv(fd: number, flags: number): number {
    const v = this.mem.view;
    v.setUint32(MSGHDR.namelen, SOCKADDR.storageSize, true);
    this.mem.setU64(MSGHDR.controllen, CONTROL_LEN);
    v.setInt32(MSGHDR.flags, 0, true);
    return recvmsg(fd, this.mem.addr, flags | MSG_DONTWAIT);
  }

  /** The last datagram's source address into an inany at out[off]; returns its port, or -1 when unknown. */
  source(out: Uint8Array, off: number): number {
    if (this.mem.view.getUint32(MSGHDR.namelen, true) < SOCKADDR.in4Size) return -1;
    return sockaddrToInany(this.mem, NAME_OFF, out, off);
  }

  /**
   * The local address the last datagram was sent to (IP_PKTINFO / IPV6_PKTINFO) into an inany at out[off];
   * false when the control data carried none.
   */
  local(out: Uint8Array, off: number): boolean {
    return cmsgLocalAddress(this.mem, CONTROL_OFF, this.controlLength(), out, off);
  }

  /**
   * The error the last recv(MSG_ERRQUEUE) took from the queue, into out; false when the message was not from the
   * error queue or carried no IP_RECVERR / IPV6_RECVERR control message.
   */
  error(out: SockExtendedErr): boolean {
    if ((this.mem.view.getInt32(MSGHDR.flags, true) & MSG_ERRQUEUE) === 0) return false;
    return cmsgSockExtendedErr(this.mem, CONTROL_OFF, this.controlLength(), out);
  }

  private controlLength(): number {
    return Math.min(this.mem.getU64(MSGHDR.controllen), CONTROL_LEN);
  }
}

/**
 * Empties a socket's error queue (ICMP errors reported under IP_RECVERR, at most maxQueued) and clears its pending
 * error, so that a level-triggered EPOLLERR stops. Returns how many errors were cleared: 0 is no fault, since a
 * send on the socket earlier in the same cycle may have taken the pending error already.
 */
export function clearSocketErrors(fd: number, msg: DatagramMsg, maxQueued: number): number {
  let cleared = 0;
  while (cleared < maxQueued && msg.recv(fd, MSG_ERRQUEUE) >= 0) cleared++;
  return takeSocketError(fd) > 0 ? cleared + 1 : cleared;
}

/** Counters sendBatch keeps: datagrams sent, dropped, and pending ICMP errors that a send reported instead. */
export interface BatchSendStats {
  sent: number;
  sendFailed: number;
  socketErrors: number;
}

/**
 * Sends messages [0, n) of vec on the connected socket fd with sendmmsg. A datagram the socket refuses (full,
 * too large) is dropped and counted and the rest still go; a pending ICMP error reported instead of sending is
 * cleared by that failure, so the same datagram is tried once more.
 */
export function sendBatch(fd: number, vec: MmsgArray, n: number, stats: BatchSendStats): void {
  let sent = 0;
  let retried = false;
  while (sent < n) {
    const r = sendmmsg(fd, vec.mem.addr + sent * MMSGHDR.size, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
      sent += r;
      stats.sent += r;
      retried = false;
    } else if (!retried && isPendingError(-r)) {
      retried = true;
      stats.socketErrors++;
    } else {
      sent++;
      stats.sendFailed++;
      retried = false;
    }
  }
}

/** An errno that reports an earlier ICMP error on the socket rather than a failure of this call. */
function isPendingError(errno: number): boolean {
  return errno === Errno.ECONNREFUSED || errno === Errno.EHOSTUNREACH || errno === Errno.ENETUNREACH;
}

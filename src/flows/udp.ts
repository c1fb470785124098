/**
 * UDP flows: datagrams between the guest and host sockets, tracked as pseudo-connections (FlowType.UDP).
 *
 * Theory of operation. A flow joins a tap side (the guest's addresses and ports, as its datagrams carry them) and
 * a host side with a socket of its own, bound and connected, so that the kernel delivers to it only that flow's
 * datagrams and its epoll reference (flow, side) names the flow without a lookup. Both sides are in the flow
 * hash: guest datagrams find their flow by the tap side, datagrams on listening sockets by the host side.
 *
 * Outbound (guest to host): the first datagram of a new 5-tuple opens a flow. The destination goes through the
 * outbound NAT (nat.ts: the --dns-forward address on port 53 or 853 means the host's resolver, the
 * map-host-loopback address the host's loopback, the map-guest-addr address the host's own address); the socket
 * is bound to the guest's source port where the host has it free (else the kernel picks one) and connected to the
 * destination. Datagrams are sent straight from the link's input buffer, queued while consecutive ones belong to
 * the same flow and sent in one sendmmsg when the flow changes or the link ends its burst (flushSends, through
 * the FrameSink's flushInput; pasta does the same per flow and burst); replies are read in recvmmsg batches and built
 * into frames to the guest from the flow's tap side, i.e. from the address and port the guest sent to, so
 * translated destinations (a DNS answer from the real resolver) look to the guest like the address it used.
 *
 * Inbound (host to guest): a listening socket (EpollType.UDP_LISTEN, its reference carrying port, pif and
 * forwarding rule) reads one datagram at a time with its source and, through PKTINFO, the local address it
 * reached. A datagram of a known flow is forwarded; an unknown source opens a flow whose host side gets a socket
 * bound like the listener and connected to the peer (the kernel prefers it to the listener from then on), and
 * whose tap side goes from the peer as the inbound NAT presents it to the guest's address and the rule's port.
 * Datagrams that reached the new socket before connect() took effect may belong to other flows: the socket is
 * then read once through the listener path, which sends each datagram where it belongs.
 *
 * Spliced (pasta, udp_splice.ts): a datagram from the host's loopback on a -u listener, or one on a -U listener in
 * the namespace, opens a flow whose target side is a socket too, in the namespace or on the host; datagrams on
 * either socket are then written to the other. Which socket a datagram came from is in its epoll reference, and
 * the other side's pif says whether it goes to the tap or to a socket.
 *
 * Errors: IP_RECVERR queues ICMP errors on the socket; those on a flow socket toward the guest go back to it as
 * ICMP or ICMPv6 (udp_icmp.ts), others are counted and dropped, and a pending error (ECONNREFUSED and the like)
 * on send or receive is counted and the call retried once: the flow stays. Expiry follows the reference: a flow idle beyond the UDP timeout (the host's
 * conntrack values, 30 s, or 120 s once both sides talked and it looks like a stream) is freed by the flow
 * table's end-of-cycle pass, which closes its socket.
 */
import { readFileSync } from "node:fs";
import { EpollType, listenPif, listenPort, listenRef, listenRule, sidxFlow } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import type { NetConf } from "../netconf.ts";
import { commitUdp4From, commitUdp6From, UDP4_DATA, UDP6_DATA } from "../services/frame.ts";
import type { Link } from "../tap/link.ts";
import {
  EPOLLERR, EPOLLIN, IP_FREEBIND, IP_TTL, IPPROTO_IP, IPPROTO_IPV6, IPV6_FREEBIND, IPV6_UNICAST_HOPS, MSG_DONTWAIT,
  SO_BINDTODEVICE, SOL_SOCKET,
} from "../syscalls/constants.ts";
import { Errno, SyscallError } from "../syscalls/errno.ts";
import { close, recv, recvmmsg } from "../syscalls/io.ts";
import { copyMem, Mem } from "../syscalls/mem.ts";
import { MmsgArray } from "../syscalls/msg.ts";
import { setsockoptBytes, setsockoptInt } from "../syscalls/socket.ts";
import { encodeCString } from "../syscalls/strings.ts";
import { logEnabled, rateLimited } from "../log.ts";
import { copyBytes, rd16 } from "../wire/bytes.ts";
import { INANY_V4_OFF } from "../wire/ip.ts";
import { inanyFromIPv4, inanyIsV4, inanyParse, INANY_LEN } from "../wire/inany.ts";
import { flowEpollSet, flows } from "./epoll.ts";
import { FLOW_PROTO, FlowType, INISIDE, Pif, TGTSIDE } from "./flow.ts";
import { guestAddress, inanyIsUnicast, inanyIsUnset, natInboundSource, natOutbound } from "./nat.ts";
import {
  ANY4, ANY6, bindInany, bindPreferring, clearSocketErrors, connectInany, DatagramMsg, localInany, sendBatch, udpSocket,
} from "./udp_sock.ts";
import { UdpIcmpErrors } from "./udp_icmp.ts";
import { OutboundBinding } from "./outbound.ts";
import type { UdpSplice } from "./udp_splice.ts";

/** UDP timeout when the host's conntrack setting cannot be read (nf_conntrack_udp_timeout). */
export const UDP_TIMEOUT_DEFAULT_MS = 30_000;
/** UDP timeout for stream-like flows when the host's setting cannot be read (nf_conntrack_udp_timeout_stream). */
export const UDP_STREAM_TIMEOUT_DEFAULT_MS = 120_000;

/** Datagrams read per recvmmsg from a flow socket. */
const BATCH = 32;
/** Datagrams from the guest queued for one sendmmsg. */
const TX_BATCH = 64;
/** Receive slot size: any UDP payload fits. */
const SLOT = 65536;
/** Datagrams read from a listening socket per wake-up, so that one busy listener cannot starve the rest. */
const LISTEN_BATCH = 32;
/** Most ICMP errors emptied from one socket's error queue per wake-up. */
const ERRQUEUE_MAX = 64;
/** Sockets waiting for their first read through the listener path; more at once are simply not read early. */
const FLUSH_MAX = 64;
const PORT_DNS = 53;
const PORT_DNS_TLS = 853;

const dropLog = rateLimited("udp: dropped datagram");
const socketLog = rateLimited("udp: socket error");

/** Options of UdpFlows (tests shorten the timeouts). */
export interface UdpOptions {
  /** Idle time after which a flow is freed (default: the host's conntrack UDP timeout). */
  timeoutMs?: number;
  /** The same for flows that look like streams (default: the host's conntrack UDP stream timeout). */
  streamTimeoutMs?: number;
}

/**
 * Where a datagram that reached a listening port on a pif under a forwarding rule goes: returns the guest's port
 * (-1: nowhere) and may write a target address (16-byte inany) to addr; left all zeros, the guest's address.
 */
export type UdpInboundTarget = (rule: number, port: number, pif: number, addr: Uint8Array) => number;

/** Where and how a listening socket is opened (listenSocket). */
export interface UdpListenOptions {
  /** HOST (default) or, in pasta, SPLICE: a socket in the namespace (-U). */
  readonly pif?: Pif;
  /** SO_BINDTODEVICE ("lo" for -U, %IFNAME of a rule). */
  readonly ifname?: string | null;
  /** --freebind: IP_FREEBIND / IPV6_FREEBIND. */
  readonly freebind?: boolean;
}

/** UDP datagram relaying between the tap and host sockets. */
export class UdpFlows {
  /** Counters. */
  readonly stats = {
    fromTap: 0, sent: 0, toTap: 0, fromListeners: 0, flowsOpened: 0, expired: 0, dropped: 0, sendFailed: 0, socketErrors: 0,
    strays: 0,
  };
  /** Idle time before a flow is freed, and the same for stream-like flows. */
  readonly timeoutMs: number;
  readonly streamTimeoutMs: number;
  /** Where datagrams on listening sockets go: by default the port listen() gave; a rule table may take over. */
  inboundTarget: UdpInboundTarget = (_rule, port, pif) => (pif === Pif.HOST ? this.listenTarget[port] : -1);
  /** pasta: spliced flows and sockets in the namespace; without it (passt) every flow goes to the tap. */
  splice: UdpSplice | undefined;
  /** ICMP errors for flows from the guest, relayed back to it. */
  readonly icmp: UdpIcmpErrors;

  /** Datagram events per side, saturating at 255 (for the stream timeout). */
  private readonly activity: Uint8Array;
  /** TTL / hop limit last applied to each flow's host socket (0: the socket's default). */
  private readonly ttl: Uint8Array;
  private readonly listenTarget = new Int32Array(65536).fill(-1);
  /** Lookup key: our address on a side, then the endpoint's (as u32 words for the hash, bytes to fill it). */
  private readonly key = new Uint32Array(8);
  private readonly keyBytes = new Uint8Array(this.key.buffer);
  private readonly target = new Uint8Array(INANY_LEN);
  private readonly guest = new Uint8Array(INANY_LEN);
  private readonly local = new Uint8Array(INANY_LEN);
  private readonly rxBuf = new Mem(BATCH * SLOT);
  private readonly rx = new MmsgArray(BATCH);
  private readonly msg = new DatagramMsg(new Mem(SLOT));
  /** Datagrams from the guest waiting for sendmmsg, all on socket txFd (iovec i points into the link's input). */
  private readonly tx = new MmsgArray(TX_BATCH);
  private txFd = -1;
  private txCount = 0;
  private readonly flushFd = new Int32Array(FLUSH_MAX);
  private flushCount = 0;
  private readonly frameMax: number;
  private readonly outbound: OutboundBinding;

  constructor(private readonly loop: EventLoop, private readonly nc: NetConf, private readonly link: Link, options: UdpOptions = {}) {
    const t = flows();
    this.outbound = new OutboundBinding(nc);
    this.activity = new Uint8Array(2 * t.capacity);
    this.ttl = new Uint8Array(t.capacity);
    this.timeoutMs = options.timeoutMs ?? conntrackTimeoutMs("nf_conntrack_udp_timeout", UDP_TIMEOUT_DEFAULT_MS);
    this.streamTimeoutMs = options.streamTimeoutMs ?? conntrackTimeoutMs("nf_conntrack_udp_timeout_stream", UDP_STREAM_TIMEOUT_DEFAULT_MS);
    this.frameMax = link.out.bytes.length - link.headroom;
    this.icmp = new UdpIcmpErrors(nc, link);
    for (let i = 0; i < BATCH; i++) {
      this.rx.iov.set(i, this.rxBuf.addr + i * SLOT, SLOT);
      this.rx.setMessage(i, i, 1, 0);
    }
    for (let i = 0; i < TX_BATCH; i++) this.tx.setMessage(i, i, 1, 0);
    t.setTypeOps(FlowType.UDP, {
      shouldFree: (f, now, timerDue) => timerDue && this.expired(f, now),
      release: (f) => {
        this.activity[2 * f] = this.activity[2 * f + 1] = 0;
        this.ttl[f] = 0;
      },
    });
    loop.on(EpollType.UDP, (fd, payload, events, now) => this.fromSocket(fd, payload, events, now));
    loop.on(EpollType.UDP_LISTEN, (fd, payload, events, now) => this.fromListener(fd, payload, events, now));
  }

  /**
   * A UDP datagram from the guest at buf[l4Off, l4Off + l4Len) (IP header at l3Off, buf[0] at address addr):
   * sent on its flow's socket, the flow opened first if it is new. Anything that cannot go is dropped and counted.
   */
  fromTap(buf: Uint8Array, addr: number, l3Off: number, l4Off: number, l4Len: number, v6: boolean, now: number): void {
    const ulen = l4Len >= 8 ? rd16(buf, l4Off + 4) : 0;
    const sport = rd16(buf, l4Off);
    const dport = rd16(buf, l4Off + 2);
    if (ulen < 8 || ulen > l4Len || sport === 0 || dport === 0) return this.drop("malformed datagram or port 0");
    const kb = this.keyBytes;
    if (v6) {
      copyBytes(kb, 0, buf, l3Off + 24, INANY_LEN);
      copyBytes(kb, INANY_LEN, buf, l3Off + 8, INANY_LEN);
    } else {
      inanyFromIPv4(kb, 0, buf, l3Off + 16);
      inanyFromIPv4(kb, INANY_LEN, buf, l3Off + 12);
    }
    const t = flows();
    let s = t.lookup(FLOW_PROTO[FlowType.UDP], Pif.TAP, this.key, 0, dport, sport);
    if (s >= 0) this.touch(s, now);
    else s = this.openFromTap(sport, dport, now);
    if (s < 0) return;
    this.stats.fromTap++;
    const f = sidxFlow(s);
    const fd = t.fd[s ^ 1];
    if (fd !== this.txFd) this.flushSends();
    const ttl = buf[l3Off + (v6 ? 7 : 8)];
    if (ttl !== this.ttl[f]) {
      // The queued datagrams leave with the TTL they came with.
      this.flushSends();
      this.ttl[f] = ttl;
      setsockoptInt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_UNICAST_HOPS : IP_TTL, ttl);
    }
    this.txFd = fd;
    this.tx.iov.set(this.txCount++, addr + l4Off + 8, ulen - 8);
    if (this.txCount === TX_BATCH) this.flushSends();
  }

  /**
   * Sends the datagrams queued from the guest, before the link reuses the buffer they are in; one that cannot go
   * is counted (and logged, rate-limited), never thrown.
   */
  flushSends(): void {
    const n = this.txCount;
    if (n === 0) return;
    this.txCount = 0;
    const failed = this.stats.sendFailed;
    sendBatch(this.txFd, this.tx, n, this.stats);
    if (this.stats.sendFailed !== failed && logEnabled("debug")) {
      socketLog.debug(`udp: ${this.stats.sendFailed - failed} datagrams to socket ${this.txFd} failed`);
    }
  }

  /**
   * Opens a listening socket on addr:port (addr "" or "*": dual-stack wildcard) whose datagrams go to the
   * guest's targetPort under forwarding rule `rule`; returns its fd. Throws a SyscallError when it cannot.
   */
  listen(addr: string, port: number, targetPort: number, rule = 0): number {
    if (!Number.isInteger(port) || port < 1 || port > 65535 || !Number.isInteger(targetPort) || targetPort < 1 || targetPort > 65535) {
      throw new RangeError(`udp listen: port out of range: ${port} -> ${targetPort}`);
    }
    const dual = addr === "" || addr === "*";
    const a = dual ? null : inanyParse(addr);
    if (a === null && !dual) throw new RangeError(`udp listen: not an address: '${addr}'`);
    const fd = this.listenSocket(a, dual, port, rule);
    if (fd < 0) throw new SyscallError("bind", -fd, `UDP ${dual ? "*" : addr}:${port}`);
    this.listenTarget[port] = targetPort;
    return fd;
  }

  /**
   * Opens a listening socket on the inany addr (null: ::, dual-stack when dualStack) and port, on the host or
   * (opts.pif SPLICE) in the namespace, its epoll reference carrying the pif and the rule; returns its fd or -errno.
   */
  listenSocket(addr: Uint8Array | null, dualStack: boolean, port: number, rule: number, opts: UdpListenOptions = {}): number {
    const pif = opts.pif ?? Pif.HOST;
    const v4 = addr !== null && inanyIsV4(addr, 0);
    if (pif !== Pif.HOST && this.splice === undefined) return -Errno.EAFNOSUPPORT;
    const fd = this.splice ? this.splice.socket(pif, v4, !dualStack) : udpSocket(v4, !dualStack);
    if (fd < 0) return fd;
    let r = opts.freebind ? setsockoptInt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_FREEBIND : IPV6_FREEBIND, 1) : 0;
    if (r === 0 && opts.ifname) r = setsockoptBytes(fd, SOL_SOCKET, SO_BINDTODEVICE, encodeCString(opts.ifname));
    if (r === 0) r = bindInany(fd, addr ?? ANY6, 0, port);
    if (r < 0) {
      close(fd);
      return r;
    }
    this.loop.add(EpollType.UDP_LISTEN, fd, listenRef(port, pif, rule), EPOLLIN);
    return fd;
  }

  /** Closes a listening socket; the flows it started keep their own sockets. */
  unlisten(fd: number): void {
    this.loop.remove(fd);
    close(fd);
  }

  /** Whether a flow has been idle too long: the stream timeout once both sides talked and one more than once. */
  private expired(f: number, now: number): boolean {
    const ini = this.activity[2 * f + INISIDE];
    const tgt = this.activity[2 * f + TGTSIDE];
    const stream = tgt > 0 && (ini > 1 || tgt > 1);
    if (now - flows().lastActive[f] <= (stream ? this.streamTimeoutMs : this.timeoutMs)) return false;
    this.stats.expired++;
    return true;
  }

  /** Records activity on a flow side (flow side index s). */
  private touch(s: number, now: number): void {
    flows().lastActive[sidxFlow(s)] = now;
    if (this.activity[s] < 255) this.activity[s]++;
  }

  /** Opens a flow for the guest's datagram whose key is in this.key; returns its tap-side index, or -1. */
  private openFromTap(sport: number, dport: number, now: number): number {
    const kb = this.keyBytes;
    if (!inanyIsUnicast(kb, 0) || !inanyIsUnicast(kb, INANY_LEN)) return this.drop("not unicast", -1);
    const v4 = inanyIsV4(kb, 0);
    natOutbound(this.nc, kb, 0, dport === PORT_DNS || dport === PORT_DNS_TLS, this.target, 0);
    const sock = udpSocket(v4, true);
    if (sock < 0) return this.drop(`no socket (errno ${-sock})`, -1);
    const lport = this.connectFlowSocket(sock, this.outbound.bind(sock, this.target, 0, sport), this.target, dport, this.local);
    if (lport < 0) return this.drop(`cannot bind or connect (errno ${-lport})`, -1);
    const t = flows();
    const f = t.alloc();
    if (f < 0) {
      close(sock);
      return this.drop("flow table full", -1);
    }
    t.initiate(f, Pif.TAP, kb, INANY_LEN, sport, kb, 0, dport);
    t.target(f, Pif.HOST, this.local, 0, lport, this.target, 0, dport);
    return this.activate(f, -1, sock, now);
  }

  /**
   * Connects a new flow socket, whose bind gave bound (0 or -errno), to dst:dport and reads our address there
   * into out. Returns our port, or -errno with the socket closed. Datagrams that reached the port before
   * connect() are discarded: they cannot be replies, nothing has been sent yet.
   */
  private connectFlowSocket(sock: number, bound: number, dst: Uint8Array, dport: number, out: Uint8Array): number {
    const r = bound < 0 ? bound : connectInany(sock, dst, 0, dport);
    const lport = r < 0 ? r : localInany(sock, out, 0);
    if (lport <= 0) {
      close(sock);
      return lport < 0 ? lport : -Errno.EINVAL;
    }
    while (recv(sock, this.rxBuf.addr, SLOT, MSG_DONTWAIT) >= 0) this.stats.strays++;
    return lport;
  }

  /**
   * Opens a flow for a datagram that reached a listener on pif at port under rule, whose local and source
   * addresses are in this.key (ours first); returns its host-side index, or -1.
   */
  private openFromHost(pif: number, port: number, sport: number, rule: number, now: number): number {
    const kb = this.keyBytes;
    const dst = this.guest;
    dst.fill(0);
    const tport = this.inboundTarget(rule, port, pif, dst);
    if (tport <= 0 || tport > 65535) return this.drop("no forwarding rule", -1);
    const v4 = inanyIsV4(kb, 0);
    const tgtPif = this.splice ? this.splice.target(pif, kb, INANY_LEN, dst) : pif === Pif.HOST ? Pif.TAP : Pif.NONE;
    if (tgtPif === Pif.NONE) return this.drop("not forwarded from this address", -1);
    if (tgtPif === Pif.TAP) {
      if (!natInboundSource(this.nc, kb, INANY_LEN, this.target, 0)) return this.drop("source cannot be presented to the guest", -1);
      if (inanyIsUnset(dst) && !this.guestAddressFor(v4)) return this.drop("guest address unknown", -1);
    }
    if (inanyIsV4(dst, 0) !== v4) return this.drop("target address of the other IP version", -1);
    const sock = this.splice ? this.splice.socket(pif, v4, true) : udpSocket(v4, true);
    if (sock < 0) return this.drop(`no socket (errno ${-sock})`, -1);
    let r = bindInany(sock, kb, 0, port);
    if (r === 0) r = connectInany(sock, kb, INANY_LEN, sport);
    if (r < 0) {
      close(sock);
      return this.drop(`cannot bind or connect (errno ${-r})`, -1);
    }
    // Spliced: the target's socket, on the host bound to the peer's loopback address, in the namespace to any.
    let tsock = -1;
    let tsport = sport;
    if (tgtPif !== Pif.TAP) {
      tsock = this.splice!.socket(tgtPif, v4, true);
      const toHost = tgtPif === Pif.HOST;
      const bound = tsock < 0 ? tsock : bindPreferring(tsock, toHost ? kb : v4 ? ANY4 : ANY6, toHost ? INANY_LEN : 0, sport);
      tsport = tsock < 0 ? tsock : this.connectFlowSocket(tsock, bound, dst, tport, this.target);
      if (tsport < 0) {
        close(sock);
        return this.drop(`no socket toward the target (errno ${-tsport})`, -1);
      }
    }
    const t = flows();
    const f = t.alloc();
    if (f < 0) {
      close(sock);
      if (tsock >= 0) close(tsock);
      return this.drop("flow table full", -1);
    }
    t.initiate(f, pif as Pif, kb, INANY_LEN, sport, kb, 0, port);
    t.target(f, tgtPif as Pif, this.target, 0, tsport, dst, 0, tport);
    const s = this.activate(f, sock, tsock, now);
    if (s >= 0 && this.flushCount < FLUSH_MAX) this.flushFd[this.flushCount++] = sock;
    return s;
  }

  /**
   * Finishes a flow whose sides are set: its sockets (-1 for a tap side), hash, epoll. Returns the index of the
   * side that started it.
   */
  private activate(f: number, iniSock: number, tgtSock: number, now: number): number {
    const t = flows();
    t.setType(f, FlowType.UDP);
    t.fd[2 * f + INISIDE] = iniSock;
    t.fd[2 * f + TGTSIDE] = tgtSock;
    t.hashInsert(f, INISIDE);
    t.hashInsert(f, TGTSIDE);
    let r = iniSock >= 0 ? flowEpollSet(EpollType.UDP, f, INISIDE) : 0;
    if (r === 0 && tgtSock >= 0) r = flowEpollSet(EpollType.UDP, f, TGTSIDE);
    t.activate(f);
    if (r < 0) {
      t.markFree(f);
      return this.drop(`epoll registration failed (errno ${-r})`, -1);
    }
    t.lastActive[f] = now;
    this.activity[2 * f + INISIDE] = 1;
    this.stats.flowsOpened++;
    return 2 * f + INISIDE;
  }

  /** The guest's address for a flow toward it from the tap-side source in this.target, into this.guest. */
  private guestAddressFor(v4: boolean): boolean {
    const ll = this.nc.ip6.addrLinkLocalSeen;
    if (!v4 && this.target[0] === 0xfe && (this.target[1] & 0xc0) === 0x80 && !inanyIsUnset(ll)) {
      this.guest.set(ll);
      return true;
    }
    return guestAddress(this.nc, v4, this.guest, 0);
  }

  /** Datagrams on a flow's socket (flow side index payload): to the guest, in recvmmsg batches. */
  private fromSocket(fd: number, payload: number, events: number, now: number): void {
    const f = sidxFlow(payload);
    if (events & EPOLLERR) this.stats.socketErrors += this.icmp.drain(fd, payload, this.msg, ERRQUEUE_MAX);
    if ((events & EPOLLIN) === 0) return;
    let n = recvmmsg(fd, this.rx.mem.addr, BATCH, MSG_DONTWAIT);
    if (n < 0 && n !== -Errno.EAGAIN && n !== -Errno.EINTR) {
      // A pending error (ECONNREFUSED from an earlier datagram...) comes first and is cleared by reporting it.
      this.stats.socketErrors++;
      n = recvmmsg(fd, this.rx.mem.addr, BATCH, MSG_DONTWAIT);
    }
    if (n <= 0) return;
    this.touch(payload, now);
    const other = payload ^ 1;
    const t = flows();
    if (t.pif[other] === Pif.TAP) {
      for (let i = 0; i < n; i++) this.toTap(f, other & 1, this.rxBuf.addr + i * SLOT, this.rx.messageLength(i));
    } else {
      this.splice?.forward(this.rx, n, t.fd[other], this.rxBuf.addr, SLOT);
    }
  }

  /** Datagrams on a listening socket: each to its flow, opened first when new; then new sockets read once. */
  private fromListener(fd: number, payload: number, events: number, now: number): void {
    if (events & EPOLLERR) this.stats.socketErrors += clearSocketErrors(fd, this.msg, ERRQUEUE_MAX);
    if ((events & EPOLLIN) === 0) return;
    const port = listenPort(payload);
    const pif = listenPif(payload);
    const rule = listenRule(payload);
    for (let i = 0; i < LISTEN_BATCH && this.fromListenerOnce(fd, port, pif, rule, now); i++);
    while (this.flushCount > 0) {
      const sock = this.flushFd[--this.flushCount];
      for (let i = 0; i < LISTEN_BATCH && this.fromListenerOnce(sock, port, pif, rule, now); i++);
    }
  }

  /** Reads and forwards one datagram as the listener path does; false when there was none to read. */
  private fromListenerOnce(fd: number, port: number, pif: number, rule: number, now: number): boolean {
    const msg = this.msg;
    const n = msg.recv(fd, 0);
    if (n === -Errno.EAGAIN || n === -Errno.EINTR) return false;
    if (n < 0) {
      this.stats.socketErrors++;
      return true;
    }
    this.stats.fromListeners++;
    const kb = this.keyBytes;
    const sport = msg.source(kb, INANY_LEN);
    if (sport <= 0 || !inanyIsUnicast(kb, INANY_LEN)) return this.drop("bad source", true);
    if (!msg.local(kb, 0)) return this.drop("no local address", true);
    const t = flows();
    let s = t.lookup(FLOW_PROTO[FlowType.UDP], pif, this.key, 0, port, sport);
    if (s >= 0) this.touch(s, now);
    else s = this.openFromHost(pif, port, sport, rule, now);
    if (s < 0) return true;
    const other = s ^ 1;
    if (t.pif[other] === Pif.TAP) this.toTap(sidxFlow(s), other & 1, msg.buf.addr, n);
    else {
      // One datagram through the same batch as the guest's (empty here: this is not a tap burst).
      this.flushSends();
      this.txFd = t.fd[other];
      this.tx.iov.set(this.txCount++, msg.buf.addr, n);
      this.flushSends();
    }
    return true;
  }

  /** Builds a frame to the guest from a flow's tap side around n payload bytes at address src. */
  private toTap(f: number, tapSide: number, src: number, n: number): void {
    const t = flows();
    const nc = this.nc;
    const link = this.link;
    const a = t.addrBytes;
    const o = t.addrOffset(f, tapSide as 0 | 1);
    const i = 2 * f + tapSide;
    const v4 = inanyIsV4(a, o);
    const hdr = v4 ? UDP4_DATA : UDP6_DATA;
    if (hdr + n > this.frameMax) {
      this.drop(`datagram of ${n} bytes too large for the link`);
      return;
    }
    const at = link.reserve(hdr + n);
    copyMem(link.out.addr + at + hdr, src, n);
    if (v4) commitUdp4From(link, nc, at, a, o + INANY_V4_OFF, nc.guestMac, 0, a, o + INANY_LEN + INANY_V4_OFF, t.oport[i], t.eport[i], n);
    else commitUdp6From(link, nc, at, a, o, nc.guestMac, 0, a, o + INANY_LEN, t.oport[i], t.eport[i], n, 0);
    this.stats.toTap++;
  }

  /** Counts and (rate-limited) logs a dropped datagram; returns result, for one-line exits. */
  private drop<T = void>(why: string, result?: T): T {
    this.stats.dropped++;
    if (logEnabled("debug")) dropLog.debug(`udp: datagram dropped: ${why}`);
    return result as T;
  }
}

/** A conntrack UDP timeout of the host in ms, or the fallback when it cannot be read. */
function conntrackTimeoutMs(name: string, fallbackMs: number): number {
  try {
    const s = Number(readFileSync(`/proc/sys/net/netfilter/${name}`, "utf8").trim());
    if (Number.isInteger(s) && s > 0) return s * 1000;
  } catch {
    // No conntrack in this kernel or namespace: the kernel's defaults stand.
  }
  return fallbackMs;
}

/**
 * TCP segments from the guest: lookup of the connection by its tap-side addresses and ports, new connections
 * from the guest's SYNs, the handshake steps, then acknowledgments, payload and FIN of established connections.
 *
 * A SYN without a connection becomes a non-blocking connect() of a new host socket to the translated
 * destination; the guest gets its SYN-ACK only when that connect succeeds, and a RST when it fails (doc/tcp.md §3).
 * Segments for no connection are answered with a RST (never a RST for a RST); malformed ones are dropped and
 * counted. Nothing here throws on guest input.
 */
import { EpollType } from "../epoll_ref.ts";
import type { NetConf } from "../netconf.ts";
import { AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM } from "../syscalls/constants.ts";
import { Errno, errnoName } from "../syscalls/errno.ts";
import { close } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { sockaddrFromInany } from "../syscalls/sockaddr.ts";
import { connectRaw, trySocket } from "../syscalls/socket.ts";
import { rateLimited } from "../log.ts";
import { copyBytes, rd16, rd32 } from "../wire/bytes.ts";
import { INANY_LEN, inanyFromIPv4 } from "../wire/inany.ts";
import { IP4_DST, IP4_SRC } from "../wire/ipv4.ts";
import { IP6_DST, IP6_SRC } from "../wire/ipv6.ts";
import { TCP_ACK, TCP_ACK_SEQ, TCP_DPORT, TCP_FIN, TCP_FLAGS, TCP_RST, TCP_SEQ, TCP_SPORT, TCP_SYN, TCP_WINDOW, TcpOptions, tcpParse, tcpParseOptions } from "../wire/tcp.ts";
import { flowEpollSet, flows } from "./epoll.ts";
import { FLOW_PROTO, FlowType, INISIDE, Pif, TGTSIDE, type Side } from "./flow.ts";
import { inanyIsUnicast, natOutbound } from "./nat.ts";
import { OutboundBinding } from "./outbound.ts";
import type { TcpFlows } from "./tcp.ts";
import { isV4, MSS_DEFAULT, seqAdd, seqSub, WS_TO_TAP } from "./tcp_conn.ts";
import { TcpEvent, TcpFlag } from "./tcp_state.ts";

/** Largest segment payload a frame to the guest can carry (65535-byte frames). */
const MSS_CAP4 = 65480;
const MSS_CAP6 = 65460;
const ZERO = new Uint8Array(INANY_LEN);
const dropLog = rateLimited("tcp: dropped segment");

/** Why segments from the guest were dropped or refused. */
export interface TcpTapDrops {
  malformed: number;
  badAddress: number;
  noConnection: number;
  /** A RST for no connection: never answered. */
  rstNoConnection: number;
  socketFailed: number;
  tableFull: number;
  unexpected: number;
}

/** Handles TCP segments from the guest. */
export class TcpTapInput {
  /** Drops and refusals, by reason. */
  readonly drops: TcpTapDrops = { malformed: 0, badAddress: 0, noConnection: 0, rstNoConnection: 0, socketFailed: 0, tableFull: 0, unexpected: 0 };
  private readonly key = new Uint32Array(8);
  private readonly keyBytes = new Uint8Array(this.key.buffer);
  private readonly target = new Uint8Array(INANY_LEN);
  private readonly opts = new TcpOptions();
  private readonly sa = new Mem(128);
  private readonly secret = crypto.getRandomValues(new Uint32Array(4));
  private readonly outbound: OutboundBinding;

  constructor(private readonly tcp: TcpFlows, private readonly nc: NetConf) {
    this.outbound = new OutboundBinding(nc);
  }

  /**
   * One TCP segment from the guest: IP header at buf[l3], TCP header at buf[l4], l4Len bytes of TCP header and
   * payload (buf's memory at addr).
   */
  fromTap(buf: Uint8Array, addr: number, l3: number, l4: number, l4Len: number, v6: boolean, now: number): void {
    const hlen = tcpParse(buf, l4, l4Len);
    if (hlen < 0) {
      this.drops.malformed++;
      return;
    }
    const kb = this.keyBytes;
    if (v6) {
      copyBytes(kb, 0, buf, l3 + IP6_DST, 16);
      copyBytes(kb, INANY_LEN, buf, l3 + IP6_SRC, 16);
    } else {
      inanyFromIPv4(kb, 0, buf, l3 + IP4_DST);
      inanyFromIPv4(kb, INANY_LEN, buf, l3 + IP4_SRC);
    }
    const sport = rd16(buf, l4 + TCP_SPORT);
    const dport = rd16(buf, l4 + TCP_DPORT);
    const flags = buf[l4 + TCP_FLAGS];
    const seq = rd32(buf, l4 + TCP_SEQ);
    const ack = rd32(buf, l4 + TCP_ACK_SEQ);
    const wnd = rd16(buf, l4 + TCP_WINDOW);
    const dataLen = l4Len - hlen;
    const t = flows();
    const s = t.lookup(FLOW_PROTO[FlowType.TCP], Pif.TAP, this.key, 0, dport, sport);
    if (s < 0) {
      if (flags & TCP_RST) {
        this.drops.rstNoConnection++;
        return;
      }
      if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN && !(flags & TCP_FIN)) {
        this.connect(buf, l3, l4, hlen, v6, sport, dport, seq, wnd, now);
        return;
      }
      this.drops.noConnection++;
      this.tcp.out.rstFor(buf, l3, l4, v6, seq, ack, (flags & TCP_ACK) !== 0, dataLen + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0));
      return;
    }
    const f = s >>> 1;
    t.lastActive[f] = now;
    if (flags & TCP_RST) {
      this.tcp.resetFromTap(f);
      return;
    }
    const ev = t.events[f];
    if (ev & TcpEvent.ESTABLISHED) {
      this.established(f, buf, addr, l4 + hlen, dataLen, flags, seq, ack, wnd);
    } else if (ev === TcpEvent.SOCK_ACCEPTED) {
      this.synAckFromTap(f, buf, l4, hlen, flags, seq, ack, wnd);
    } else if (ev & TcpEvent.TAP_SYN_RCVD) {
      if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) return; // retransmitted SYN: the connect is still pending
      if (!(ev & TcpEvent.TAP_SYN_ACK_SENT) || !(flags & TCP_ACK) || ack !== this.tcp.c.seqToTap[f]) {
        this.drops.unexpected++;
        this.tcp.reset(f, "unexpected segment during handshake");
        return;
      }
      t.events[f] = TcpEvent.ESTABLISHED;
      this.tcp.c.retries[f] = 0;
      this.tcp.setFlags(f, 0, TcpFlag.ACK_FROM_TAP_DUE);
      this.tcp.epoll(f);
      this.established(f, buf, addr, l4 + hlen, dataLen, flags, seq, ack, wnd);
    }
  }

  /** A segment on an established connection: acknowledgment and window, payload, FIN. */
  private established(f: number, buf: Uint8Array, addr: number, data: number, dataLen: number, flags: number, seq: number, ack: number, wnd: number): void {
    const tcp = this.tcp;
    const t = flows();
    const c = tcp.c;
    if (flags & TCP_SYN) {
      tcp.ackLater(f, true);
      return;
    }
    if (flags & TCP_ACK) tcp.ackFromTap(f, ack, wnd, dataLen === 0 && !(flags & TCP_FIN));
    if (t.events[f] === TcpEvent.CLOSED) return;
    const finRcvd = (t.events[f] & TcpEvent.TAP_FIN_RCVD) !== 0;
    if (dataLen > 0) {
      if (finRcvd) tcp.ackLater(f, true);
      else tcp.dataFromTap(f, addr, buf, data, dataLen, seq);
    } else if (seqSub(c.seqFromTap[f], seq) === 1 && !(flags & TCP_FIN)) {
      tcp.ackLater(f, true); // keepalive probe
    }
    if (t.events[f] === TcpEvent.CLOSED) return;
    if (flags & TCP_FIN && !finRcvd && seqAdd(seq, dataLen) === c.seqFromTap[f]) {
      c.seqFromTap[f] = seqAdd(c.seqFromTap[f], 1);
      t.events[f] |= TcpEvent.TAP_FIN_RCVD;
      if (!(t.events[f] & TcpEvent.SOCK_FIN_RCVD)) t.flags[f] |= TcpFlag.ACTIVE_CLOSE;
      if (c.spillLen[f] === 0) tcp.finToSock(f);
      tcp.ackLater(f, true);
    }
    tcp.maybeClose(f);
  }

  /** The guest's SYN-ACK to a connection accepted on the host. */
  private synAckFromTap(f: number, buf: Uint8Array, l4: number, hlen: number, flags: number, seq: number, ack: number, wnd: number): void {
    const tcp = this.tcp;
    const c = tcp.c;
    const t = flows();
    if ((flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK) || flags & TCP_FIN || ack !== c.seqToTap[f] || !tcpParseOptions(buf, l4, hlen, this.opts)) {
      this.drops.unexpected++;
      tcp.reset(f, "unexpected answer to our SYN");
      return;
    }
    this.applySynOptions(f, !isV4(t, f, tcp.tapSide(f)));
    c.seqFromTap[f] = c.seqAckToTap[f] = seqAdd(seq, 1);
    c.wndFromTapRaw[f] = wnd;
    c.wndFromTap[f] = wnd;
    c.retries[f] = 0;
    t.events[f] = TcpEvent.ESTABLISHED;
    tcp.setFlags(f, 0, TcpFlag.ACK_FROM_TAP_DUE);
    tcp.epoll(f);
    tcp.ackLater(f, true);
    tcp.sockToTap(f);
  }

  /** MSS and window scale from the guest's SYN (or SYN-ACK), in this.opts. */
  private applySynOptions(f: number, v6: boolean): void {
    const c = this.tcp.c;
    const o = this.opts;
    const cap = v6 ? MSS_CAP6 : MSS_CAP4;
    const mss = o.mss > 0 ? o.mss : MSS_DEFAULT;
    c.mss[f] = Math.max(64, Math.min(mss, cap));
    if (o.wscale >= 0) {
      c.wsFromTap[f] = o.wscale;
      c.wsToTap[f] = WS_TO_TAP;
    } else {
      c.wsFromTap[f] = 0;
      c.wsToTap[f] = 0;
    }
  }

  /** A SYN from the guest for a new connection: a host socket connecting to the translated destination. */
  private connect(buf: Uint8Array, l3: number, l4: number, hlen: number, v6: boolean, sport: number, dport: number, seq: number, wnd: number, now: number): void {
    const kb = this.keyBytes;
    const tcp = this.tcp;
    if (!tcpParseOptions(buf, l4, hlen, this.opts)) {
      this.drops.malformed++;
      return;
    }
    if (!inanyIsUnicast(kb, 0) || !inanyIsUnicast(kb, INANY_LEN) || sport === 0 || dport === 0) {
      this.drops.badAddress++;
      dropLog.debug("tcp: SYN with a non-unicast address or port 0 dropped");
      return;
    }
    natOutbound(this.nc, kb, 0, dport === 53, this.target, 0);
    const sock = trySocket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const bound = sock < 0 ? sock : this.outbound.bind(sock, this.target, 0, 0);
    if (bound < 0) {
      if (sock >= 0) close(sock);
      this.drops.socketFailed++;
      dropLog.warn(`tcp: cannot ${sock < 0 ? "open" : "bind"} a socket (${errnoName(-bound)}): connection refused`);
      tcp.out.rstFor(buf, l3, l4, v6, seq, 0, false, 1);
      return;
    }
    const t = flows();
    const f = t.alloc();
    if (f < 0) {
      close(sock);
      this.drops.tableFull++;
      tcp.out.rstFor(buf, l3, l4, v6, seq, 0, false, 1);
      return;
    }
    t.initiate(f, Pif.TAP, kb, INANY_LEN, sport, kb, 0, dport);
    t.target(f, Pif.HOST, ZERO, 0, 0, this.target, 0, dport);
    t.setType(f, FlowType.TCP);
    t.fd[2 * f + TGTSIDE] = sock;
    t.lastActive[f] = now;
    const c = tcp.c;
    c.reset(f);
    this.applySynOptions(f, v6);
    c.seqFromTap[f] = c.seqAckToTap[f] = seqAdd(seq, 1);
    c.wndFromTap[f] = wnd;
    c.seqToTap[f] = this.isn(f, INISIDE, now);
    tcp.io.prepare(sock);
    t.events[f] = TcpEvent.TAP_SYN_RCVD;
    t.hashInsert(f, INISIDE);
    const saLen = sockaddrFromInany(this.sa, 0, this.target, 0, dport, 0);
    const r = connectRaw(sock, this.sa.addr, saLen);
    const er = flowEpollSet(EpollType.TCP, f, TGTSIDE);
    t.activate(f);
    tcp.stats.opened++;
    if (er < 0) tcp.reset(f, `epoll: errno ${-er}`);
    else if (r === 0) tcp.synAckToTap(f);
    else if (r !== -Errno.EINPROGRESS) {
      tcp.stats.refused++;
      tcp.reset(f, `connect failed: errno ${-r}`);
    }
  }

  /**
   * Our initial sequence number toward the guest (RFC 6528): a keyed hash of the tap side's addresses and ports
   * plus a clock ticking every 32 ns (here: from the millisecond clock).
   */
  isn(f: number, side: Side, now: number): number {
    const t = flows();
    const w = t.addrWords;
    const base = (2 * f + side) * 8;
    let h = this.secret[0];
    for (let i = 0; i < 8; i++) h = Math.imul(h ^ w[base + i], 0x9e3779b1) ^ this.secret[(i + 1) & 3];
    h = Math.imul(h ^ ((t.oport[2 * f + side] << 16) | t.eport[2 * f + side]), 0x85ebca6b);
    h ^= h >>> 15;
    return (h + Math.floor(now * 31250)) >>> 0;
  }
}

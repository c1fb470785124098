/**
 * ICMP and ICMPv6 echo: PING flows over unprivileged "ping" sockets (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6).
 *
 * A guest's echo request opens a flow keyed by (guest address, address pinged, echo id) on the tap side and a
 * ping socket on the host side. The kernel replaces the identifier with the socket's own and fixes the checksum,
 * so the guest's message is sent as it is; replies get the guest's identifier back and go to the guest from the
 * address it pinged. Destinations follow the outbound NAT: the map-host-loopback address pings the host's
 * loopback, the map-guest-addr address pings the host's own address. Flows expire 60 s after the guest's last
 * request (replies do not refresh them). Ping sockets refused by the host's ping_group_range give one warning.
 */
import { EpollType, sidxFlow } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { AF_INET, AF_INET6, IPPROTO_ICMP, IPPROTO_ICMPV6, MSG_DONTWAIT, MSG_NOSIGNAL, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { close, recv, sendto } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { sockaddrFromInany } from "../syscalls/sockaddr.ts";
import { trySocket } from "../syscalls/socket.ts";
import { log, rateLimited } from "../log.ts";
import { ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit } from "../wire/ethernet.ts";
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HLEN, ICMP_ID, ICMP_SEQ, icmpSetChecksum } from "../wire/icmp.ts";
import { ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, icmp6SetChecksum } from "../wire/icmpv6.ts";
import { INANY_V4_OFF } from "../wire/ip.ts";
import { IP4_HLEN, ipv4Emit } from "../wire/ipv4.ts";
import { IP6_HLEN, ipv6Emit } from "../wire/ipv6.ts";
import { rd16, wr16 } from "../wire/bytes.ts";
import { inanyEqual, inanyFromIPv4, inanyIsV4, INANY_LEN } from "../wire/inany.ts";
import { flowEpollSet, flows } from "./epoll.ts";
import { FLOW_PROTO, FlowType, INISIDE, Pif, TGTSIDE } from "./flow.ts";
import { OutboundBinding } from "./outbound.ts";

/** A ping flow lives this long after the guest's last echo request. */
export const PING_TIMEOUT_MS = 60_000;
const REPLY_MAX = 65536;

const unexpectedLog = rateLimited("ping: unexpected packet");
const LOOPBACK4 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
const LOOPBACK6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** Echo request/reply relaying between the tap and ping sockets. */
export class PingFlows {
  /** Counters. */
  readonly stats = { requests: 0, replies: 0, flowsOpened: 0, socketRefused: 0, dropped: 0 };
  /** Last sequence number forwarded to the guest, per flow (duplicate suppression). */
  private readonly lastSeq: Int32Array;
  private readonly key = new Uint32Array(8);
  private readonly keyBytes = new Uint8Array(this.key.buffer);
  private readonly target = new Uint8Array(INANY_LEN);
  private readonly dest = new Mem(128);
  private readonly reply = new Mem(REPLY_MAX);
  private warnedRefused = false;
  private readonly outbound: OutboundBinding;

  constructor(loop: EventLoop, private readonly nc: NetConf, private readonly link: Link) {
    const t = flows();
    this.outbound = new OutboundBinding(nc);
    this.lastSeq = new Int32Array(t.capacity);
    t.setTypeOps(FlowType.PING, {
      shouldFree: (f, now, timerDue) => timerDue && now - t.lastActive[f] > PING_TIMEOUT_MS,
      release: (f) => {
        this.lastSeq[f] = -1;
      },
    });
    loop.on(EpollType.PING, (fd, payload) => this.fromSocket(fd, sidxFlow(payload)));
  }

  /**
   * An ICMP (v6 = false) or ICMPv6 message from the guest at buf[l4Off, l4Off + l4Len) (IP header at l3Off, the
   * buffer's memory at addr). Echo requests are relayed; anything else is dropped and counted.
   */
  fromTap(buf: Uint8Array, addr: number, l3Off: number, l4Off: number, l4Len: number, v6: boolean, now: number): void {
    if (l4Len < ICMP_HLEN || buf[l4Off] !== (v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO_REQUEST)) {
      this.stats.dropped++;
      return;
    }
    this.stats.requests++;
    const id = rd16(buf, l4Off + ICMP_ID);
    // Key: our address on the tap side (the address pinged), then the endpoint's (the guest's).
    const kb = this.keyBytes;
    if (v6) {
      kb.set(buf.subarray(l3Off + 24, l3Off + 40), 0);
      kb.set(buf.subarray(l3Off + 8, l3Off + 24), INANY_LEN);
    } else {
      inanyFromIPv4(kb, 0, buf, l3Off + 16);
      inanyFromIPv4(kb, INANY_LEN, buf, l3Off + 12);
    }
    const t = flows();
    let s = t.lookup(FLOW_PROTO[FlowType.PING], Pif.TAP, this.key, 0, id, id);
    if (s < 0) s = this.open(id, v6);
    if (s < 0) {
      this.stats.dropped++;
      return;
    }
    const f = s >>> 1;
    t.lastActive[f] = now;
    const tgt = t.addrOffset(f, TGTSIDE) + INANY_LEN;
    const destLen = sockaddrFromInany(this.dest, 0, t.addrBytes, tgt, 0, 0);
    const r = sendto(t.fd[2 * f + TGTSIDE], addr + l4Off, l4Len, MSG_NOSIGNAL | MSG_DONTWAIT, this.dest.addr, destLen);
    if (r < 0) {
      this.stats.dropped++;
      unexpectedLog.debug(`ping: sendto failed: errno ${-r}`);
    }
  }

  /** Opens a flow for the key in this.key; returns its tap-side flow side index, or -1. */
  private open(id: number, v6: boolean): number {
    const t = flows();
    const nc = this.nc;
    const kb = this.keyBytes;
    // Outbound NAT: the map-host-loopback address means the host's loopback; map-guest-addr its own address.
    const fam = v6 ? nc.ip6 : nc.ip4;
    if (!isZero(fam.mapHostLoopback) && inanyEqual(kb, 0, fam.mapHostLoopback, 0)) this.target.set(v6 ? LOOPBACK6 : LOOPBACK4);
    else if (!isZero(fam.mapGuestAddr) && inanyEqual(kb, 0, fam.mapGuestAddr, 0)) this.target.set(fam.addr);
    else this.target.set(kb.subarray(0, INANY_LEN));
    const sock = trySocket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
    const bound = sock < 0 ? 0 : this.outbound.bind(sock, this.target, 0, 0);
    if (bound < 0) {
      close(sock);
      unexpectedLog.warn(`ping: cannot bind a ping socket as --outbound asks: errno ${-bound}`);
      return -1;
    }
    if (sock < 0) {
      this.stats.socketRefused++;
      if (!this.warnedRefused) {
        this.warnedRefused = true;
        log.warn(`cannot open a ping socket (errno ${-sock}): echo requests are dropped; allow them with sysctl -w net.ipv4.ping_group_range="0 2147483647"`);
      }
      return -1;
    }
    const f = t.alloc();
    if (f < 0) {
      close(sock);
      return -1;
    }
    t.initiate(f, Pif.TAP, kb, INANY_LEN, id, kb, 0, id);
    t.target(f, Pif.HOST, ZERO, 0, 0, this.target, 0, 0);
    t.setType(f, FlowType.PING);
    this.lastSeq[f] = -1;
    t.fd[2 * f + TGTSIDE] = sock;
    t.hashInsert(f, INISIDE);
    const r = flowEpollSet(EpollType.PING, f, TGTSIDE);
    t.activate(f);
    if (r < 0) {
      t.markFree(f);
      return -1;
    }
    this.stats.flowsOpened++;
    return 2 * f + INISIDE;
  }

  /** Replies on a flow's ping socket: back to the guest with its identifier, from the address it pinged. */
  private fromSocket(fd: number, f: number): void {
    const t = flows();
    const ini = t.addrOffset(f, INISIDE);
    const v6 = !inanyIsV4(t.addrBytes, ini);
    const id = t.eport[2 * f + INISIDE];
    const rb = this.reply.bytes;
    for (;;) {
      const n = recv(fd, this.reply.addr, REPLY_MAX, MSG_DONTWAIT);
      if (n === -Errno.EAGAIN || n === -Errno.EINTR) return;
      if (n < 0) {
        unexpectedLog.debug(`ping: recv failed: errno ${-n}`);
        return;
      }
      if (n < ICMP_HLEN || rb[0] !== (v6 ? ICMP6_ECHO_REPLY : ICMP_ECHO_REPLY)) {
        unexpectedLog.warn(`ping: unexpected packet of ${n} bytes on flow ${f}`);
        continue;
      }
      const seq = rd16(rb, ICMP_SEQ);
      if (seq === this.lastSeq[f]) continue;
      this.lastSeq[f] = seq;
      wr16(rb, ICMP_ID, id);
      this.toGuest(ini, v6, n);
      this.stats.replies++;
    }
  }

  private toGuest(ini: number, v6: boolean, n: number): void {
    const t = flows();
    const nc = this.nc;
    const link = this.link;
    const a = t.addrBytes;
    const ipLen = v6 ? IP6_HLEN : IP4_HLEN;
    const at = link.reserve(ETH_HLEN + ipLen + n);
    const out = link.out.bytes;
    ethEmit(out, at, nc.guestMac, 0, nc.ourMac, 0, v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
    const ip = at + ETH_HLEN;
    const l4 = ip + ipLen;
    out.set(this.reply.bytes.subarray(0, n), l4);
    if (v6) {
      ipv6Emit(out, ip, a, ini, a, ini + INANY_LEN, IPPROTO_ICMPV6, n);
      icmp6SetChecksum(out, ip, l4, n);
    } else {
      ipv4Emit(out, ip, a, ini + INANY_V4_OFF, a, ini + INANY_LEN + INANY_V4_OFF, IPPROTO_ICMP, n);
      icmpSetChecksum(out, l4, n);
    }
    link.commit(ETH_HLEN + ipLen + n);
  }
}

const ZERO = new Uint8Array(INANY_LEN);

function isZero(a: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

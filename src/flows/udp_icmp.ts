/**
 * ICMP and ICMPv6 errors for UDP flows (udp-icmp.md §8): an error that the host's network reported for a
 * datagram a flow's host socket sent (queued on the socket under IP_RECVERR / IPV6_RECVERR) goes back to the
 * guest as the ICMP message the guest would have had on a real network, so that its own socket sees
 * ECONNREFUSED, EHOSTUNREACH, or a smaller path MTU.
 *
 * The message is rebuilt from the flow, not copied from the host: the packet it quotes is the guest's datagram
 * as the guest sent it (from its address and port, to the address and port it used), followed by as much of
 * the original payload as the error carried, up to 8 bytes for ICMP (RFC 792) and, for ICMPv6, as much as keeps
 * the whole packet within the IPv6 minimum MTU (RFC 4443 §2.4). It comes from the node that reported the error,
 * as the guest sees that node: the address the guest sent to when it is the flow's own peer (so translated
 * destinations stay consistent), else the node's address through the inbound NAT. The next-hop MTU of
 * "fragmentation needed" and the MTU of "packet too big" are passed on.
 *
 * Errors of local origin, types the guest has no use for (only unreachable, packet too big and time exceeded
 * are relayed), errors on flows that do not end at the tap (spliced ones) and anything malformed in the queue are
 * counted and dropped, with a rate-limited debug message.
 */
import { sidxFlow } from "../epoll_ref.ts";
import { logEnabled, rateLimited } from "../log.ts";
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { SockExtendedErr } from "../syscalls/cmsg.ts";
import { IPPROTO_IP, MSG_ERRQUEUE, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 } from "../syscalls/constants.ts";
import { copyMem } from "../syscalls/mem.ts";
import { copyBytes } from "../wire/bytes.ts";
import { ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit } from "../wire/ethernet.ts";
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HLEN, ICMP_TIME_EXCEEDED, icmpErrorEmit } from "../wire/icmp.ts";
import {
  ICMP6_DEST_UNREACH, ICMP6_HLEN, ICMP6_PKT_TOO_BIG, ICMP6_TIME_EXCEEDED, icmp6ErrorEmit, icmp6SetChecksum,
} from "../wire/icmpv6.ts";
import { INANY_LEN, inanyEqual, inanyIsV4 } from "../wire/inany.ts";
import { INANY_V4_OFF, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP } from "../wire/ip.ts";
import { IP4_HLEN, ipv4Emit } from "../wire/ipv4.ts";
import { IP6_HLEN, ipv6Emit } from "../wire/ipv6.ts";
import { UDP_HLEN, udpEmit, udpSetChecksum4, udpSetChecksum6 } from "../wire/udp.ts";
import { flows } from "./epoll.ts";
import { Pif, type Side } from "./flow.ts";
import { natInboundSource } from "./nat.ts";
import { type DatagramMsg, takeSocketError } from "./udp_sock.ts";

/** Payload bytes of the original datagram quoted in an ICMP error (RFC 792: the header and 64 bits of data). */
export const ICMP4_QUOTED_DATA = 8;
/** Payload bytes quoted in an ICMPv6 error: what keeps the packet within the 1280-byte IPv6 minimum MTU. */
export const ICMP6_QUOTED_DATA = 1280 - IP6_HLEN - ICMP6_HLEN - IP6_HLEN - UDP_HLEN;

const dropLog = rateLimited("udp: ICMP error not relayed");

/** Relays the errors queued on UDP flow sockets to the guest as ICMP and ICMPv6 messages. */
export class UdpIcmpErrors {
  /** Counters: errors relayed to the guest, and those dropped (each dropped one is also logged). */
  readonly stats = { relayed: 0, dropped: 0 };
  private readonly err = new SockExtendedErr();
  /** The source of the message to the guest, as an inany. */
  private readonly source = new Uint8Array(INANY_LEN);

  constructor(private readonly nc: NetConf, private readonly link: Link) {}

  /**
   * Empties the error queue of socket fd, the socket of flow side index s (at most max errors, read through msg),
   * relaying what can be relayed, then clears the socket's pending error. Returns how many errors were taken.
   */
  drain(fd: number, s: number, msg: DatagramMsg, max: number): number {
    let taken = 0;
    while (taken < max) {
      const n = msg.recv(fd, MSG_ERRQUEUE);
      if (n < 0) break;
      taken++;
      this.relay(s, msg, n);
    }
    return takeSocketError(fd) > 0 ? taken + 1 : taken;
  }

  /** One error read from the queue of the socket of flow side s, with n bytes of the original payload in msg. */
  private relay(s: number, msg: DatagramMsg, n: number): void {
    const err = this.err;
    if (!msg.error(err)) return this.drop("error queue message without an extended error");
    const t = flows();
    if (t.pif[s] !== Pif.HOST || t.pif[s ^ 1] !== Pif.TAP) return this.drop("the flow does not end at the tap");
    const v4 = err.level === IPPROTO_IP;
    if (err.origin !== (v4 ? SO_EE_ORIGIN_ICMP : SO_EE_ORIGIN_ICMP6) || !err.hasOffender) {
      return this.drop(`local error (errno ${err.errno}, origin ${err.origin})`);
    }
    if (!relayedType(v4, err.type)) return this.drop(`ICMP${v4 ? "" : "v6"} type ${err.type} code ${err.code}`);
    const f = sidxFlow(s);
    const a = t.addrBytes;
    const tap = t.addrOffset(f, ((s ^ 1) & 1) as Side);
    const host = t.addrOffset(f, (s & 1) as Side);
    if (inanyIsV4(err.offender, 0) !== v4 || inanyIsV4(a, tap + INANY_LEN) !== v4) {
      return this.drop("offender or flow of the other IP version");
    }
    if (inanyEqual(err.offender, 0, a, host + INANY_LEN)) copyBytes(this.source, 0, a, tap, INANY_LEN);
    else if (!natInboundSource(this.nc, err.offender, 0, this.source, 0)) {
      return this.drop("the reporting node cannot be presented to the guest");
    }
    this.emit(s ^ 1, tap, msg, v4, n);
    this.stats.relayed++;
  }

  /**
   * Queues the ICMP or ICMPv6 error to the guest for tap side index ts (its addresses at addrBytes[tap]), quoting
   * its datagram with up to n bytes of the original payload from msg.
   */
  private emit(ts: number, tap: number, msg: DatagramMsg, v4: boolean, n: number): void {
    const t = flows();
    const a = t.addrBytes;
    const err = this.err;
    const dlen = Math.min(n, v4 ? ICMP4_QUOTED_DATA : ICMP6_QUOTED_DATA);
    const ipLen = v4 ? IP4_HLEN : IP6_HLEN;
    // ICMP and ICMPv6 error headers are both 8 bytes.
    const icmpLen = ICMP_HLEN + ipLen + UDP_HLEN + dlen;
    const len = ETH_HLEN + ipLen + icmpLen;
    const link = this.link;
    const at = link.reserve(len);
    const b = link.out.bytes;
    const ip = at + ETH_HLEN;
    const icmp = ip + ipLen;
    const inner = icmp + ICMP_HLEN;
    const udp = inner + ipLen;
    const guest = tap + INANY_LEN;
    ethEmit(b, at, this.nc.guestMac, 0, this.nc.ourMac, 0, v4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
    if (v4) {
      ipv4Emit(b, ip, this.source, INANY_V4_OFF, a, guest + INANY_V4_OFF, IPPROTO_ICMP, icmpLen);
      ipv4Emit(b, inner, a, guest + INANY_V4_OFF, a, tap + INANY_V4_OFF, IPPROTO_UDP, UDP_HLEN + dlen);
    } else {
      ipv6Emit(b, ip, this.source, 0, a, guest, IPPROTO_ICMPV6, icmpLen);
      ipv6Emit(b, inner, a, guest, a, tap, IPPROTO_UDP, UDP_HLEN + dlen);
    }
    udpEmit(b, udp, t.eport[ts], t.oport[ts], dlen);
    copyMem(link.out.addr + udp + UDP_HLEN, msg.buf.addr, dlen);
    if (v4) {
      udpSetChecksum4(b, inner, udp, UDP_HLEN + dlen);
      // RFC 1191: the next-hop MTU is the low 16 bits of the otherwise unused word.
      const info = err.type === ICMP_DEST_UNREACH && err.code === ICMP_FRAG_NEEDED ? err.info & 0xffff : 0;
      icmpErrorEmit(b, icmp, err.type, err.code, info, icmpLen - ICMP_HLEN);
    } else {
      udpSetChecksum6(b, inner, udp, UDP_HLEN + dlen);
      icmp6ErrorEmit(b, icmp, err.type, err.code, err.type === ICMP6_PKT_TOO_BIG ? err.info : 0);
      icmp6SetChecksum(b, ip, icmp, icmpLen);
    }
    link.commit(len);
  }

  private drop(why: string): void {
    this.stats.dropped++;
    if (logEnabled("debug")) dropLog.debug(`udp: ICMP error not relayed to the guest: ${why}`);
  }
}

/** The error types worth a message to the guest: unreachable, time exceeded and (IPv6) packet too big. */
function relayedType(v4: boolean, type: number): boolean {
  if (v4) return type === ICMP_DEST_UNREACH || type === ICMP_TIME_EXCEEDED;
  return type === ICMP6_DEST_UNREACH || type === ICMP6_PKT_TOO_BIG || type === ICMP6_TIME_EXCEEDED;
}

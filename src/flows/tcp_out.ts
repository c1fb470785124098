/**
 * TCP segments to the guest: Ethernet, IPv4 or IPv6 and TCP headers written in place in the link's output arena,
 * around a payload copied from the socket peek buffer, checksums over the finished bytes.
 *
 * The addresses of a segment come from the flow's tap side (our address and port there as the source, the
 * guest's as the destination); the window field is scaled by the connection's shift toward the guest, except in
 * SYNs, which are never scaled (RFC 7323 §2.2).
 */
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { ETH_HLEN, ETH_SRC, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit } from "../wire/ethernet.ts";
import { INANY_V4_OFF, IPPROTO_TCP } from "../wire/ip.ts";
import { IP4_DST, IP4_HLEN, IP4_SRC, ipv4Emit } from "../wire/ipv4.ts";
import { IP6_DST, IP6_HLEN, IP6_SRC, ipv6Emit } from "../wire/ipv6.ts";
import { INANY_LEN, inanyIsV4 } from "../wire/inany.ts";
import { csumFold, pseudoHeader4, pseudoHeader6 } from "../wire/checksum.ts";
import { TCP_ACK, TCP_CSUM, TCP_DPORT, TCP_HLEN, TCP_RST, TCP_SPORT, TCP_SYN, tcpEmit, tcpSetChecksum4, tcpSetChecksum6 } from "../wire/tcp.ts";
import { copyBytes, rd16, wr16 } from "../wire/bytes.ts";
import type { FlowTable, Side } from "./flow.ts";
import { seqAdd, TcpConns, WINDOW_DEFAULT } from "./tcp_conn.ts";

/** Payloads up to this many bytes are copied byte by byte rather than through a subarray. */
const SMALL_COPY = 256;
/** virtio_net_hdr GSO types. */
const VIRTIO_GSO_TCPV4 = 1;
const VIRTIO_GSO_TCPV6 = 4;

/** Most TCP payload in one super-frame to a link with offload (the IP length field's limit, less headers). */
export const TCP_SUPER_FRAME_PAYLOAD = 65535 - IP6_HLEN - TCP_HLEN;

/** Room for the headers of the largest TCP segment toward the guest (IPv6, SYN options). */
export const TCP_FRAME_OVERHEAD = ETH_HLEN + IP6_HLEN + TCP_HLEN + 8;

/** Writes TCP segments of tap-side connections to the link. */
export class TcpTapOut {
  /** Segments queued to the guest, by kind. */
  readonly stats = { data: 0, dataBytes: 0, control: 0, rst: 0 };

  constructor(
    private readonly nc: NetConf,
    private readonly link: Link,
    private readonly t: FlowTable,
    private readonly c: TcpConns,
  ) {}

  /**
   * Queues one segment of connection f (tap side ts) with these flags and sequence number, carrying the current
   * acknowledgment and window, and len payload bytes copied from src[srcOff]. mss > 0 adds the SYN options.
   */
  segment(f: number, ts: Side, flags: number, seq: number, src: Uint8Array | null, srcOff: number, len: number, mss = 0): void {
    const t = this.t;
    const c = this.c;
    const a = t.addrBytes;
    const o = t.addrOffset(f, ts);
    const e = o + INANY_LEN;
    const v4 = inanyIsV4(a, o);
    const ipLen = v4 ? IP4_HLEN : IP6_HLEN;
    const optLen = mss > 0 ? 8 : 0;
    const tcpLen = TCP_HLEN + optLen + len;
    const link = this.link;
    const at = link.reserve(ETH_HLEN + ipLen + tcpLen);
    const b = link.out.bytes;
    const ip = at + ETH_HLEN;
    const tcp = ip + ipLen;
    ethEmit(b, at, this.nc.guestMac, 0, this.nc.ourMac, 0, v4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
    if (v4) ipv4Emit(b, ip, a, o + INANY_V4_OFF, a, e + INANY_V4_OFF, IPPROTO_TCP, tcpLen, 64);
    else ipv6Emit(b, ip, a, o, a, e, IPPROTO_TCP, tcpLen, 0, 64);
    const wnd = flags & TCP_SYN ? Math.min(c.wndToTap[f], 65535) : Math.min(c.wndToTap[f] >>> c.wsToTap[f], 65535);
    const ack = flags & TCP_ACK ? c.seqAckToTap[f] : 0;
    const i = 2 * f + ts;
    tcpEmit(b, tcp, t.oport[i], t.eport[i], seq, ack, flags, wnd, mss, mss > 0 ? c.wsToTap[f] : -1);
    if (len > 0 && src !== null) {
      // Small payloads (request/response traffic) are copied by hand: a subarray per segment is garbage to collect.
      if (len <= SMALL_COPY) copyBytes(b, tcp + TCP_HLEN + optLen, src, srcOff, len);
      else b.set(src.subarray(srcOff, srcOff + len), tcp + TCP_HLEN + optLen);
    }
    if (link.offload) {
      // The kernel completes the checksum from the pseudo-header sum, and cuts a super-frame into MSS segments.
      const ph = v4 ? pseudoHeader4(b, ip + IP4_SRC, b, ip + IP4_DST, IPPROTO_TCP, tcpLen) : pseudoHeader6(b, ip + IP6_SRC, b, ip + IP6_DST, IPPROTO_TCP, tcpLen);
      wr16(b, tcp + TCP_CSUM, csumFold(ph));
      const gso = len > c.mss[f] ? c.mss[f] : 0;
      link.markOffload(ETH_HLEN + ipLen, TCP_CSUM, v4 ? VIRTIO_GSO_TCPV4 : VIRTIO_GSO_TCPV6, gso, ETH_HLEN + ipLen + TCP_HLEN + optLen);
    } else if (v4) tcpSetChecksum4(b, ip, tcp, tcpLen);
    else tcpSetChecksum6(b, ip, tcp, tcpLen);
    link.commit(ETH_HLEN + ipLen + tcpLen);
    c.segmentsOut[f]++;
    if (len > 0) {
      this.stats.data++;
      this.stats.dataBytes += len;
    } else {
      this.stats.control++;
    }
  }

  /** Queues a segment without payload at the connection's next sequence number. */
  flags(f: number, ts: Side, flags: number): void {
    this.segment(f, ts, flags, this.c.seqToTap[f], null, 0, 0);
  }

  /** Queues a SYN (inbound) or SYN-ACK (outbound) with our MSS and window scale options. */
  syn(f: number, ts: Side, flags: number, isn: number, mss: number): void {
    if (this.c.wndToTap[f] < WINDOW_DEFAULT) this.c.wndToTap[f] = WINDOW_DEFAULT;
    this.segment(f, ts, flags | TCP_SYN, isn, null, 0, 0, mss);
  }

  /**
   * Queues a reset answering a segment that belongs to no connection (RFC 9293 §3.10.7.1): with the segment's
   * ACK number as sequence if it had ACK, else RST|ACK acknowledging its sequence plus payload length.
   * The segment's IP header is at buf[l3], its TCP header at buf[l4].
   */
  rstFor(buf: Uint8Array, l3: number, l4: number, v6: boolean, seq: number, ack: number, hadAck: boolean, segLen: number): void {
    const ipLen = v6 ? IP6_HLEN : IP4_HLEN;
    const link = this.link;
    const at = link.reserve(ETH_HLEN + ipLen + TCP_HLEN);
    const b = link.out.bytes;
    const ip = at + ETH_HLEN;
    const tcp = ip + ipLen;
    ethEmit(b, at, buf, l3 - ETH_HLEN + ETH_SRC, this.nc.ourMac, 0, v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
    if (v6) ipv6Emit(b, ip, buf, l3 + IP6_DST, buf, l3 + IP6_SRC, IPPROTO_TCP, TCP_HLEN, 0, 64);
    else ipv4Emit(b, ip, buf, l3 + IP4_DST, buf, l3 + IP4_SRC, IPPROTO_TCP, TCP_HLEN, 64);
    const sport = rd16(buf, l4 + TCP_DPORT);
    const dport = rd16(buf, l4 + TCP_SPORT);
    if (hadAck) tcpEmit(b, tcp, sport, dport, ack, 0, TCP_RST, 0);
    else tcpEmit(b, tcp, sport, dport, 0, seqAdd(seq, segLen), TCP_RST | TCP_ACK, 0);
    if (v6) tcpSetChecksum6(b, ip, tcp, TCP_HLEN);
    else tcpSetChecksum4(b, ip, tcp, TCP_HLEN);
    link.commit(ETH_HLEN + ipLen + TCP_HLEN);
    this.stats.rst++;
  }
}

/**
 * IPv6 Neighbor Discovery toward the guest (doc/tap-l2.md §10, RFC 4861): neighbor and router advertisements.
 *
 * As with ARP, everything the guest can reach is behind orzo, so every neighbor solicitation is answered with our
 * MAC, whatever its target: Router, Solicited and Override set, so the answer replaces whatever the guest had
 * cached. Solicitations from the unspecified address are duplicate address detection probes: an answer would tell
 * the guest its address is taken, so they get none.
 *
 * Router advertisements make orzo the guest's default router and hand it its addressing: the Managed flag (get an
 * address over DHCPv6), a /64 prefix taken from the guest's assigned address with on-link and autonomous flags
 * and infinite lifetimes (so SLAAC lands on the same /64), our MAC, the MTU, and the nameservers and search list
 * when those are passed to the guest. They answer router solicitations (unicast to the solicitor, or to all nodes
 * when it has no address yet) and, once the tap is usable (announce(), or NDP from the guest shows it is up), go
 * out unsolicited at random intervals of 200-600 s (RFC 4861 §6.2.1 bounds; the first timer tick only schedules,
 * so nothing is sent at start-up).
 *
 * Messages from the guest must be valid NDP (code 0, hop limit 255 so they cannot come from off-link, well-formed
 * options); checksums are left to the ingress, since a local virtual link does not corrupt frames. Router and
 * neighbor advertisements from the guest carry nothing orzo uses (the ingress learns the guest's MAC from every
 * frame) and are swallowed, like everything with --no-ndp.
 *
 * Once the tap is usable, one solicitation for the guest's address shows the guest's MAC early.
 */
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { copyBytes } from "../wire/bytes.ts";
import {
  NA_OVERRIDE, NA_ROUTER, NA_SOLICITED, ND_TARGET, NDP_NA, NDP_NS, NDP_OPT_SRC_LLADDR,
  NDP_OPT_TGT_LLADDR, NDP_RS, NS_NA_LEN, PREFIX_AUTONOMOUS, PREFIX_ONLINK, RA_LEN, RA_MANAGED, type RaFields,
  ndpNsNaEmit, ndpOptDnsslEmit, ndpOptLinkAddrEmit, ndpOptMtuEmit, ndpOptPrefixEmit, ndpOptRdnssEmit,
  ndpOptionFind, ndpParse, ndpRaEmit,
} from "../wire/icmpv6.ts";
import { IP6_DEFAULT_HOPS, IP6_HLEN, IP6_HOPS, IP6_SRC } from "../wire/ipv6.ts";
import { ICMP6_OFF, commitIcmp6 } from "./frame.ts";
import { encodableDomains } from "./names.ts";
import { type L2Stats, countMalformed } from "./stats.ts";

/** All-nodes multicast address ff02::1: where unsolicited advertisements go. */
const ALL_NODES = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
/** Lifetime meaning "forever" in prefix, RDNSS and DNSSL options. */
const INFINITE = 0xffffffff;
/** What every advertisement says: hop limit, Managed (addresses from DHCPv6), the longest router lifetime. */
const RA_HEADER: RaFields = { curHopLimit: 255, flags: RA_MANAGED, routerLifetime: 65535, reachable: 0, retrans: 0 };
/** SLAAC and the /64 every IPv6 link uses. */
const PREFIX_LEN = 64;
/** Length of a link-layer address option for Ethernet. */
const LLADDR_OPT_LEN = 8;
/** The most nameservers an advertisement carries. */
const MAX_DNS = 3;
/** The largest advertisement: header, prefix, MTU, RDNSS with 3 servers, the largest DNSSL, source MAC. */
const RA_MAX = RA_LEN + 32 + 8 + 8 + 16 * MAX_DNS + 255 * 8 + LLADDR_OPT_LEN;
/** Neighbor solicitations and advertisements: body and one link-layer address option. */
const NS_NA_MSG_LEN = NS_NA_LEN + LLADDR_OPT_LEN;
/** Bounds of the unsolicited advertisement interval, in milliseconds (RFC 4861 MaxRtrAdvInterval, a third of it). */
const RA_INTERVAL_MAX_MS = 600_000;
const RA_INTERVAL_MIN_MS = RA_INTERVAL_MAX_MS / 3;

/** True for the unspecified address at buf[off]. */
function isUnspecified(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/** True for an address at buf[off] a prefix can be advertised for: not unspecified, link-local or multicast. */
function isGlobalUnicast(buf: Uint8Array, off: number): boolean {
  const linkLocal = buf[off] === 0xfe && (buf[off + 1] & 0xc0) === 0x80;
  return buf[off] !== 0xff && !linkLocal && !isUnspecified(buf, off);
}

/** Answers neighbor and router solicitations, and advertises the router unprompted. */
export class NdpService {
  /** Set once the tap is usable (announced, or the guest spoke NDP on it): unsolicited advertisements wait for it. */
  private ready = false;
  /** When the next unsolicited advertisement is due (loop clock, ms); -1 until the first timer tick. */
  private nextRa = -1;
  /** The advertised prefix: the guest's address with its interface identifier cleared (RFC 4861 §4.6.2). */
  private readonly prefix = new Uint8Array(16);

  constructor(
    private readonly nc: NetConf,
    private readonly link: Link,
    private readonly stats: L2Stats,
  ) {}

  /**
   * Handles the ICMPv6 message in l4Len bytes at buf[l4Off] behind the IPv6 header at buf[l3Off]; returns true
   * when it is NDP (RS, RA, NS, NA), answered or not, so the caller does not pass it on.
   */
  message(buf: Uint8Array, l3Off: number, l4Off: number, l4Len: number): boolean {
    if (l4Len < 1 || l4Off < 0 || l4Off + l4Len > buf.length) return false;
    const type = buf[l4Off];
    if (type < NDP_RS || type > NDP_NA) return false;
    this.stats["ndp.requests"]++;
    this.ready = true;
    if (this.nc.noNdp || !this.nc.ip6.enabled) {
      this.stats["ndp.disabled"]++;
      return true;
    }
    const optOff = l3Off >= 0 && l3Off + IP6_HLEN <= l4Off ? ndpParse(buf, l4Off, l4Len) : -1;
    if (optOff < 0 || buf[l3Off + IP6_HOPS] !== IP6_DEFAULT_HOPS || buf[l3Off + IP6_SRC] === 0xff) {
      countMalformed(this.stats, "ndp");
      return true;
    }
    const end = l4Off + l4Len;
    if (type === NDP_NS) this.solicitation(buf, l3Off + IP6_SRC, l4Off + ND_TARGET, optOff, end);
    else if (type === NDP_RS) this.routerSolicitation(buf, l3Off + IP6_SRC, optOff, end);
    else this.stats["ndp.ignored"]++;
    return true;
  }

  /** The tap is usable: solicits the guest's address (to learn its MAC) and restarts the advertisement timer. */
  announce(): void {
    this.ready = true;
    this.nextRa = -1;
    const nc = this.nc;
    if (nc.noNdp || !nc.ip6.enabled || isUnspecified(nc.ip6.addr, 0)) return;
    const at = this.link.reserve(ICMP6_OFF + NS_NA_MSG_LEN);
    const m = at + ICMP6_OFF;
    const b = this.link.out.bytes;
    ndpNsNaEmit(b, m, NDP_NS, 0, nc.ip6.addr, 0);
    ndpOptLinkAddrEmit(b, m + NS_NA_LEN, NDP_OPT_SRC_LLADDR, nc.ourMac, 0);
    commitIcmp6(this.link, nc, at, nc.guestMac, 0, nc.ip6.addr, 0, NS_NA_MSG_LEN);
    this.stats["announce.ns"]++;
  }

  /** Sends an unsolicited advertisement when one is due; now is the loop clock in milliseconds. */
  timer(now: number): void {
    const nc = this.nc;
    if (!this.ready || nc.noRa || nc.noNdp || !nc.ip6.enabled || !this.link.connected) return;
    if (this.nextRa >= 0 && now < this.nextRa) return;
    if (this.nextRa >= 0) {
      this.advertise(ALL_NODES, 0, nc.guestMac, 0);
      this.stats["announce.ra"]++;
    }
    this.nextRa = now + RA_INTERVAL_MIN_MS + Math.random() * (RA_INTERVAL_MAX_MS - RA_INTERVAL_MIN_MS);
  }

  /** Answers the NS from the address at buf[src] for the target at buf[target] with an NA, unless it is DAD. */
  private solicitation(buf: Uint8Array, src: number, target: number, optOff: number, end: number): void {
    if (isUnspecified(buf, src)) {
      this.stats["ndp.ignored"]++;
      return;
    }
    if (buf[target] === 0xff) {
      countMalformed(this.stats, "ndp");
      return;
    }
    const at = this.link.reserve(ICMP6_OFF + NS_NA_MSG_LEN);
    const m = at + ICMP6_OFF;
    const b = this.link.out.bytes;
    ndpNsNaEmit(b, m, NDP_NA, NA_ROUTER | NA_SOLICITED | NA_OVERRIDE, buf, target);
    ndpOptLinkAddrEmit(b, m + NS_NA_LEN, NDP_OPT_TGT_LLADDR, this.nc.ourMac, 0);
    const slla = ndpOptionFind(buf, optOff, end, NDP_OPT_SRC_LLADDR);
    if (slla >= 0) commitIcmp6(this.link, this.nc, at, buf, slla + 2, buf, src, NS_NA_MSG_LEN);
    else commitIcmp6(this.link, this.nc, at, this.nc.guestMac, 0, buf, src, NS_NA_MSG_LEN);
    this.stats["ndp.replies"]++;
  }

  /** Answers the RS from the address at buf[src] with an RA, to it, or to all nodes when it is unspecified. */
  private routerSolicitation(buf: Uint8Array, src: number, optOff: number, end: number): void {
    if (this.nc.noRa) {
      this.stats["ndp.disabled"]++;
      return;
    }
    const slla = ndpOptionFind(buf, optOff, end, NDP_OPT_SRC_LLADDR);
    if (isUnspecified(buf, src)) this.advertise(ALL_NODES, 0, this.nc.guestMac, 0);
    else if (slla >= 0) this.advertise(buf, src, buf, slla + 2);
    else this.advertise(buf, src, this.nc.guestMac, 0);
    this.stats["ndp.replies"]++;
  }

  /** Sends an RA to the address at dst[dstOff], through the MAC at mac[macOff] unless dst is multicast. */
  private advertise(dst: Uint8Array, dstOff: number, mac: Uint8Array, macOff: number): void {
    const nc = this.nc;
    const at = this.link.reserve(ICMP6_OFF + RA_MAX);
    const m = at + ICMP6_OFF;
    const b = this.link.out.bytes;
    let p = m + ndpRaEmit(b, m, RA_HEADER);
    if (isGlobalUnicast(nc.ip6.addr, 0)) {
      copyBytes(this.prefix, 0, nc.ip6.addr, 0, 8);
      const flags = PREFIX_ONLINK | PREFIX_AUTONOMOUS;
      p += ndpOptPrefixEmit(b, p, PREFIX_LEN, flags, INFINITE, INFINITE, this.prefix, 0);
    }
    if (nc.mtu !== 0) p += ndpOptMtuEmit(b, p, nc.mtu);
    const dns = nc.ip6.dns;
    if (nc.dhcpDns && dns.length > 0) {
      const rdnss = ndpOptRdnssEmit(b, p, INFINITE, dns.length > MAX_DNS ? dns.slice(0, MAX_DNS) : dns);
      p += rdnss;
      // RFC 8106 pairs the search list with servers: without RDNSS a DNSSL is of no use.
      if (rdnss > 0 && nc.dhcpSearch) p += this.dnssl(b, p);
    }
    p += ndpOptLinkAddrEmit(b, p, NDP_OPT_SRC_LLADDR, nc.ourMac, 0);
    commitIcmp6(this.link, nc, at, mac, macOff, dst, dstOff, p - m);
  }

  /** Writes the DNSSL option at b[p] for the search domains that encode; returns its length (0: none). */
  private dnssl(b: Uint8Array, p: number): number {
    const names = encodableDomains(this.nc.searchDomains);
    return names.length > 0 ? ndpOptDnsslEmit(b, p, INFINITE, names) : 0;
  }
}


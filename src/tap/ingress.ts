/**
 * Frames from the guest, whichever link they came on: Ethernet, then IPv4/IPv6 validation, then the service or
 * flow that handles them. Every frame that is truncated, malformed or of a kind orzo does not handle is counted
 * by reason and dropped; nothing here throws on guest input.
 *
 * Along the way the guest's MAC and its addresses are learned from what it sends (doc/tap-l2.md §6), so
 * replies reach it even before DHCP and inbound connections go to the address it really uses.
 */
import type { EventLoop } from "../loop.ts";
import type { NetConf } from "../netconf.ts";
import { PingFlows } from "../flows/ping.ts";
import { TcpFlows } from "../flows/tcp.ts";
import { TcpTapInput } from "../flows/tcp_tap.ts";
import { UdpFlows } from "../flows/udp.ts";
import { L2Services } from "../services/l2.ts";
import { log } from "../log.ts";
import { ETH_HLEN, ETH_SRC, ETH_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, formatMac, macEqual, macIsMulticast } from "../wire/ethernet.ts";
import { copyBytes, rd16 } from "../wire/bytes.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3Info } from "../wire/ip.ts";
import { IP4_DST, IP4_SRC, ipv4Parse } from "../wire/ipv4.ts";
import { IP6_DST, IP6_SRC, ipv6Parse } from "../wire/ipv6.ts";
import { UDP_HLEN } from "../wire/udp.ts";
import { inanyFromIPv4 } from "../wire/inany.ts";
import type { FrameSink, Link } from "./link.ts";

/** Why frames from the guest were dropped. */
export interface IngressDrops {
  runt: number;
  ethertype: number;
  ipv4Malformed: number;
  ipv6Malformed: number;
  fragment: number;
  loopback: number;
  protocol: number;
  udpMalformed: number;
  /** --no-icmp, --no-tcp, --no-udp: that protocol is switched off. */
  icmpOff: number;
  tcpOff: number;
  udpOff: number;
  /** -6 and -4: that IP version is switched off, ARP included with IPv4. */
  ipv4Off: number;
  ipv6Off: number;
}

/** Dispatches frames from the guest to the L2 services and flows. */
export class L2Ingress implements FrameSink {
  /** Frames accepted, by kind. */
  readonly counts = { frames: 0, arp: 0, ipv4: 0, ipv6: 0 };
  /** Frames dropped, by reason. */
  readonly drops: IngressDrops = {
    runt: 0, ethertype: 0, ipv4Malformed: 0, ipv6Malformed: 0, fragment: 0, loopback: 0, protocol: 0, udpMalformed: 0,
    icmpOff: 0, tcpOff: 0, udpOff: 0, ipv4Off: 0, ipv6Off: 0,
  };
  private readonly info = new L3Info();
  private services: L2Services | undefined;
  private ping: PingFlows | undefined;
  /** UDP flows (set by attach). */
  udp: UdpFlows | undefined;
  /** TCP connections (set by attach). */
  tcp: TcpFlows | undefined;
  /** TCP segments from the guest (set by attach). */
  tcpInput: TcpTapInput | undefined;

  constructor(private readonly nc: NetConf) {}

  /** Connects the ingress to its link and loop: services reply through the link; ping flows live in the loop. */
  attach(loop: EventLoop, link: Link, announce: boolean): void {
    this.services = new L2Services(this.nc, link);
    this.ping = new PingFlows(loop, this.nc, link);
    this.udp = new UdpFlows(loop, this.nc, link);
    this.tcp = new TcpFlows(loop, this.nc, link);
    this.tcpInput = new TcpTapInput(this.tcp, this.nc);
    loop.every(1000, (now) => this.services!.timer(now));
    if (announce) this.services.announce(performance.now());
  }

  /** The link became usable later (passt: a guest connected): solicit the guest's addresses to learn its MAC. */
  announce(now: number): void {
    this.services?.announce(now);
  }

  /** One frame from the guest. */
  frame(buf: Uint8Array, addr: number, off: number, len: number, now: number): void {
    this.counts.frames++;
    if (len < ETH_HLEN) {
      this.drops.runt++;
      return;
    }
    const type = rd16(buf, off + ETH_TYPE);
    const l3 = off + ETH_HLEN;
    const l3Len = len - ETH_HLEN;
    // An IP version switched off (-4, -6) takes nothing from the guest (IPv4 with its ARP), as if the link did
    // not carry it.
    if (type === ETHERTYPE_IPV6) {
      if (this.nc.ip6.enabled) this.ipv6(buf, addr, off, l3, l3Len, now);
      else this.drops.ipv6Off++;
    } else if (type !== ETHERTYPE_IPV4 && type !== ETHERTYPE_ARP) {
      this.drops.ethertype++;
    } else if (!this.nc.ip4.enabled) {
      this.drops.ipv4Off++;
    } else if (type === ETHERTYPE_ARP) {
      this.counts.arp++;
      this.learnMac(buf, off + ETH_SRC);
      this.services?.arp(buf, l3, l3Len);
    } else {
      this.ipv4(buf, addr, off, l3, l3Len, now);
    }
  }

  private ipv4(buf: Uint8Array, addr: number, frame: number, l3: number, len: number, now: number): void {
    const info = this.info;
    if (ipv4Parse(buf, l3, len, info) < 0) {
      this.drops.ipv4Malformed++;
      return;
    }
    if (info.fragment) {
      this.drops.fragment++;
      return;
    }
    if (buf[l3 + IP4_SRC] === 127 || buf[l3 + IP4_DST] === 127) {
      this.drops.loopback++;
      return;
    }
    this.counts.ipv4++;
    const ip4 = this.nc.ip4;
    const src = l3 + IP4_SRC;
    this.learnMac(buf, frame + ETH_SRC);
    // Only a unicast source is an address of the guest's (not 0.0.0.0 from DHCP, not multicast or broadcast).
    if (!ip4.addrFixed && buf[src] !== 0 && buf[src] < 224) inanyFromIPv4(ip4.addrSeen, 0, buf, src);
    switch (info.proto) {
      case IPPROTO_ICMP:
        if (this.nc.noIcmp) this.drops.icmpOff++;
        else this.ping?.fromTap(buf, addr, l3, info.l4Off, info.l4Len, false, now);
        return;
      case IPPROTO_UDP:
        if (info.l4Len < UDP_HLEN) {
          this.drops.udpMalformed++;
          return;
        }
        // DHCP is a service of the link, not UDP forwarding: --no-udp leaves it alone, as in pasta.
        if (rd16(buf, info.l4Off + 2) === 67) this.services?.dhcp(buf, frame, l3, info.l4Off, info.l4Len);
        else if (this.nc.noUdp) this.drops.udpOff++;
        else this.udp?.fromTap(buf, addr, l3, info.l4Off, info.l4Len, false, now);
        return;
      case IPPROTO_TCP:
        if (this.nc.noTcp) this.drops.tcpOff++;
        else this.tcpInput?.fromTap(buf, addr, l3, info.l4Off, info.l4Len, false, now);
        return;
      default:
        this.drops.protocol++;
    }
  }

  private ipv6(buf: Uint8Array, addr: number, frame: number, l3: number, len: number, now: number): void {
    const info = this.info;
    if (ipv6Parse(buf, l3, len, info) < 0) {
      this.drops.ipv6Malformed++;
      return;
    }
    if (info.fragment) {
      this.drops.fragment++;
      return;
    }
    if (isLoopback6(buf, l3 + IP6_SRC) || isLoopback6(buf, l3 + IP6_DST)) {
      this.drops.loopback++;
      return;
    }
    this.counts.ipv6++;
    this.learnMac(buf, frame + ETH_SRC);
    this.learnAddress6(buf, l3 + IP6_SRC);
    switch (info.proto) {
      case IPPROTO_ICMPV6:
        if (this.services?.ndp(buf, l3, info.l4Off, info.l4Len, now)) return;
        if (this.nc.noIcmp) this.drops.icmpOff++;
        else this.ping?.fromTap(buf, addr, l3, info.l4Off, info.l4Len, true, now);
        return;
      case IPPROTO_UDP:
        if (info.l4Len < UDP_HLEN) {
          this.drops.udpMalformed++;
          return;
        }
        if (rd16(buf, info.l4Off + 2) === 547) this.services?.dhcpv6(buf, frame, l3, info.l4Off, info.l4Len);
        else if (this.nc.noUdp) this.drops.udpOff++;
        else this.udp?.fromTap(buf, addr, l3, info.l4Off, info.l4Len, true, now);
        return;
      case IPPROTO_TCP:
        if (this.nc.noTcp) this.drops.tcpOff++;
        else this.tcpInput?.fromTap(buf, addr, l3, info.l4Off, info.l4Len, true, now);
        return;
      default:
        this.drops.protocol++;
    }
  }

  /** Datagrams queued over the frames handed on so far are sent; bytes the guest acknowledged are discarded. */
  flushInput(): void {
    this.udp?.flushSends();
    this.tcp?.io.flushDiscards();
  }

  /** The guest's MAC follows the source of its frames (multicast sources are bogus and ignored). */
  private learnMac(buf: Uint8Array, off: number): void {
    const mac = this.nc.guestMac;
    if (macIsMulticast(buf, off) || macEqual(buf, off, mac, 0)) return;
    mac.set(buf.subarray(off, off + 6));
    log.debug(`guest MAC is now ${formatMac(mac, 0)}`);
  }

  /** A link-local source is the guest's link-local address; a global one its address, unless -a fixed it. */
  private learnAddress6(buf: Uint8Array, off: number): void {
    const ip6 = this.nc.ip6;
    if (isUnspecified6(buf, off)) return;
    // Called for every IPv6 frame: copy in place, without a subarray per frame.
    if (buf[off] === 0xfe && (buf[off + 1] & 0xc0) === 0x80) {
      copyBytes(ip6.addrLinkLocalSeen, 0, buf, off, 16);
    } else if (!ip6.addrFixed && (buf[off] & 0xe0) === 0x20) {
      copyBytes(ip6.addrSeen, 0, buf, off, 16);
    }
  }
}

function isUnspecified6(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== 0) return false;
  return true;
}

function isLoopback6(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 15; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 15] === 1;
}

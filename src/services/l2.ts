/**
 * The L2 services in one place: what the tap ingress hands ARP, NDP, DHCP and DHCPv6 traffic to.
 *
 * orzo plays every other host on the guest's link (doc/tap-l2.md §7, §9-§13): it answers address resolution
 * for any address with its own MAC, advertises itself as the router, and hands out the guest's addressing over
 * DHCP and DHCPv6, so that a guest configured by any ordinary means ends up with the addressing NetConf holds.
 * Each protocol lives in its own file; this class routes to them, shares one set of counters, and carries the two
 * events that are not answers to the guest: the initial solicitations once the tap is usable, and the periodic
 * router advertisements.
 *
 * Everything sent is built in place in the link's output arena and queued; the link writes it out with the rest
 * of the loop cycle's frames. Nothing here throws on input from the guest: each malformed message is counted and
 * dropped.
 */
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { ArpService } from "./arp.ts";
import { DhcpService } from "./dhcp.ts";
import { Dhcpv6Service } from "./dhcpv6.ts";
import { NdpService } from "./ndp.ts";
import { type L2Stats, newL2Stats } from "./stats.ts";

/** ARP, NDP, DHCP and DHCPv6 toward the guest. */
export class L2Services {
  /** Counters: requests seen, replies sent, and drops by reason (see stats.ts for the names). */
  readonly stats: Record<string, number>;
  private readonly arpService: ArpService;
  private readonly ndpService: NdpService;
  private readonly dhcpService: DhcpService;
  private readonly dhcpv6Service: Dhcpv6Service;

  constructor(nc: NetConf, link: Link) {
    const stats: L2Stats = newL2Stats();
    this.stats = stats;
    this.arpService = new ArpService(nc, link, stats);
    this.ndpService = new NdpService(nc, link, stats);
    this.dhcpService = new DhcpService(nc, link, stats);
    this.dhcpv6Service = new Dhcpv6Service(nc, link, stats);
  }

  /** An ARP packet at buf[off, off+len) (after the Ethernet header); replies go to link. */
  arp(buf: Uint8Array, off: number, len: number): void {
    this.arpService.packet(buf, off, len);
  }

  /**
   * An ICMPv6 message at buf[l4Off, l4Off+l4Len), IPv6 header at l3Off; true if it was NDP (types 133-136),
   * handled or swallowed (--no-ndp). now: the loop clock in milliseconds.
   */
  ndp(buf: Uint8Array, l3Off: number, l4Off: number, l4Len: number, _now: number): boolean {
    return this.ndpService.message(buf, l3Off, l4Off, l4Len);
  }

  /**
   * A UDP datagram to port 67 (UDP header at l4Off, IPv4 header at l3Off, frame from the guest with source MAC at
   * frameOff+6).
   */
  dhcp(buf: Uint8Array, frameOff: number, l3Off: number, l4Off: number, l4Len: number): void {
    this.dhcpService.request(buf, frameOff, l3Off, l4Off, l4Len);
  }

  /** A UDP datagram to port 547 (IPv6 header at l3Off). */
  dhcpv6(buf: Uint8Array, frameOff: number, l3Off: number, l4Off: number, l4Len: number): void {
    this.dhcpv6Service.request(buf, frameOff, l3Off, l4Off, l4Len);
  }

  /**
   * The tap is usable: send the initial ARP request for the guest's address and the NS for its IPv6 address
   * (doc/tap-l2.md §9, §10), and start the router advertisement timer.
   */
  announce(_now: number): void {
    this.arpService.announce();
    this.ndpService.announce();
  }

  /**
   * Called about once a second (now: the loop clock in milliseconds): unsolicited RAs every 200-600 s
   * (doc/tap-l2.md §10).
   */
  timer(now: number): void {
    this.ndpService.timer(now);
  }
}

/**
 * The ARP proxy (doc/tap-l2.md §9).
 *
 * The guest's link has no other hosts on it: every address the guest could want to reach is really behind orzo.
 * So every ARP request is answered with our own MAC (there is no neighbour table yet), whatever address it asks
 * for, and the guest sends everything to us. Two kinds of request stay unanswered, because an answer would make
 * the guest believe its own address is taken: requests for the guest's assigned (or currently used) address, and
 * announcements (sender address = target address; a probe from 0.0.0.0 is not one and is answered like any
 * request). Replies from the guest (to our initial request) carry nothing we need: the tap ingress learns the
 * guest's MAC from every frame.
 *
 * Once the tap is usable, one broadcast request asks for the guest's assigned address, so its answer shows the
 * guest's MAC before the guest sends anything else.
 */
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { bytesEqual } from "../wire/bytes.ts";
import { ARP_LEN, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA, arpEmit, arpParse } from "../wire/arp.ts";
import { ETH_HLEN, ETHERTYPE_ARP, MAC_BROADCAST, ethEmit } from "../wire/ethernet.ts";
import { INANY_V4_OFF } from "../wire/ip.ts";
import { type L2Stats, countMalformed } from "./stats.ts";

/** Length of an ARP frame before padding. */
const ARP_FRAME_LEN = ETH_HLEN + ARP_LEN;
/** The target MAC of a request: unknown, so zero (RFC 5227 §2.1.1). */
const MAC_ZERO = new Uint8Array(6);

/** Answers ARP requests from the guest for every address but its own. */
export class ArpService {
  constructor(
    private readonly nc: NetConf,
    private readonly link: Link,
    private readonly stats: L2Stats,
  ) {}

  /** Handles the ARP packet in len bytes at buf[off] (after the Ethernet header). */
  packet(buf: Uint8Array, off: number, len: number): void {
    this.stats["arp.requests"]++;
    if (!this.nc.ip4.enabled) {
      this.stats["arp.disabled"]++;
      return;
    }
    const op = arpParse(buf, off, len);
    if (op < 0) {
      countMalformed(this.stats, "arp");
      return;
    }
    if (op !== ARP_REQUEST || !this.wanted(buf, off)) {
      this.stats["arp.ignored"]++;
      return;
    }
    const b = this.link.out.bytes;
    const at = this.link.reserve(ARP_FRAME_LEN);
    // The answer goes to the requester's MAC, as the sender of "target IP is at our MAC".
    ethEmit(b, at, buf, off + ARP_SHA, this.nc.ourMac, 0, ETHERTYPE_ARP);
    arpEmit(b, at + ETH_HLEN, ARP_REPLY, this.nc.ourMac, 0, buf, off + ARP_TPA, buf, off + ARP_SHA, buf, off + ARP_SPA);
    this.link.commit(ARP_FRAME_LEN);
    this.stats["arp.replies"]++;
  }

  /** Sends the broadcast request for the guest's assigned address, from our tap address. */
  announce(): void {
    const ip4 = this.nc.ip4;
    if (!ip4.enabled) return;
    const b = this.link.out.bytes;
    const at = this.link.reserve(ARP_FRAME_LEN);
    ethEmit(b, at, MAC_BROADCAST, 0, this.nc.ourMac, 0, ETHERTYPE_ARP);
    arpEmit(
      b, at + ETH_HLEN, ARP_REQUEST, this.nc.ourMac, 0, ip4.ourTapAddr, INANY_V4_OFF,
      MAC_ZERO, 0, ip4.addr, INANY_V4_OFF,
    );
    this.link.commit(ARP_FRAME_LEN);
    this.stats["announce.arp"]++;
  }

  /** True when the (valid) request at buf[off] gets an answer: not an announcement, not for the guest itself. */
  private wanted(buf: Uint8Array, off: number): boolean {
    const sip = off + ARP_SPA;
    const tip = off + ARP_TPA;
    const fromZero = (buf[sip] | buf[sip + 1] | buf[sip + 2] | buf[sip + 3]) === 0;
    if (!fromZero && bytesEqual(buf, sip, buf, tip, 4)) return false;
    const ip4 = this.nc.ip4;
    // addrSeen too: a guest configured by hand with another address must pass its own duplicate detection.
    return !bytesEqual(buf, tip, ip4.addr, INANY_V4_OFF, 4) && !bytesEqual(buf, tip, ip4.addrSeen, INANY_V4_OFF, 4);
  }
}

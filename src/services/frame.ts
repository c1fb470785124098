/**
 * Building the frames the L2 services send: Ethernet, IPv4 or IPv6, then UDP or ICMPv6, in place in the link's
 * output arena.
 *
 * A service reserves room, writes its payload at the fixed offset these layouts give (UDP4_DATA, UDP6_DATA,
 * ICMP6_OFF), then calls one commit function, which writes the headers in front of it, computes the checksums
 * over the finished bytes and commits the frame. Every generated frame comes from our MAC and our tap address (IPv4) or
 * link-local address (IPv6), with TTL / hop limit 255 (the value NDP requires, and harmless elsewhere).
 */
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { copyBytes } from "../wire/bytes.ts";
import { ETH_ALEN, ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit } from "../wire/ethernet.ts";
import { icmp6SetChecksum } from "../wire/icmpv6.ts";
import { INANY_V4_OFF, IPPROTO_ICMPV6, IPPROTO_UDP } from "../wire/ip.ts";
import { IP4_HLEN, ipv4Emit } from "../wire/ipv4.ts";
import { IP6_HLEN, ipv6Emit } from "../wire/ipv6.ts";
import { UDP_HLEN, udpEmit, udpSetChecksum4, udpSetChecksum6 } from "../wire/udp.ts";

/** Offset of the UDP payload in a UDP/IPv4 frame. */
export const UDP4_DATA = ETH_HLEN + IP4_HLEN + UDP_HLEN;
/** Offset of the ICMPv6 message in an ICMPv6 frame. */
export const ICMP6_OFF = ETH_HLEN + IP6_HLEN;
/** Offset of the UDP payload in a UDP/IPv6 frame. */
export const UDP6_DATA = ETH_HLEN + IP6_HLEN + UDP_HLEN;

/** Scratch for the destination MAC of an IPv6 frame. */
const dstMacScratch = new Uint8Array(ETH_ALEN);

/**
 * The MAC an IPv6 packet for the address at dst[dstOff] goes to: the 33:33 multicast mapping (RFC 2464 §7) for a
 * multicast address, else the unicast MAC at unicast[unicastOff]. Returned in a scratch array, at offset 0.
 */
function ipv6DstMac(dst: Uint8Array, dstOff: number, unicast: Uint8Array, unicastOff: number): Uint8Array {
  if (dst[dstOff] === 0xff) {
    dstMacScratch[0] = 0x33;
    dstMacScratch[1] = 0x33;
    copyBytes(dstMacScratch, 2, dst, dstOff + 12, 4);
  } else {
    copyBytes(dstMacScratch, 0, unicast, unicastOff, ETH_ALEN);
  }
  return dstMacScratch;
}

/**
 * Finishes a UDP/IPv4 frame whose payloadLen bytes are already at at + UDP4_DATA: headers from our MAC and tap
 * address to the MAC at dstMac[dstMacOff] and the 4-byte address at dst4[dst4Off], checksums, commit.
 */
export function commitUdp4(
  link: Link, nc: NetConf, at: number, dstMac: Uint8Array, dstMacOff: number, dst4: Uint8Array, dst4Off: number,
  sport: number, dport: number, payloadLen: number,
): void {
  commitUdp4From(link, nc, at, nc.ip4.ourTapAddr, INANY_V4_OFF, dstMac, dstMacOff, dst4, dst4Off, sport, dport, payloadLen);
}

/** commitUdp4 from the 4-byte source address at src4[src4Off] instead of our tap address (UDP flows). */
export function commitUdp4From(
  link: Link, nc: NetConf, at: number, src4: Uint8Array, src4Off: number, dstMac: Uint8Array, dstMacOff: number,
  dst4: Uint8Array, dst4Off: number, sport: number, dport: number, payloadLen: number,
): void {
  const b = link.out.bytes;
  const ip = at + ETH_HLEN;
  const udp = ip + IP4_HLEN;
  ethEmit(b, at, dstMac, dstMacOff, nc.ourMac, 0, ETHERTYPE_IPV4);
  ipv4Emit(b, ip, src4, src4Off, dst4, dst4Off, IPPROTO_UDP, UDP_HLEN + payloadLen);
  udpEmit(b, udp, sport, dport, payloadLen);
  udpSetChecksum4(b, ip, udp, UDP_HLEN + payloadLen);
  link.commit(UDP4_DATA + payloadLen);
}

/**
 * Finishes a UDP/IPv6 frame whose payloadLen bytes are already at at + UDP6_DATA: headers from our MAC and
 * link-local address to the 16-byte address at dst[dstOff] (and the MAC at mac[macOff] unless the address is
 * multicast), checksum (a computed zero goes out as 0xffff), commit.
 */
export function commitUdp6(
  link: Link, nc: NetConf, at: number, mac: Uint8Array, macOff: number, dst: Uint8Array, dstOff: number,
  sport: number, dport: number, payloadLen: number, flowLabel: number,
): void {
  commitUdp6From(link, nc, at, nc.ip6.ourTapLinkLocal, 0, mac, macOff, dst, dstOff, sport, dport, payloadLen, flowLabel);
}

/** commitUdp6 from the 16-byte source address at src[srcOff] instead of our link-local address (UDP flows). */
export function commitUdp6From(
  link: Link, nc: NetConf, at: number, src: Uint8Array, srcOff: number, mac: Uint8Array, macOff: number,
  dst: Uint8Array, dstOff: number, sport: number, dport: number, payloadLen: number, flowLabel: number,
): void {
  const b = link.out.bytes;
  const ip = at + ETH_HLEN;
  const udp = ip + IP6_HLEN;
  ethEmit(b, at, ipv6DstMac(dst, dstOff, mac, macOff), 0, nc.ourMac, 0, ETHERTYPE_IPV6);
  ipv6Emit(b, ip, src, srcOff, dst, dstOff, IPPROTO_UDP, UDP_HLEN + payloadLen, flowLabel);
  udpEmit(b, udp, sport, dport, payloadLen);
  udpSetChecksum6(b, ip, udp, UDP_HLEN + payloadLen);
  link.commit(UDP6_DATA + payloadLen);
}

/**
 * Finishes an ICMPv6 frame whose msgLen-byte message is already at at + ICMP6_OFF: headers from our MAC and
 * link-local address to the 16-byte address at dst[dstOff] (MAC as for commitUdp6), checksum, commit.
 */
export function commitIcmp6(
  link: Link, nc: NetConf, at: number, mac: Uint8Array, macOff: number, dst: Uint8Array, dstOff: number, msgLen: number,
): void {
  const b = link.out.bytes;
  const ip = at + ETH_HLEN;
  ethEmit(b, at, ipv6DstMac(dst, dstOff, mac, macOff), 0, nc.ourMac, 0, ETHERTYPE_IPV6);
  ipv6Emit(b, ip, nc.ip6.ourTapLinkLocal, 0, dst, dstOff, IPPROTO_ICMPV6, msgLen);
  icmp6SetChecksum(b, ip, ip + IP6_HLEN, msgLen);
  link.commit(ICMP6_OFF + msgLen);
}

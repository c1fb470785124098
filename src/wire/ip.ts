/**
 * What IPv4 and IPv6 share: protocol numbers, and the result of parsing either header.
 *
 * Both parsers fill the same L3Info, so code behind them (the tap ingress, the flow lookup) dispatches on protocol
 * without caring which family it came from. The caller owns one L3Info for its whole life: no allocation per packet.
 */

/** IANA protocol number of ICMP. */
export const IPPROTO_ICMP = 1;
/** IANA protocol number of TCP. */
export const IPPROTO_TCP = 6;
/** IANA protocol number of UDP. */
export const IPPROTO_UDP = 17;
/** IANA protocol number of ICMPv6. */
export const IPPROTO_ICMPV6 = 58;

/** Offset of the IPv4 address inside an IPv4-mapped inany address. */
export const INANY_V4_OFF = 12;

/** Where an IP packet's payload is: filled by ipv4Parse and ipv6Parse, reused across packets. */
export class L3Info {
  /** Upper-layer protocol (IPv6: after the extension headers). */
  proto = 0;
  /** Absolute offset of the upper-layer header in the buffer. */
  l4Off = 0;
  /** Length of the upper-layer header and payload, padding excluded. */
  l4Len = 0;
  /** True for a fragment (IPv4 MF or offset, IPv6 Fragment header): its L4 header may be absent or partial. */
  fragment = false;
}

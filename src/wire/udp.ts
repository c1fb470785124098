/**
 * UDP header (RFC 768): source port, destination port, length, checksum; 8 bytes.
 *
 * The length field covers header and payload and must fit the L4 bytes the IP layer delivered (which already
 * excludes Ethernet padding). The checksum covers a pseudo-header: over IPv4 a zero checksum means "none", so a
 * computed 0 is sent as 0xffff; over IPv6 the checksum is mandatory and a zero one is invalid (RFC 8200 §8.1).
 */
import { rd16, wr16 } from "./bytes.ts";
import { l4Checksum4, l4Checksum6 } from "./checksum.ts";
import { IPPROTO_UDP } from "./ip.ts";

/** Offset of the source port. */
export const UDP_SPORT = 0;
/** Offset of the destination port. */
export const UDP_DPORT = 2;
/** Offset of the length. */
export const UDP_LEN = 4;
/** Offset of the checksum. */
export const UDP_CSUM = 6;
/** Length of the header. */
export const UDP_HLEN = 8;

/** Validates the UDP header in len bytes at buf[off]; returns the datagram length (header included), or -1. */
export function udpParse(buf: Uint8Array, off: number, len: number): number {
  if (len < UDP_HLEN || off < 0 || off + len > buf.length) return -1;
  const ulen = rd16(buf, off + UDP_LEN);
  return ulen < UDP_HLEN || ulen > len ? -1 : ulen;
}

/** Writes a UDP header at buf[off] with a zero checksum; returns 8, or 0 when it does not fit or is too long. */
export function udpEmit(buf: Uint8Array, off: number, sport: number, dport: number, payloadLen: number): number {
  if (off < 0 || off + UDP_HLEN > buf.length || payloadLen < 0 || payloadLen > 0xffff - UDP_HLEN) return 0;
  wr16(buf, off + UDP_SPORT, sport);
  wr16(buf, off + UDP_DPORT, dport);
  wr16(buf, off + UDP_LEN, UDP_HLEN + payloadLen);
  wr16(buf, off + UDP_CSUM, 0);
  return UDP_HLEN;
}

/** Fills the checksum of the udpLen-byte datagram at buf[udpOff] behind the IPv4 header at buf[ipOff]. */
export function udpSetChecksum4(buf: Uint8Array, ipOff: number, udpOff: number, udpLen: number): void {
  wr16(buf, udpOff + UDP_CSUM, 0);
  wr16(buf, udpOff + UDP_CSUM, l4Checksum4(buf, ipOff, udpOff, udpLen) || 0xffff);
}

/** Fills the checksum of the udpLen-byte datagram at buf[udpOff] behind the IPv6 header at buf[ipOff]. */
export function udpSetChecksum6(buf: Uint8Array, ipOff: number, udpOff: number, udpLen: number): void {
  wr16(buf, udpOff + UDP_CSUM, 0);
  wr16(buf, udpOff + UDP_CSUM, l4Checksum6(buf, ipOff, IPPROTO_UDP, udpOff, udpLen) || 0xffff);
}

/** True when the datagram's checksum is absent (0) or correct, behind the IPv4 header at buf[ipOff]. */
export function udpChecksumOk4(buf: Uint8Array, ipOff: number, udpOff: number, udpLen: number): boolean {
  return rd16(buf, udpOff + UDP_CSUM) === 0 || l4Checksum4(buf, ipOff, udpOff, udpLen) === 0;
}

/** True when the datagram's checksum is present and correct, behind the IPv6 header at buf[ipOff]. */
export function udpChecksumOk6(buf: Uint8Array, ipOff: number, udpOff: number, udpLen: number): boolean {
  return rd16(buf, udpOff + UDP_CSUM) !== 0 && l4Checksum6(buf, ipOff, IPPROTO_UDP, udpOff, udpLen) === 0;
}

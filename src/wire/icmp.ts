/**
 * ICMP for IPv4 (RFC 792): type, code, checksum, then 4 type-specific bytes; echo uses them as identifier and
 * sequence number. The checksum covers the whole message and, unlike UDP/TCP/ICMPv6, no pseudo-header.
 *
 * orzo relays echo requests from the guest and echo replies back, and translates host socket errors into
 * destination-unreachable / time-exceeded messages whose body quotes the offending packet.
 */
import { rd16, wr16, wr32 } from "./bytes.ts";
import { csumFinish, csumPartial } from "./checksum.ts";

/** Offset of the type. */
export const ICMP_TYPE = 0;
/** Offset of the code. */
export const ICMP_CODE = 1;
/** Offset of the checksum. */
export const ICMP_CSUM = 2;
/** Offset of the echo identifier. */
export const ICMP_ID = 4;
/** Offset of the echo sequence number. */
export const ICMP_SEQ = 6;
/** Offset of the 4 type-specific bytes of error messages (e.g. next-hop MTU in the low half). */
export const ICMP_INFO = 4;
/** Length of the header. */
export const ICMP_HLEN = 8;

/** Type of an echo reply. */
export const ICMP_ECHO_REPLY = 0;
/** Type of a destination unreachable. */
export const ICMP_DEST_UNREACH = 3;
/** Type of an echo request. */
export const ICMP_ECHO_REQUEST = 8;
/** Type of a time exceeded. */
export const ICMP_TIME_EXCEEDED = 11;
/** Destination-unreachable code "fragmentation needed and DF set". */
export const ICMP_FRAG_NEEDED = 4;

/** Validates the ICMP message in len bytes at buf[off]; returns its type, or -1 when shorter than a header. */
export function icmpParse(buf: Uint8Array, off: number, len: number): number {
  if (len < ICMP_HLEN || off < 0 || off + len > buf.length) return -1;
  return buf[off + ICMP_TYPE];
}

/** True when the checksum of the len-byte message at buf[off] is correct. */
export function icmpChecksumOk(buf: Uint8Array, off: number, len: number): boolean {
  return csumFinish(csumPartial(buf, off, len, 0)) === 0;
}

/** Recomputes the checksum of the len-byte message at buf[off] (after an identifier rewrite, for instance). */
export function icmpSetChecksum(buf: Uint8Array, off: number, len: number): void {
  wr16(buf, off + ICMP_CSUM, 0);
  wr16(buf, off + ICMP_CSUM, csumFinish(csumPartial(buf, off, len, 0)));
}

/**
 * Writes an echo header (ICMP_ECHO_REQUEST or ICMP_ECHO_REPLY) at buf[off] for the payloadLen bytes already
 * behind it, checksum included; returns 8, or 0 when header and payload do not fit.
 */
export function icmpEchoEmit(buf: Uint8Array, off: number, type: number, id: number, seq: number, payloadLen: number): number {
  if (off < 0 || payloadLen < 0 || off + ICMP_HLEN + payloadLen > buf.length) return 0;
  buf[off + ICMP_TYPE] = type;
  buf[off + ICMP_CODE] = 0;
  wr16(buf, off + ICMP_ID, id);
  wr16(buf, off + ICMP_SEQ, seq);
  icmpSetChecksum(buf, off, ICMP_HLEN + payloadLen);
  return ICMP_HLEN;
}

/**
 * Writes an error header (type, code, 32-bit info) at buf[off] for the bodyLen bytes of quoted packet already
 * behind it, checksum included; returns 8, or 0 when header and body do not fit.
 */
export function icmpErrorEmit(buf: Uint8Array, off: number, type: number, code: number, info: number, bodyLen: number): number {
  if (off < 0 || bodyLen < 0 || off + ICMP_HLEN + bodyLen > buf.length) return 0;
  buf[off + ICMP_TYPE] = type;
  buf[off + ICMP_CODE] = code;
  wr32(buf, off + ICMP_INFO, info);
  icmpSetChecksum(buf, off, ICMP_HLEN + bodyLen);
  return ICMP_HLEN;
}

/** Reads the echo identifier of the message at buf[off]. */
export function icmpEchoId(buf: Uint8Array, off: number): number {
  return rd16(buf, off + ICMP_ID);
}

/** Reads the echo sequence number of the message at buf[off]. */
export function icmpEchoSeq(buf: Uint8Array, off: number): number {
  return rd16(buf, off + ICMP_SEQ);
}

/**
 * IPv4 header (RFC 791): 20 bytes plus options (IHL counts 32-bit words), big-endian fields.
 *
 * Ingress rules: IHL ≥ 5, the header fits, and the total length fits the bytes received; anything beyond the
 * total length is Ethernet padding and is trimmed (L3Info.l4Len excludes it). A fragment (MF set or a non-zero
 * offset) is flagged, never reassembled. The header checksum is checked separately (ipv4ChecksumOk), since the
 * tap side's frames come from the local kernel.
 *
 * Egress headers are always 20 bytes: version 4, IHL 5, TOS 0, ID 0, DF, TTL 255 unless told otherwise.
 * Addresses are 4 bytes at a caller's offset; for an inany pass its offset + INANY_V4_OFF.
 */
import { copyBytes, rd16, wr16 } from "./bytes.ts";
import { csumFinish, csumPartial } from "./checksum.ts";
import { inanyFromIPv4 } from "./inany.ts";
import type { L3Info } from "./ip.ts";

/** Offset of version (high nibble) and IHL (low nibble). */
export const IP4_VER_IHL = 0;
/** Offset of the type of service / DSCP+ECN byte. */
export const IP4_TOS = 1;
/** Offset of the total length. */
export const IP4_TOT_LEN = 2;
/** Offset of the identification. */
export const IP4_ID = 4;
/** Offset of the flags and fragment offset. */
export const IP4_FRAG = 6;
/** Offset of the time to live. */
export const IP4_TTL = 8;
/** Offset of the protocol. */
export const IP4_PROTO = 9;
/** Offset of the header checksum. */
export const IP4_CSUM = 10;
/** Offset of the source address. */
export const IP4_SRC = 12;
/** Offset of the destination address. */
export const IP4_DST = 16;
/** Length of a header without options. */
export const IP4_HLEN = 20;
/** Largest total length. */
export const IP4_MAX_LEN = 0xffff;

/** Don't Fragment flag in the IP4_FRAG field. */
export const IP4_DF = 0x4000;
/** More Fragments flag in the IP4_FRAG field. */
export const IP4_MF = 0x2000;
/** Fragment offset bits (in 8-byte units) of the IP4_FRAG field. */
export const IP4_OFFSET_MASK = 0x1fff;
/** Default TTL of headers orzo emits. */
export const IP4_DEFAULT_TTL = 255;

/**
 * Validates the IPv4 header in len bytes at buf[off] and fills info; returns the header length (IHL × 4), or -1
 * when the packet is malformed (wrong version, IHL < 5, header or total length beyond the bytes received).
 */
export function ipv4Parse(buf: Uint8Array, off: number, len: number, info: L3Info): number {
  if (len < IP4_HLEN || off < 0 || off + len > buf.length) return -1;
  const vi = buf[off + IP4_VER_IHL];
  if (vi >>> 4 !== 4) return -1;
  const hlen = (vi & 0xf) << 2;
  if (hlen < IP4_HLEN) return -1;
  const total = rd16(buf, off + IP4_TOT_LEN);
  if (total < hlen || total > len) return -1;
  const frag = rd16(buf, off + IP4_FRAG);
  info.proto = buf[off + IP4_PROTO];
  info.l4Off = off + hlen;
  info.l4Len = total - hlen;
  info.fragment = (frag & (IP4_MF | IP4_OFFSET_MASK)) !== 0;
  return hlen;
}

/** Computes the header checksum of the hlen-byte header at buf[off], skipping the checksum field itself. */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number, hlen: number): number {
  const sum = csumPartial(buf, off, IP4_CSUM, 0);
  return csumFinish(csumPartial(buf, off + IP4_CSUM + 2, hlen - IP4_CSUM - 2, sum));
}

/** True when the header checksum of the (already parsed) hlen-byte header at buf[off] is correct. */
export function ipv4ChecksumOk(buf: Uint8Array, off: number, hlen: number): boolean {
  return csumFinish(csumPartial(buf, off, hlen, 0)) === 0;
}

/**
 * Writes a 20-byte header at buf[off] for payloadLen bytes of protocol proto, from the 4-byte addresses at
 * src[srcOff] and dst[dstOff], with the checksum; returns 20, or 0 when it does not fit or is too long.
 */
export function ipv4Emit(
  buf: Uint8Array, off: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  proto: number, payloadLen: number, ttl: number = IP4_DEFAULT_TTL,
): number {
  if (off < 0 || off + IP4_HLEN > buf.length || payloadLen < 0 || payloadLen > IP4_MAX_LEN - IP4_HLEN) return 0;
  buf[off + IP4_VER_IHL] = 0x45;
  buf[off + IP4_TOS] = 0;
  wr16(buf, off + IP4_TOT_LEN, IP4_HLEN + payloadLen);
  wr16(buf, off + IP4_ID, 0);
  wr16(buf, off + IP4_FRAG, IP4_DF);
  buf[off + IP4_TTL] = ttl;
  buf[off + IP4_PROTO] = proto;
  copyBytes(buf, off + IP4_SRC, src, srcOff, 4);
  copyBytes(buf, off + IP4_DST, dst, dstOff, 4);
  wr16(buf, off + IP4_CSUM, ipv4HeaderChecksum(buf, off, IP4_HLEN));
  return IP4_HLEN;
}

/** Rewrites the total length of the 20-byte header at buf[off] (payload known late) and its checksum. */
export function ipv4SetPayloadLen(buf: Uint8Array, off: number, payloadLen: number): void {
  wr16(buf, off + IP4_TOT_LEN, IP4_HLEN + payloadLen);
  wr16(buf, off + IP4_CSUM, ipv4HeaderChecksum(buf, off, IP4_HLEN));
}

/** Copies the source address of the header at buf[off] into an inany at out[outOff]. */
export function ipv4SrcToInany(buf: Uint8Array, off: number, out: Uint8Array, outOff: number): void {
  inanyFromIPv4(out, outOff, buf, off + IP4_SRC);
}

/** Copies the destination address of the header at buf[off] into an inany at out[outOff]. */
export function ipv4DstToInany(buf: Uint8Array, off: number, out: Uint8Array, outOff: number): void {
  inanyFromIPv4(out, outOff, buf, off + IP4_DST);
}

/**
 * IPv6 fixed header (RFC 8200) and the extension-header walk that finds the upper-layer protocol.
 *
 * Ingress rules: the payload length must match the bytes after the fixed header exactly. The one exception is a
 * frame padded to the Ethernet minimum: when the whole packet is at most 46 bytes, trailing bytes are accepted and
 * trimmed. (Real IPv6 packets with an upper layer are at least 48 bytes, so they are never padded.)
 *
 * The walk skips Hop-by-Hop (0), Routing (43), Destination Options (60), Mobility (135), HIP (139), Shim6 (140) and
 * the experimental 253/254, all of which use the RFC 6564 layout: next header, length in 8-octet units not counting
 * the first 8. AH (51) counts 4-octet units not counting the first 8 (RFC 4302: (len + 2) × 4). The Fragment header
 * (44) is always 8 bytes (its second byte is reserved, not a length) and marks the packet as a fragment unless it is
 * an atomic one (offset 0, M clear). ESP (50) has no readable next header: it ends the walk like an upper layer.
 * No Next Header (59) and any header running past the payload make the packet invalid.
 *
 * Egress headers: traffic class 0, the caller's flow label, hop limit 255 unless told otherwise.
 */
import { copyBytes, rd16, wr16, wr32 } from "./bytes.ts";
import { ETH_HLEN, ETH_ZLEN } from "./ethernet.ts";
import type { L3Info } from "./ip.ts";

/** Offset of version, traffic class and flow label. */
export const IP6_VER_TC_FL = 0;
/** Offset of the payload length. */
export const IP6_PLEN = 4;
/** Offset of the next header. */
export const IP6_NEXT = 6;
/** Offset of the hop limit. */
export const IP6_HOPS = 7;
/** Offset of the source address. */
export const IP6_SRC = 8;
/** Offset of the destination address. */
export const IP6_DST = 24;
/** Length of the fixed header. */
export const IP6_HLEN = 40;
/** Default hop limit of headers orzo emits (also the value NDP requires). */
export const IP6_DEFAULT_HOPS = 255;

/** Next header: Hop-by-Hop Options. */
export const NEXTHDR_HOP = 0;
/** Next header: Routing. */
export const NEXTHDR_ROUTING = 43;
/** Next header: Fragment. */
export const NEXTHDR_FRAGMENT = 44;
/** Next header: Encapsulating Security Payload. */
export const NEXTHDR_ESP = 50;
/** Next header: Authentication Header. */
export const NEXTHDR_AH = 51;
/** Next header: none. */
export const NEXTHDR_NONE = 59;
/** Next header: Destination Options. */
export const NEXTHDR_DEST = 60;
/** Next header: Mobility. */
export const NEXTHDR_MOBILITY = 135;
/** Next header: Host Identity Protocol. */
export const NEXTHDR_HIP = 139;
/** Next header: Shim6. */
export const NEXTHDR_SHIM6 = 140;
/** Next header: experimental (RFC 3692). */
export const NEXTHDR_EXP1 = 253;
/** Next header: experimental (RFC 3692). */
export const NEXTHDR_EXP2 = 254;

/** Length of the Fragment header. */
const FRAG_HLEN = 8;
/** Offset and M bits of the Fragment header's second 16-bit word (the 2 reserved bits excluded). */
const FRAG_OFFSET_M = 0xfff9;
/** Longest packet that may carry Ethernet padding after it. */
const PADDED_MAX = ETH_ZLEN - ETH_HLEN;

/**
 * Validates the IPv6 packet in len bytes at buf[off], walks its extension headers and fills info; returns the
 * length of the fixed plus extension headers, or -1 when the packet is malformed or carries no upper layer.
 */
export function ipv6Parse(buf: Uint8Array, off: number, len: number, info: L3Info): number {
  if (len < IP6_HLEN || off < 0 || off + len > buf.length) return -1;
  if (buf[off + IP6_VER_TC_FL] >>> 4 !== 6) return -1;
  const plen = rd16(buf, off + IP6_PLEN);
  const avail = len - IP6_HLEN;
  if (plen > avail || (plen < avail && len > PADDED_MAX)) return -1;
  const end = off + IP6_HLEN + plen;
  let nh = buf[off + IP6_NEXT];
  let p = off + IP6_HLEN;
  let fragment = false;
  for (;;) {
    let hl: number;
    switch (nh) {
      case NEXTHDR_HOP:
      case NEXTHDR_ROUTING:
      case NEXTHDR_DEST:
      case NEXTHDR_MOBILITY:
      case NEXTHDR_HIP:
      case NEXTHDR_SHIM6:
      case NEXTHDR_EXP1:
      case NEXTHDR_EXP2:
        if (p + 2 > end) return -1;
        hl = (buf[p + 1] + 1) << 3;
        break;
      case NEXTHDR_AH:
        if (p + 2 > end) return -1;
        hl = (buf[p + 1] + 2) << 2;
        break;
      case NEXTHDR_FRAGMENT:
        if (p + FRAG_HLEN > end) return -1;
        if ((rd16(buf, p + 2) & FRAG_OFFSET_M) !== 0) fragment = true;
        hl = FRAG_HLEN;
        break;
      case NEXTHDR_NONE:
        return -1;
      default:
        info.proto = nh;
        info.l4Off = p;
        info.l4Len = end - p;
        info.fragment = fragment;
        return p - off;
    }
    if (p + hl > end) return -1;
    nh = buf[p];
    p += hl;
  }
}

/**
 * Writes a 40-byte header at buf[off] for payloadLen bytes of next header nextHeader, from the 16-byte addresses
 * at src[srcOff] and dst[dstOff]; returns 40, or 0 when it does not fit or the payload is too long.
 */
export function ipv6Emit(
  buf: Uint8Array, off: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  nextHeader: number, payloadLen: number, flowLabel = 0, hopLimit: number = IP6_DEFAULT_HOPS,
): number {
  if (off < 0 || off + IP6_HLEN > buf.length || payloadLen < 0 || payloadLen > 0xffff) return 0;
  wr32(buf, off + IP6_VER_TC_FL, (0x60000000 | (flowLabel & 0xfffff)) >>> 0);
  wr16(buf, off + IP6_PLEN, payloadLen);
  buf[off + IP6_NEXT] = nextHeader;
  buf[off + IP6_HOPS] = hopLimit;
  copyBytes(buf, off + IP6_SRC, src, srcOff, 16);
  copyBytes(buf, off + IP6_DST, dst, dstOff, 16);
  return IP6_HLEN;
}

/** Rewrites the payload length of the header at buf[off], for payloads whose length is known late. */
export function ipv6SetPayloadLen(buf: Uint8Array, off: number, payloadLen: number): void {
  wr16(buf, off + IP6_PLEN, payloadLen);
}

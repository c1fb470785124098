/**
 * ICMPv6 (RFC 4443) and the Neighbor Discovery messages orzo speaks (RFC 4861): RS, RA, NS, NA and their options.
 *
 * Every ICMPv6 message starts with type, code and a checksum over the message plus the IPv6 pseudo-header (next
 * header 58), so emitters leave the checksum to icmp6SetChecksum, called once the IPv6 header is in place. Echo
 * messages carry an identifier and a sequence number like ICMPv4.
 *
 * NDP bodies are fixed per type (RS 8, RA 16, NS/NA 24 bytes) and followed by options: type, length in units of 8
 * bytes (0 is invalid and makes the whole message invalid), data. Per RFC 4861 §6.1 and §7.1 a valid message also
 * has code 0 and hop limit 255; the hop limit lives in the IPv6 header, so callers check IP6_HOPS themselves.
 * Options used here: source/target link-layer address (1/2, one unit for Ethernet), prefix information (3, four
 * units), MTU (5, one unit), RDNSS (25, RFC 8106: 1 + 2 units per server) and DNSSL (31: names zero-padded to a
 * unit boundary). Echo and the headers are hot-path code; option lists are control path.
 */
import { copyBytes, rd16, rd32, wr16, wr32 } from "./bytes.ts";
import { l4Checksum6 } from "./checksum.ts";
import { dnsNamesDecode, dnsNamesEncode } from "./dnsname.ts";
import { ETH_ALEN } from "./ethernet.ts";
import { IPPROTO_ICMPV6 } from "./ip.ts";

/** Offset of the type. */
export const ICMP6_TYPE = 0;
/** Offset of the code. */
export const ICMP6_CODE = 1;
/** Offset of the checksum. */
export const ICMP6_CSUM = 2;
/** Offset of the echo identifier. */
export const ICMP6_ID = 4;
/** Offset of the echo sequence number. */
export const ICMP6_SEQ = 6;
/** Offset of the 32-bit type-specific field of error messages (MTU of Packet Too Big, pointer of Parameter Problem). */
export const ICMP6_INFO = 4;
/** Length of the echo and error headers. */
export const ICMP6_HLEN = 8;

/** Type of a destination unreachable. */
export const ICMP6_DEST_UNREACH = 1;
/** Type of a packet too big. */
export const ICMP6_PKT_TOO_BIG = 2;
/** Type of a time exceeded. */
export const ICMP6_TIME_EXCEEDED = 3;
/** Type of an echo request. */
export const ICMP6_ECHO_REQUEST = 128;
/** Type of an echo reply. */
export const ICMP6_ECHO_REPLY = 129;
/** Type of a router solicitation. */
export const NDP_RS = 133;
/** Type of a router advertisement. */
export const NDP_RA = 134;
/** Type of a neighbor solicitation. */
export const NDP_NS = 135;
/** Type of a neighbor advertisement. */
export const NDP_NA = 136;

/** RA: offset of the current hop limit. */
export const RA_CUR_HOPS = 4;
/** RA: offset of the flags (M 0x80, O 0x40). */
export const RA_FLAGS = 5;
/** RA: offset of the router lifetime in seconds. */
export const RA_LIFETIME = 6;
/** RA: offset of the reachable time in milliseconds. */
export const RA_REACHABLE = 8;
/** RA: offset of the retransmission timer in milliseconds. */
export const RA_RETRANS = 12;
/** RA flag: addresses are available through DHCPv6 (managed). */
export const RA_MANAGED = 0x80;
/** RA flag: other configuration is available through DHCPv6. */
export const RA_OTHER = 0x40;
/** NS/NA: offset of the target address. */
export const ND_TARGET = 8;
/** NA: offset of the flags byte. */
export const NA_FLAGS = 4;
/** NA flag: the sender is a router. */
export const NA_ROUTER = 0x80;
/** NA flag: sent in response to a solicitation. */
export const NA_SOLICITED = 0x40;
/** NA flag: override existing cache entries. */
export const NA_OVERRIDE = 0x20;

/** Length of the RS body before options. */
export const RS_LEN = 8;
/** Length of the RA body before options. */
export const RA_LEN = 16;
/** Length of the NS and NA bodies before options. */
export const NS_NA_LEN = 24;

/** Option: source link-layer address. */
export const NDP_OPT_SRC_LLADDR = 1;
/** Option: target link-layer address. */
export const NDP_OPT_TGT_LLADDR = 2;
/** Option: prefix information. */
export const NDP_OPT_PREFIX = 3;
/** Option: MTU. */
export const NDP_OPT_MTU = 5;
/** Option: recursive DNS servers. */
export const NDP_OPT_RDNSS = 25;
/** Option: DNS search list. */
export const NDP_OPT_DNSSL = 31;
/** Offset of the MAC inside a link-layer address option. */
export const NDP_OPT_LLADDR = 2;
/** Prefix information flag: on-link. */
export const PREFIX_ONLINK = 0x80;
/** Prefix information flag: usable for autonomous address configuration. */
export const PREFIX_AUTONOMOUS = 0x40;

/** Option sizes are counted in these units. */
const UNIT = 8;

/** One NDP option found by ndpOptionsParse: its type, absolute offset and length in bytes. */
export interface NdpOption {
  /** Option type. */
  type: number;
  /** Absolute offset of the option's type byte. */
  off: number;
  /** Length in bytes, header included. */
  len: number;
}

/** Validates the ICMPv6 message in len bytes at buf[off]; returns its type, or -1 when shorter than a header. */
export function icmp6Parse(buf: Uint8Array, off: number, len: number): number {
  if (len < ICMP6_HLEN || off < 0 || off + len > buf.length) return -1;
  return buf[off + ICMP6_TYPE];
}

/** True when the checksum of the len-byte message at buf[off] behind the IPv6 header at buf[ipOff] is correct. */
export function icmp6ChecksumOk(buf: Uint8Array, ipOff: number, off: number, len: number): boolean {
  return l4Checksum6(buf, ipOff, IPPROTO_ICMPV6, off, len) === 0;
}

/** Fills the checksum of the len-byte message at buf[off] behind the (already written) IPv6 header at buf[ipOff]. */
export function icmp6SetChecksum(buf: Uint8Array, ipOff: number, off: number, len: number): void {
  wr16(buf, off + ICMP6_CSUM, 0);
  wr16(buf, off + ICMP6_CSUM, l4Checksum6(buf, ipOff, IPPROTO_ICMPV6, off, len));
}

/** Writes an echo header (request or reply) at buf[off], checksum left zero; returns 8, or 0 when it does not fit. */
export function icmp6EchoEmit(buf: Uint8Array, off: number, type: number, id: number, seq: number): number {
  if (off < 0 || off + ICMP6_HLEN > buf.length) return 0;
  buf[off + ICMP6_TYPE] = type;
  buf[off + ICMP6_CODE] = 0;
  wr16(buf, off + ICMP6_CSUM, 0);
  wr16(buf, off + ICMP6_ID, id);
  wr16(buf, off + ICMP6_SEQ, seq);
  return ICMP6_HLEN;
}

/** Writes an error header (type, code, 32-bit info) at buf[off], checksum left zero; returns 8, or 0 if no room. */
export function icmp6ErrorEmit(buf: Uint8Array, off: number, type: number, code: number, info: number): number {
  if (off < 0 || off + ICMP6_HLEN > buf.length) return 0;
  buf[off + ICMP6_TYPE] = type;
  buf[off + ICMP6_CODE] = code;
  wr16(buf, off + ICMP6_CSUM, 0);
  wr32(buf, off + ICMP6_INFO, info);
  return ICMP6_HLEN;
}

/** Length of the fixed body of an NDP message type, or -1 when the type is not RS/RA/NS/NA. */
function ndpBodyLen(type: number): number {
  switch (type) {
    case NDP_RS:
      return RS_LEN;
    case NDP_RA:
      return RA_LEN;
    case NDP_NS:
    case NDP_NA:
      return NS_NA_LEN;
    default:
      return -1;
  }
}

/** Minimum length in bytes of an option of a known type (a smaller one is invalid); 8 for unknown types. */
function optionMinLen(type: number): number {
  switch (type) {
    case NDP_OPT_PREFIX:
      return 4 * UNIT;
    case NDP_OPT_RDNSS:
      return 3 * UNIT;
    case NDP_OPT_DNSSL:
      return 2 * UNIT;
    default:
      return UNIT;
  }
}

/** True when the options in [optOff, end) are well formed: no zero length, none overrunning, known types sized. */
function optionsValid(buf: Uint8Array, optOff: number, end: number): boolean {
  let p = optOff;
  while (p < end) {
    if (p + 2 > end) return false;
    const olen = buf[p + 1] * UNIT;
    if (olen === 0 || p + olen > end || olen < optionMinLen(buf[p])) return false;
    if (buf[p] === NDP_OPT_RDNSS && (olen / UNIT) % 2 === 0) return false;
    p += olen;
  }
  return true;
}

/**
 * Validates the NDP message (RS, RA, NS or NA) in len bytes at buf[off]: code 0, fixed body present, options well
 * formed. Returns the absolute offset of its options (equal to off + len when there are none), or -1.
 */
export function ndpParse(buf: Uint8Array, off: number, len: number): number {
  if (icmp6Parse(buf, off, len) < 0 || buf[off + ICMP6_CODE] !== 0) return -1;
  const body = ndpBodyLen(buf[off + ICMP6_TYPE]);
  if (body < 0 || len < body) return -1;
  return optionsValid(buf, off + body, off + len) ? off + body : -1;
}

/** Offset of the first option of the given type among the (validated) options in [optOff, end), or -1. */
export function ndpOptionFind(buf: Uint8Array, optOff: number, end: number, type: number): number {
  let p = optOff;
  while (p + 2 <= end) {
    const olen = buf[p + 1] * UNIT;
    if (olen === 0 || p + olen > end) return -1;
    if (buf[p] === type) return p;
    p += olen;
  }
  return -1;
}

/** Lists the options in [optOff, end), or null when they are malformed. */
export function ndpOptionsParse(buf: Uint8Array, optOff: number, end: number): NdpOption[] | null {
  if (optOff < 0 || end > buf.length || !optionsValid(buf, optOff, end)) return null;
  const list: NdpOption[] = [];
  for (let p = optOff; p < end; p += buf[p + 1] * UNIT) list.push({ type: buf[p], off: p, len: buf[p + 1] * UNIT });
  return list;
}

/** Prefix information decoded from an option. */
export interface NdpPrefix {
  /** Prefix length in bits. */
  prefixLen: number;
  /** Flags (PREFIX_ONLINK, PREFIX_AUTONOMOUS). */
  flags: number;
  /** Valid lifetime in seconds (0xffffffff: infinite). */
  valid: number;
  /** Preferred lifetime in seconds. */
  preferred: number;
  /** The 16-byte prefix. */
  prefix: Uint8Array;
}

/** Decodes the prefix information option at buf[optOff] (validated by ndpOptionsParse). */
export function ndpPrefixDecode(buf: Uint8Array, optOff: number): NdpPrefix {
  return {
    prefixLen: buf[optOff + 2],
    flags: buf[optOff + 3],
    valid: rd32(buf, optOff + 4),
    preferred: rd32(buf, optOff + 8),
    prefix: buf.slice(optOff + 16, optOff + 32),
  };
}

/** Decodes the MTU option at buf[optOff]. */
export function ndpMtuDecode(buf: Uint8Array, optOff: number): number {
  return rd32(buf, optOff + 4);
}

/** Decodes the RDNSS option of optLen bytes at buf[optOff]: lifetime and 16-byte server addresses. */
export function ndpRdnssDecode(buf: Uint8Array, optOff: number, optLen: number): { lifetime: number; servers: Uint8Array[] } {
  const servers: Uint8Array[] = [];
  for (let p = optOff + UNIT; p + 16 <= optOff + optLen; p += 16) servers.push(buf.slice(p, p + 16));
  return { lifetime: rd32(buf, optOff + 4), servers };
}

/** Decodes the DNSSL option of optLen bytes at buf[optOff]: lifetime and domain names, or null if malformed. */
export function ndpDnsslDecode(buf: Uint8Array, optOff: number, optLen: number): { lifetime: number; names: string[] } | null {
  const names = dnsNamesDecode(buf, optOff + UNIT, optLen - UNIT, false);
  return names === null ? null : { lifetime: rd32(buf, optOff + 4), names };
}

/** Router advertisement header fields. */
export interface RaFields {
  /** Hop limit hosts should use. */
  curHopLimit: number;
  /** RA_MANAGED / RA_OTHER. */
  flags: number;
  /** Router lifetime in seconds. */
  routerLifetime: number;
  /** Reachable time in milliseconds (0: unspecified). */
  reachable: number;
  /** Retransmission timer in milliseconds (0: unspecified). */
  retrans: number;
}

/** Writes an RA body at buf[off], checksum left zero; returns 16, or 0 when it does not fit. */
export function ndpRaEmit(buf: Uint8Array, off: number, ra: RaFields): number {
  if (off < 0 || off + RA_LEN > buf.length) return 0;
  buf[off + ICMP6_TYPE] = NDP_RA;
  buf[off + ICMP6_CODE] = 0;
  wr16(buf, off + ICMP6_CSUM, 0);
  buf[off + RA_CUR_HOPS] = ra.curHopLimit;
  buf[off + RA_FLAGS] = ra.flags;
  wr16(buf, off + RA_LIFETIME, ra.routerLifetime);
  wr32(buf, off + RA_REACHABLE, ra.reachable);
  wr32(buf, off + RA_RETRANS, ra.retrans);
  return RA_LEN;
}

/** Writes an RS body at buf[off], checksum left zero; returns 8, or 0 when it does not fit. */
export function ndpRsEmit(buf: Uint8Array, off: number): number {
  if (off < 0 || off + RS_LEN > buf.length) return 0;
  buf.fill(0, off, off + RS_LEN);
  buf[off + ICMP6_TYPE] = NDP_RS;
  return RS_LEN;
}

/**
 * Writes an NS (type NDP_NS, flags 0) or NA (NDP_NA with NA_* flags) body at buf[off] for the 16-byte target at
 * target[targetOff], checksum left zero; returns 24, or 0 when it does not fit.
 */
export function ndpNsNaEmit(
  buf: Uint8Array, off: number, type: number, flags: number, target: Uint8Array, targetOff: number,
): number {
  if (off < 0 || off + NS_NA_LEN > buf.length) return 0;
  buf.fill(0, off, off + ND_TARGET);
  buf[off + ICMP6_TYPE] = type;
  if (type === NDP_NA) buf[off + NA_FLAGS] = flags;
  copyBytes(buf, off + ND_TARGET, target, targetOff, 16);
  return NS_NA_LEN;
}

/** Writes a source or target link-layer address option for the MAC at mac[macOff]; returns 8, or 0 if no room. */
export function ndpOptLinkAddrEmit(buf: Uint8Array, off: number, type: number, mac: Uint8Array, macOff: number): number {
  if (off < 0 || off + UNIT > buf.length) return 0;
  buf[off] = type;
  buf[off + 1] = 1;
  copyBytes(buf, off + NDP_OPT_LLADDR, mac, macOff, ETH_ALEN);
  return UNIT;
}

/** Writes a prefix information option for the 16-byte prefix at prefix[prefixOff]; returns 32, or 0 if no room. */
export function ndpOptPrefixEmit(
  buf: Uint8Array, off: number, prefixLen: number, flags: number, valid: number, preferred: number,
  prefix: Uint8Array, prefixOff: number,
): number {
  if (off < 0 || off + 4 * UNIT > buf.length) return 0;
  buf[off] = NDP_OPT_PREFIX;
  buf[off + 1] = 4;
  buf[off + 2] = prefixLen;
  buf[off + 3] = flags;
  wr32(buf, off + 4, valid);
  wr32(buf, off + 8, preferred);
  wr32(buf, off + 12, 0);
  copyBytes(buf, off + 16, prefix, prefixOff, 16);
  return 4 * UNIT;
}

/** Writes an MTU option; returns 8, or 0 when it does not fit. */
export function ndpOptMtuEmit(buf: Uint8Array, off: number, mtu: number): number {
  if (off < 0 || off + UNIT > buf.length) return 0;
  buf[off] = NDP_OPT_MTU;
  buf[off + 1] = 1;
  wr16(buf, off + 2, 0);
  wr32(buf, off + 4, mtu);
  return UNIT;
}

/** Writes an RDNSS option listing 16-byte server addresses; returns its length, or 0 when empty or no room. */
export function ndpOptRdnssEmit(buf: Uint8Array, off: number, lifetime: number, servers: Uint8Array[]): number {
  const len = UNIT + 16 * servers.length;
  if (servers.length === 0 || len > 255 * UNIT || off < 0 || off + len > buf.length) return 0;
  buf[off] = NDP_OPT_RDNSS;
  buf[off + 1] = len / UNIT;
  wr16(buf, off + 2, 0);
  wr32(buf, off + 4, lifetime);
  for (let i = 0; i < servers.length; i++) copyBytes(buf, off + UNIT + 16 * i, servers[i], 0, 16);
  return len;
}

/** Writes a DNSSL option for the names, zero-padded to 8 bytes; returns its length, or 0 if invalid or no room. */
export function ndpOptDnsslEmit(buf: Uint8Array, off: number, lifetime: number, names: string[]): number {
  const wire = names.length > 0 ? dnsNamesEncode(names, false) : null;
  if (wire === null) return 0;
  const len = UNIT + Math.ceil(wire.length / UNIT) * UNIT;
  if (len > 255 * UNIT || off < 0 || off + len > buf.length) return 0;
  buf[off] = NDP_OPT_DNSSL;
  buf[off + 1] = len / UNIT;
  wr16(buf, off + 2, 0);
  wr32(buf, off + 4, lifetime);
  buf.set(wire, off + UNIT);
  buf.fill(0, off + UNIT + wire.length, off + len);
  return len;
}

/** Reads the echo identifier of the message at buf[off]. */
export function icmp6EchoId(buf: Uint8Array, off: number): number {
  return rd16(buf, off + ICMP6_ID);
}

/** Reads the echo sequence number of the message at buf[off]. */
export function icmp6EchoSeq(buf: Uint8Array, off: number): number {
  return rd16(buf, off + ICMP6_SEQ);
}

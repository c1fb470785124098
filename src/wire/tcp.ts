/**
 * TCP header (RFC 9293): ports, sequence and acknowledgment numbers (u32 as plain numbers), data offset in 32-bit
 * words, flags, window, checksum (pseudo-header), urgent pointer, then options.
 *
 * Options are a list of kind bytes; END (0) stops the list, NOP (1) is one byte, every other kind has a length
 * byte counting itself and the kind. A length below 2 or running past the header makes the segment invalid, and
 * so does a wrong length on the options orzo reads: MSS (2, 4 bytes), window scale (3, 3 bytes; shifts above 14
 * count as 14 per RFC 7323), SACK-permitted (4, 2 bytes), SACK (5, 2 + 8n bytes) and timestamps (8, 10 bytes).
 * Options are parsed into a caller-owned TcpOptions, so the hot path allocates nothing.
 *
 * SYNs orzo emits carry MSS, then NOP and window scale, keeping the options 32-bit aligned.
 */
import { rd16, rd32, wr16, wr32 } from "./bytes.ts";
import { l4Checksum4, l4Checksum6 } from "./checksum.ts";
import { IPPROTO_TCP } from "./ip.ts";

/** Offset of the source port. */
export const TCP_SPORT = 0;
/** Offset of the destination port. */
export const TCP_DPORT = 2;
/** Offset of the sequence number. */
export const TCP_SEQ = 4;
/** Offset of the acknowledgment number. */
export const TCP_ACK_SEQ = 8;
/** Offset of the data offset (high nibble). */
export const TCP_DOFF = 12;
/** Offset of the flags byte. */
export const TCP_FLAGS = 13;
/** Offset of the window. */
export const TCP_WINDOW = 14;
/** Offset of the checksum. */
export const TCP_CSUM = 16;
/** Offset of the urgent pointer. */
export const TCP_URG_PTR = 18;
/** Length of a header without options. */
export const TCP_HLEN = 20;
/** Longest header (data offset 15). */
export const TCP_MAX_HLEN = 60;

/** Flag FIN. */
export const TCP_FIN = 0x01;
/** Flag SYN. */
export const TCP_SYN = 0x02;
/** Flag RST. */
export const TCP_RST = 0x04;
/** Flag PSH. */
export const TCP_PSH = 0x08;
/** Flag ACK. */
export const TCP_ACK = 0x10;
/** Flag URG. */
export const TCP_URG = 0x20;
/** Flag ECE. */
export const TCP_ECE = 0x40;
/** Flag CWR. */
export const TCP_CWR = 0x80;

/** Option kind: end of list. */
export const TCPOPT_END = 0;
/** Option kind: no operation. */
export const TCPOPT_NOP = 1;
/** Option kind: maximum segment size. */
export const TCPOPT_MSS = 2;
/** Option kind: window scale. */
export const TCPOPT_WSCALE = 3;
/** Option kind: SACK permitted. */
export const TCPOPT_SACK_PERM = 4;
/** Option kind: SACK blocks. */
export const TCPOPT_SACK = 5;
/** Option kind: timestamps. */
export const TCPOPT_TIMESTAMP = 8;
/** Largest window scale shift (RFC 7323 §2.3). */
export const TCP_MAX_WSCALE = 14;

/** Options read from a segment; one instance is reused for every segment. */
export class TcpOptions {
  /** Maximum segment size, 0 when absent. */
  mss = 0;
  /** Window scale shift, -1 when absent. */
  wscale = -1;
  /** SACK-permitted seen. */
  sackOk = false;
  /** Timestamps option seen. */
  hasTimestamps = false;
  /** Timestamp value, when present. */
  tsVal = 0;
  /** Timestamp echo reply, when present. */
  tsEcr = 0;
}

/** Validates the TCP header in len bytes at buf[off]; returns its length (data offset × 4), or -1. */
export function tcpParse(buf: Uint8Array, off: number, len: number): number {
  if (len < TCP_HLEN || off < 0 || off + len > buf.length) return -1;
  const hlen = (buf[off + TCP_DOFF] >>> 4) << 2;
  return hlen < TCP_HLEN || hlen > len ? -1 : hlen;
}

/** Length a known option kind must have, or 0 for kinds orzo does not read. */
function optionLen(kind: number): number {
  switch (kind) {
    case TCPOPT_MSS:
      return 4;
    case TCPOPT_WSCALE:
      return 3;
    case TCPOPT_SACK_PERM:
      return 2;
    case TCPOPT_TIMESTAMP:
      return 10;
    default:
      return 0;
  }
}

/** Parses the options of the (validated) hlen-byte header at buf[off] into out; false when they are malformed. */
export function tcpParseOptions(buf: Uint8Array, off: number, hlen: number, out: TcpOptions): boolean {
  out.mss = 0;
  out.wscale = -1;
  out.sackOk = false;
  out.hasTimestamps = false;
  out.tsVal = 0;
  out.tsEcr = 0;
  const end = off + hlen;
  let p = off + TCP_HLEN;
  while (p < end) {
    const kind = buf[p];
    if (kind === TCPOPT_END) break;
    if (kind === TCPOPT_NOP) {
      p++;
      continue;
    }
    if (p + 2 > end) return false;
    const olen = buf[p + 1];
    if (olen < 2 || p + olen > end) return false;
    const want = optionLen(kind);
    if (want !== 0 && olen !== want) return false;
    switch (kind) {
      case TCPOPT_MSS:
        out.mss = rd16(buf, p + 2);
        break;
      case TCPOPT_WSCALE:
        out.wscale = Math.min(buf[p + 2], TCP_MAX_WSCALE);
        break;
      case TCPOPT_SACK_PERM:
        out.sackOk = true;
        break;
      case TCPOPT_SACK:
        if ((olen - 2) % 8 !== 0 || olen === 2) return false;
        break;
      case TCPOPT_TIMESTAMP:
        out.hasTimestamps = true;
        out.tsVal = rd32(buf, p + 2);
        out.tsEcr = rd32(buf, p + 6);
        break;
    }
    p += olen;
  }
  return true;
}

/**
 * Writes a TCP header at buf[off] with a zero checksum; mss > 0 adds an MSS option and wscale ≥ 0 adds NOP + window
 * scale (for SYNs). Returns the header length (20, 24 or 28), or 0 when it does not fit.
 */
export function tcpEmit(
  buf: Uint8Array, off: number, sport: number, dport: number, seq: number, ack: number, flags: number,
  window: number, mss = 0, wscale = -1,
): number {
  const hlen = TCP_HLEN + (mss > 0 ? 4 : 0) + (wscale >= 0 ? 4 : 0);
  if (off < 0 || off + hlen > buf.length) return 0;
  wr16(buf, off + TCP_SPORT, sport);
  wr16(buf, off + TCP_DPORT, dport);
  wr32(buf, off + TCP_SEQ, seq);
  wr32(buf, off + TCP_ACK_SEQ, ack);
  buf[off + TCP_DOFF] = (hlen >>> 2) << 4;
  buf[off + TCP_FLAGS] = flags;
  wr16(buf, off + TCP_WINDOW, window);
  wr16(buf, off + TCP_CSUM, 0);
  wr16(buf, off + TCP_URG_PTR, 0);
  let p = off + TCP_HLEN;
  if (mss > 0) {
    buf[p] = TCPOPT_MSS;
    buf[p + 1] = 4;
    wr16(buf, p + 2, mss);
    p += 4;
  }
  if (wscale >= 0) {
    buf[p] = TCPOPT_NOP;
    buf[p + 1] = TCPOPT_WSCALE;
    buf[p + 2] = 3;
    buf[p + 3] = wscale;
  }
  return hlen;
}

/** Reads the sequence number of the segment at buf[off]. */
export function tcpSeq(buf: Uint8Array, off: number): number {
  return rd32(buf, off + TCP_SEQ);
}

/** Reads the acknowledgment number of the segment at buf[off]. */
export function tcpAckSeq(buf: Uint8Array, off: number): number {
  return rd32(buf, off + TCP_ACK_SEQ);
}

/** Reads the flags of the segment at buf[off]. */
export function tcpFlags(buf: Uint8Array, off: number): number {
  return buf[off + TCP_FLAGS];
}

/** Reads the (unscaled) window of the segment at buf[off]. */
export function tcpWindow(buf: Uint8Array, off: number): number {
  return rd16(buf, off + TCP_WINDOW);
}

/** Fills the checksum of the tcpLen-byte segment at buf[tcpOff] behind the IPv4 header at buf[ipOff]. */
export function tcpSetChecksum4(buf: Uint8Array, ipOff: number, tcpOff: number, tcpLen: number): void {
  wr16(buf, tcpOff + TCP_CSUM, 0);
  wr16(buf, tcpOff + TCP_CSUM, l4Checksum4(buf, ipOff, tcpOff, tcpLen));
}

/** Fills the checksum of the tcpLen-byte segment at buf[tcpOff] behind the IPv6 header at buf[ipOff]. */
export function tcpSetChecksum6(buf: Uint8Array, ipOff: number, tcpOff: number, tcpLen: number): void {
  wr16(buf, tcpOff + TCP_CSUM, 0);
  wr16(buf, tcpOff + TCP_CSUM, l4Checksum6(buf, ipOff, IPPROTO_TCP, tcpOff, tcpLen));
}

/** True when the segment's checksum is correct behind the IPv4 header at buf[ipOff]. */
export function tcpChecksumOk4(buf: Uint8Array, ipOff: number, tcpOff: number, tcpLen: number): boolean {
  return l4Checksum4(buf, ipOff, tcpOff, tcpLen) === 0;
}

/** True when the segment's checksum is correct behind the IPv6 header at buf[ipOff]. */
export function tcpChecksumOk6(buf: Uint8Array, ipOff: number, tcpOff: number, tcpLen: number): boolean {
  return l4Checksum6(buf, ipOff, IPPROTO_TCP, tcpOff, tcpLen) === 0;
}

/**
 * Control messages received with recvmsg(2), and the two kinds orzo reads: the local address a datagram was sent
 * to (IP_PKTINFO / IPV6_PKTINFO) and an error from a socket's error queue (IP_RECVERR / IPV6_RECVERR: struct
 * sock_extended_err, then the offender's sockaddr). The layouts are in structs.ts.
 *
 * Control data comes from the kernel, but every length is checked all the same: a malformed buffer reads as "not
 * there", never as an exception or a read past its end. Nothing here allocates.
 */
import {
  AF_INET, AF_INET6, IP_PKTINFO, IP_RECVERR, IPPROTO_IP, IPPROTO_IPV6, IPV6_PKTINFO, IPV6_RECVERR,
} from "./constants.ts";
import type { Mem } from "./mem.ts";
import { sockaddrToInany } from "./sockaddr.ts";
import { CMSGHDR, IN_PKTINFO, SOCK_EXTENDED_ERR, SOCKADDR } from "./structs.ts";
import { copyBytes } from "../wire/bytes.ts";
import { inanyFromIPv4, INANY_LEN } from "../wire/inany.ts";

/**
 * Finds the first control message of a level and type with at least minLen bytes of data among the len bytes of
 * control data at mem[off]; returns the offset of its data, or -1 when there is none (or the buffer is malformed).
 */
export function cmsgFind(mem: Mem, off: number, len: number, level: number, type: number, minLen: number): number {
  const v = mem.view;
  const end = Math.min(off + len, mem.bytes.length);
  let p = off;
  while (p >= 0 && p + CMSGHDR.size <= end) {
    const cmsgLen = mem.getU64(p + CMSGHDR.len);
    if (cmsgLen < CMSGHDR.size || cmsgLen > end - p) return -1;
    if (v.getInt32(p + CMSGHDR.level, true) === level && v.getInt32(p + CMSGHDR.type, true) === type) {
      return cmsgLen - CMSGHDR.size >= minLen ? p + CMSGHDR.size : -1;
    }
    p += (cmsgLen + CMSGHDR.align - 1) & -CMSGHDR.align;
  }
  return -1;
}

/** The data length of the control message whose data cmsgFind found at mem[dataOff]. */
function cmsgDataLen(mem: Mem, dataOff: number): number {
  return mem.getU64(dataOff - CMSGHDR.size + CMSGHDR.len) - CMSGHDR.size;
}

/**
 * Reads the local address of a received datagram (IP_PKTINFO or IPV6_PKTINFO among the len bytes of control data
 * at mem[off]) into an inany at out[outOff]; false when the control data carries none.
 */
export function cmsgLocalAddress(mem: Mem, off: number, len: number, out: Uint8Array, outOff: number): boolean {
  const p4 = cmsgFind(mem, off, len, IPPROTO_IP, IP_PKTINFO, IN_PKTINFO.size);
  if (p4 >= 0) {
    inanyFromIPv4(out, outOff, mem.bytes, p4 + IN_PKTINFO.addr);
    return true;
  }
  const p6 = cmsgFind(mem, off, len, IPPROTO_IPV6, IPV6_PKTINFO, IN_PKTINFO.size6);
  if (p6 < 0) return false;
  copyBytes(out, outOff, mem.bytes, p6 + IN_PKTINFO.addr6, INANY_LEN);
  return true;
}

/** An error taken from a socket's error queue: the fields of struct sock_extended_err and the offender. */
export class SockExtendedErr {
  /** IPPROTO_IP or IPPROTO_IPV6: the level of the control message it came in (the socket's family). */
  level = -1;
  /** The error (ECONNREFUSED, EHOSTUNREACH, EMSGSIZE...). */
  errno = 0;
  /** SO_EE_ORIGIN_LOCAL, _ICMP or _ICMP6. */
  origin = 0;
  /** ICMP or ICMPv6 type and code, for errors of ICMP origin. */
  type = 0;
  code = 0;
  /** The MTU for "fragmentation needed" and "packet too big". */
  info = 0;
  /** True when the error names the node that reported it (errors of ICMP origin do). */
  hasOffender = false;
  /** The offender's address, as an inany, when hasOffender. */
  readonly offender = new Uint8Array(INANY_LEN);
}

/**
 * Reads the IP_RECVERR or IPV6_RECVERR control message among the len bytes of control data at mem[off] into out;
 * false when there is none or it is too short for the struct. An offender whose family is neither IPv4 nor IPv6,
 * or whose sockaddr does not fit, leaves hasOffender false.
 */
export function cmsgSockExtendedErr(mem: Mem, off: number, len: number, out: SockExtendedErr): boolean {
  let level = IPPROTO_IP;
  let p = cmsgFind(mem, off, len, IPPROTO_IP, IP_RECVERR, SOCK_EXTENDED_ERR.size);
  if (p < 0) {
    level = IPPROTO_IPV6;
    p = cmsgFind(mem, off, len, IPPROTO_IPV6, IPV6_RECVERR, SOCK_EXTENDED_ERR.size);
  }
  if (p < 0) return false;
  const v = mem.view;
  out.level = level;
  out.errno = v.getUint32(p + SOCK_EXTENDED_ERR.errno, true);
  out.origin = mem.bytes[p + SOCK_EXTENDED_ERR.origin];
  out.type = mem.bytes[p + SOCK_EXTENDED_ERR.type];
  out.code = mem.bytes[p + SOCK_EXTENDED_ERR.code];
  out.info = v.getUint32(p + SOCK_EXTENDED_ERR.info, true);
  const sa = p + SOCK_EXTENDED_ERR.offender;
  const room = cmsgDataLen(mem, p) - SOCK_EXTENDED_ERR.offender;
  const family = room >= 2 ? v.getUint16(sa + SOCKADDR.family, true) : -1;
  const fits = (family === AF_INET && room >= SOCKADDR.in4Size) || (family === AF_INET6 && room >= SOCKADDR.in6Size);
  out.hasOffender = fits && sockaddrToInany(mem, sa, out.offender, 0) >= 0;
  return true;
}

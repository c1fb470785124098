/**
 * sockaddr encoding and decoding: IPv4, IPv6 and UNIX.
 *
 * Setup paths use the SockAddr object form; hot paths write and read inany addresses straight between a flow's
 * typed arrays and a preallocated Mem, without making objects.
 */
import { AF_INET, AF_INET6, AF_UNIX } from "./constants.ts";
import { SOCKADDR } from "./structs.ts";
import type { Mem } from "./mem.ts";
import {
  formatIPv4,
  formatIPv6,
  inanyFromIPv4,
  inanyIsV4,
  inanyParseInto,
  inanyToText,
  INANY_LEN,
} from "../wire/inany.ts";

/** A socket address in object form, for setup paths and tests. */
export type SockAddr =
  | { family: "ipv4"; address: string; port: number }
  | { family: "ipv6"; address: string; port: number; scopeId?: number; flowinfo?: number }
  | { family: "unix"; path: string };

/** Raised for a socket address that cannot be encoded (bad text, port out of range, path too long). */
export class SockAddrError extends Error {
  override name = "SockAddrError";
}

const scratch = new Uint8Array(INANY_LEN);
const encoder = new TextEncoder();

/** Encodes a SockAddr at mem[off]; returns its length (the socklen_t to pass). */
export function encodeSockaddr(sa: SockAddr, mem: Mem, off: number): number {
  const v = mem.view;
  if (sa.family === "unix") {
    const abstract = sa.path.startsWith("\0");
    const path = encoder.encode(sa.path);
    if (path.length === 0 || path.length > SOCKADDR.unPathMax - (abstract ? 0 : 1)) {
      throw new SockAddrError(`UNIX socket path must be 1 to ${SOCKADDR.unPathMax - 1} bytes: '${sa.path}'`);
    }
    mem.bytes.fill(0, off, off + SOCKADDR.unSize);
    v.setUint16(off + SOCKADDR.family, AF_UNIX, true);
    mem.bytes.set(path, off + SOCKADDR.unPath);
    return SOCKADDR.unPath + path.length + (abstract ? 0 : 1);
  }
  if (!Number.isInteger(sa.port) || sa.port < 0 || sa.port > 65535) {
    throw new SockAddrError(`port out of range: ${sa.port}`);
  }
  const isV6Text = sa.address.includes(":");
  if (!inanyParseInto(sa.address, scratch, 0) || isV6Text !== (sa.family === "ipv6")) {
    throw new SockAddrError(`not an ${sa.family} address: '${sa.address}'`);
  }
  if (sa.family === "ipv4") return sockaddrFromInany(mem, off, scratch, 0, sa.port, 0);
  writeSockaddrIn6(mem, off, scratch, 0, sa.port, sa.scopeId ?? 0);
  v.setUint32(off + SOCKADDR.in6Flowinfo, sa.flowinfo ?? 0, false);
  return SOCKADDR.in6Size;
}

/** Decodes the sockaddr at mem[off] (len bytes as the kernel reported); throws on an unknown family. */
export function decodeSockaddr(mem: Mem, off: number, len: number): SockAddr {
  const v = mem.view;
  const family = v.getUint16(off + SOCKADDR.family, true);
  if (family === AF_UNIX) {
    const bytes = mem.bytes.subarray(off + SOCKADDR.unPath, off + Math.max(len, SOCKADDR.unPath));
    const abstract = bytes.length > 0 && bytes[0] === 0;
    const end = abstract ? bytes.length : bytes.indexOf(0) < 0 ? bytes.length : bytes.indexOf(0);
    return { family: "unix", path: new TextDecoder().decode(bytes.subarray(0, end)) };
  }
  if (family === AF_INET && len >= SOCKADDR.in4Size) {
    sockaddrToInany(mem, off, scratch, 0);
    return { family: "ipv4", address: inanyToText(scratch, 0), port: v.getUint16(off + SOCKADDR.port, false) };
  }
  if (family === AF_INET6 && len >= SOCKADDR.in6Size) {
    sockaddrToInany(mem, off, scratch, 0);
    const mapped = inanyIsV4(scratch, 0);
    return {
      family: "ipv6",
      address: mapped ? `::ffff:${formatIPv4(scratch, 12)}` : formatIPv6(scratch, 0),
      port: v.getUint16(off + SOCKADDR.port, false),
      scopeId: v.getUint32(off + SOCKADDR.in6ScopeId, true),
      flowinfo: v.getUint32(off + SOCKADDR.in6Flowinfo, false),
    };
  }
  throw new SockAddrError(`unsupported sockaddr: family ${family}, length ${len}`);
}

/**
 * Writes a sockaddr for the inany at addr[addrOff] and a port: sockaddr_in for IPv4-mapped addresses,
 * sockaddr_in6 otherwise. Returns the length.
 */
export function sockaddrFromInany(mem: Mem, off: number, addr: Uint8Array, addrOff: number, port: number, scopeId: number): number {
  const b = mem.bytes;
  const v = mem.view;
  if (inanyIsV4(addr, addrOff)) {
    b.fill(0, off, off + SOCKADDR.in4Size);
    v.setUint16(off + SOCKADDR.family, AF_INET, true);
    v.setUint16(off + SOCKADDR.port, port, false);
    for (let i = 0; i < 4; i++) b[off + SOCKADDR.in4Addr + i] = addr[addrOff + 12 + i];
    return SOCKADDR.in4Size;
  }
  return writeSockaddrIn6(mem, off, addr, addrOff, port, scopeId);
}

/** Writes a sockaddr_in6 for the 16 address bytes at addr[addrOff]; returns its length. */
function writeSockaddrIn6(mem: Mem, off: number, addr: Uint8Array, addrOff: number, port: number, scopeId: number): number {
  const v = mem.view;
  mem.bytes.fill(0, off, off + SOCKADDR.in6Size);
  v.setUint16(off + SOCKADDR.family, AF_INET6, true);
  v.setUint16(off + SOCKADDR.port, port, false);
  for (let i = 0; i < INANY_LEN; i++) mem.bytes[off + SOCKADDR.in6Addr + i] = addr[addrOff + i];
  v.setUint32(off + SOCKADDR.in6ScopeId, scopeId, true);
  return SOCKADDR.in6Size;
}

/**
 * Reads an IPv4 or IPv6 sockaddr at mem[off] into an inany at out[outOff]; returns the port, or -1 when the
 * family is neither (the inany is then left untouched).
 */
export function sockaddrToInany(mem: Mem, off: number, out: Uint8Array, outOff: number): number {
  const v = mem.view;
  const family = v.getUint16(off + SOCKADDR.family, true);
  if (family === AF_INET) {
    inanyFromIPv4(out, outOff, mem.bytes, off + SOCKADDR.in4Addr);
  } else if (family === AF_INET6) {
    for (let i = 0; i < INANY_LEN; i++) out[outOff + i] = mem.bytes[off + SOCKADDR.in6Addr + i];
  } else {
    return -1;
  }
  return v.getUint16(off + SOCKADDR.port, false);
}

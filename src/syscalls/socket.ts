/**
 * Socket calls. Setup-path calls throw a SyscallError; calls that the data paths make, and whose failures are
 * ordinary events (EAGAIN, EINPROGRESS, ECONNREFUSED...), return the result or a negative errno.
 */
import { SO_ERROR, SOL_SOCKET } from "./constants.ts";
import { check, libc, ret } from "./libc.ts";
import { Mem } from "./mem.ts";
import { decodeSockaddr, encodeSockaddr, type SockAddr } from "./sockaddr.ts";
import { SOCKADDR } from "./structs.ts";

/** Scratch memory for setup-path sockaddrs and option values (single-threaded use). */
const scratch = new Mem(SOCKADDR.storageSize + 64);
const LEN_OFF = SOCKADDR.storageSize;
const VAL_OFF = SOCKADDR.storageSize + 8;

/** socket(2); throws on failure. */
export function socket(domain: number, type: number, protocol: number): number {
  return check("socket", libc.socket(domain, type, protocol));
}

/** socket(2) that reports failure as a negative errno (for callers that fall back, e.g. ping sockets). */
export function trySocket(domain: number, type: number, protocol: number): number {
  return ret(libc.socket(domain, type, protocol));
}

/** socketpair(2); throws on failure. */
export function socketpair(domain: number, type: number, protocol: number): [number, number] {
  const fds = new Int32Array(2);
  check("socketpair", libc.socketpair(domain, type, protocol, fds));
  return [fds[0], fds[1]];
}

/** bind(2) to an address in object form; throws on failure, naming the address. */
export function bind(fd: number, sa: SockAddr): void {
  const len = encodeSockaddr(sa, scratch, 0);
  check("bind", libc.bind(fd, scratch.addr, len), describe(sa));
}

/** bind(2) to a sockaddr already encoded at an address; returns 0 or -errno. */
export function bindRaw(fd: number, addr: number, len: number): number {
  return ret(libc.bind(fd, addr, len));
}

/** listen(2); throws on failure. */
export function listen(fd: number, backlog: number): void {
  check("listen", libc.listen(fd, backlog));
}

/** listen(2); returns 0 or -errno. */
export function listenRaw(fd: number, backlog: number): number {
  return ret(libc.listen(fd, backlog));
}

/** accept4(2); the peer's sockaddr goes to mem[off] when mem is given. Returns the fd or -errno. */
export function accept4(fd: number, flags: number, mem?: Mem, off = 0): number {
  if (!mem) return ret(libc.accept4(fd, null, null, flags));
  mem.view.setUint32(off + SOCKADDR.storageSize, SOCKADDR.storageSize, true);
  return ret(libc.accept4(fd, mem.addr + off, mem.addr + off + SOCKADDR.storageSize, flags));
}

/** connect(2) to an address in object form; returns 0 or -errno (EINPROGRESS on non-blocking sockets). */
export function connect(fd: number, sa: SockAddr): number {
  const len = encodeSockaddr(sa, scratch, 0);
  return ret(libc.connect(fd, scratch.addr, len));
}

/** connect(2) to a sockaddr already encoded at an address; returns 0 or -errno. */
export function connectRaw(fd: number, addr: number, len: number): number {
  return ret(libc.connect(fd, addr, len));
}

/** setsockopt(2) with an int value; returns 0 or -errno. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): number {
  scratch.view.setInt32(VAL_OFF, value, true);
  return ret(libc.setsockopt(fd, level, name, scratch.addr + VAL_OFF, 4));
}

/** setsockopt(2) with a byte value (structs, interface names); returns 0 or -errno. */
export function setsockoptBytes(fd: number, level: number, name: number, value: Uint8Array): number {
  return ret(libc.setsockopt(fd, level, name, value, value.length));
}

/** getsockopt(2) for an int option; throws on failure. */
export function getsockoptInt(fd: number, level: number, name: number): number {
  scratch.view.setUint32(LEN_OFF, 4, true);
  check("getsockopt", libc.getsockopt(fd, level, name, scratch.addr + VAL_OFF, scratch.addr + LEN_OFF));
  return scratch.view.getInt32(VAL_OFF, true);
}

/** getsockopt(2) into len bytes at an address; returns the length the kernel wrote or -errno. */
export function getsockoptRaw(fd: number, level: number, name: number, addr: number, len: number): number {
  scratch.view.setUint32(LEN_OFF, len, true);
  const r = ret(libc.getsockopt(fd, level, name, addr, scratch.addr + LEN_OFF));
  return r < 0 ? r : scratch.view.getUint32(LEN_OFF, true);
}

/** The pending error of a socket (SO_ERROR), as a positive errno or 0. */
export function socketError(fd: number): number {
  return getsockoptInt(fd, SOL_SOCKET, SO_ERROR);
}

/** getsockname(2) in object form; throws on failure. */
export function getsockname(fd: number): SockAddr {
  scratch.view.setUint32(LEN_OFF, SOCKADDR.storageSize, true);
  check("getsockname", libc.getsockname(fd, scratch.addr, scratch.addr + LEN_OFF));
  return decodeSockaddr(scratch, 0, scratch.view.getUint32(LEN_OFF, true));
}

/** getsockname(2) into mem[off]; returns the address length or -errno. */
export function getsocknameRaw(fd: number, mem: Mem, off: number): number {
  mem.view.setUint32(off + SOCKADDR.storageSize, SOCKADDR.storageSize, true);
  const r = ret(libc.getsockname(fd, mem.addr + off, mem.addr + off + SOCKADDR.storageSize));
  return r < 0 ? r : mem.view.getUint32(off + SOCKADDR.storageSize, true);
}

/** getpeername(2) in object form; throws on failure. */
export function getpeername(fd: number): SockAddr {
  scratch.view.setUint32(LEN_OFF, SOCKADDR.storageSize, true);
  check("getpeername", libc.getpeername(fd, scratch.addr, scratch.addr + LEN_OFF));
  return decodeSockaddr(scratch, 0, scratch.view.getUint32(LEN_OFF, true));
}

/** shutdown(2); returns 0 or -errno. */
export function shutdown(fd: number, how: number): number {
  return ret(libc.shutdown(fd, how));
}

/** Memory for a sockaddr plus its length word, as accept4 and getsocknameRaw expect at an offset. */
export const SOCKADDR_SLOT = SOCKADDR.storageSize + 8;

/** A socket address as text for error messages. */
export function describe(sa: SockAddr): string {
  if (sa.family === "unix") return sa.path.startsWith("\0") ? `@${sa.path.slice(1)}` : sa.path;
  return sa.family === "ipv6" ? `[${sa.address}]:${sa.port}` : `${sa.address}:${sa.port}`;
}

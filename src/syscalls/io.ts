/**
 * File descriptor I/O: read/write, vectored and message I/O, batches of datagrams, splice and pipes.
 *
 * Data-path calls take addresses (Mem.addr + offset) and return a byte count or a negative errno; they
 * allocate nothing. The *Bytes variants take a typed array and are for setup paths and tests.
 */
import { check, libc, ret } from "./libc.ts";
import { encodeCString } from "./strings.ts";

/** read(2) into len bytes at an address; returns the count or -errno. */
export function read(fd: number, addr: number, len: number): number {
  return ret(libc.read(fd, addr, len));
}

/** write(2) of len bytes at an address; returns the count or -errno. */
export function write(fd: number, addr: number, len: number): number {
  return ret(libc.write(fd, addr, len));
}

/** read(2) into a typed array (setup paths and tests); returns the count or -errno. */
export function readBytes(fd: number, buf: Uint8Array): number {
  return ret(libc.read(fd, buf, buf.length));
}

/** write(2) of a typed array (setup paths and tests); returns the count or -errno. */
export function writeBytes(fd: number, buf: Uint8Array): number {
  if (buf.length === 0) return 0;
  return ret(libc.write(fd, buf, buf.length));
}

/** readv(2) with an iovec array at an address; returns the count or -errno. */
export function readv(fd: number, iovAddr: number, iovcnt: number): number {
  return ret(libc.readv(fd, iovAddr, iovcnt));
}

/** writev(2) with an iovec array at an address; returns the count or -errno. */
export function writev(fd: number, iovAddr: number, iovcnt: number): number {
  return ret(libc.writev(fd, iovAddr, iovcnt));
}

/** recv(2); returns the count or -errno. */
export function recv(fd: number, addr: number, len: number, flags: number): number {
  return ret(libc.recv(fd, addr, len, flags));
}

/** send(2); returns the count or -errno. */
export function send(fd: number, addr: number, len: number, flags: number): number {
  return ret(libc.send(fd, addr, len, flags));
}

/** recvfrom(2), the source sockaddr at srcAddr with its socklen_t at lenAddr; returns the count or -errno. */
export function recvfrom(fd: number, addr: number, len: number, flags: number, srcAddr: number, lenAddr: number): number {
  return ret(libc.recvfrom(fd, addr, len, flags, srcAddr, lenAddr));
}

/** sendto(2) to the sockaddr at dstAddr; returns the count or -errno. */
export function sendto(fd: number, addr: number, len: number, flags: number, dstAddr: number, dstLen: number): number {
  return ret(libc.sendto(fd, addr, len, flags, dstAddr, dstLen));
}

/** recvmsg(2) with a msghdr at an address; returns the count or -errno. */
export function recvmsg(fd: number, msgAddr: number, flags: number): number {
  return ret(libc.recvmsg(fd, msgAddr, flags));
}

/** sendmsg(2) with a msghdr at an address; returns the count or -errno. */
export function sendmsg(fd: number, msgAddr: number, flags: number): number {
  return ret(libc.sendmsg(fd, msgAddr, flags));
}

/** recvmmsg(2) into vlen mmsghdrs at an address, no timeout; returns the message count or -errno. */
export function recvmmsg(fd: number, vecAddr: number, vlen: number, flags: number): number {
  return ret(libc.recvmmsg(fd, vecAddr, vlen, flags, null));
}

/** sendmmsg(2) of vlen mmsghdrs at an address; returns the message count or -errno. */
export function sendmmsg(fd: number, vecAddr: number, vlen: number, flags: number): number {
  return ret(libc.sendmmsg(fd, vecAddr, vlen, flags));
}

/** splice(2) between fds at their current offsets; returns the count or -errno. */
export function splice(fdIn: number, fdOut: number, len: number, flags: number): number {
  return ret(libc.splice(fdIn, null, fdOut, null, len, flags));
}

/** pipe2(2); returns [read end, write end]; throws on failure. */
export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  check("pipe2", libc.pipe2(fds, flags));
  return [fds[0], fds[1]];
}

/** fcntl(2) with an int argument; returns the result or -errno. */
export function fcntl(fd: number, cmd: number, arg: number): number {
  return ret(libc.fcntl(fd, cmd, arg));
}

/** close(2); returns 0 or -errno. */
export function close(fd: number): number {
  return ret(libc.close(fd));
}

/** open(2); throws a SyscallError naming the path on failure. */
export function open(path: string, flags: number, mode = 0): number {
  return check("open", libc.open(encodeCString(path), flags, mode), path);
}

/** ftruncate(2) to len bytes (below 2^53); returns 0 or -errno. */
export function ftruncate(fd: number, len: number): number {
  return ret(libc.ftruncate(fd, len));
}

/** openat(2) relative to a directory fd, reporting failure as a negative errno (works after pivot_root too). */
export function tryOpenAt(dirFd: number, path: string, flags: number): number {
  return ret(libc.openat(dirFd, encodeCString(path), flags, 0));
}

/** unlinkat(2) relative to a directory fd; returns 0 or -errno. */
export function unlinkAt(dirFd: number, name: string): number {
  return ret(libc.unlinkat(dirFd, encodeCString(name), 0));
}

/** open(2) that reports failure as a negative errno (for probing paths that may be gone). */
export function tryOpen(path: string, flags: number, mode = 0): number {
  return ret(libc.open(encodeCString(path), flags, mode));
}

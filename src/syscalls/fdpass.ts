/**
 * Passing file descriptors between processes over a UNIX socket (SCM_RIGHTS).
 *
 * Tests hand sockets made in another process's namespace to the test process this way; a socket keeps the
 * namespace it was created in. Each message is one datagram (SOCK_SEQPACKET) of bytes plus up to MAX_FDS
 * descriptors; setup path only.
 */
import { MSG_NOSIGNAL, SOL_SOCKET } from "./constants.ts";
import { SyscallError } from "./errno.ts";
import { errno, libc } from "./libc.ts";
import { Mem } from "./mem.ts";
import { IOVEC, MSGHDR } from "./structs.ts";

/** Most descriptors in one message. */
export const MAX_FDS = 16;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
/** struct cmsghdr: size_t len; int level; int type; then data (8-byte aligned). */
const CMSG = { len: 0, level: 8, type: 12, data: 16 } as const;
const CONTROL_SIZE = CMSG.data + MAX_FDS * 4;
/** Largest message body. */
export const MAX_MESSAGE = 64 * 1024;

const hdr = new Mem(MSGHDR.size + IOVEC.size + CONTROL_SIZE);
const IOV_OFF = MSGHDR.size;
const CTRL_OFF = MSGHDR.size + IOVEC.size;
const body = new Mem(MAX_MESSAGE);

function prepare(len: number, controlLen: number): void {
  hdr.bytes.fill(0);
  hdr.setU64(IOV_OFF + IOVEC.base, body.addr);
  hdr.setU64(IOV_OFF + IOVEC.len, len);
  hdr.setU64(MSGHDR.iov, hdr.addr + IOV_OFF);
  hdr.setU64(MSGHDR.iovlen, 1);
  if (controlLen > 0) {
    hdr.setU64(MSGHDR.control, hdr.addr + CTRL_OFF);
    hdr.setU64(MSGHDR.controllen, controlLen);
  }
}

/** Sends one message with descriptors; throws a SyscallError on failure. */
export function sendWithFds(sock: number, data: Uint8Array, fds: readonly number[]): void {
  if (data.length === 0 || data.length > MAX_MESSAGE) throw new RangeError(`message size ${data.length}`);
  if (fds.length > MAX_FDS) throw new RangeError(`${fds.length} descriptors in one message`);
  body.bytes.set(data);
  const controlLen = fds.length > 0 ? CMSG.data + ((fds.length * 4 + 7) & ~7) : 0;
  prepare(data.length, controlLen);
  if (fds.length > 0) {
    hdr.setU64(CTRL_OFF + CMSG.len, CMSG.data + fds.length * 4);
    hdr.view.setInt32(CTRL_OFF + CMSG.level, SOL_SOCKET, true);
    hdr.view.setInt32(CTRL_OFF + CMSG.type, SCM_RIGHTS, true);
    for (let i = 0; i < fds.length; i++) hdr.view.setInt32(CTRL_OFF + CMSG.data + 4 * i, fds[i], true);
  }
  if (libc.sendmsg(sock, hdr.addr, MSG_NOSIGNAL) === -1) throw new SyscallError("sendmsg", errno());
}

/** A received message: its bytes and the descriptors that came with it (close-on-exec). */
export interface FdMessage {
  data: Uint8Array;
  fds: number[];
}

/** Receives one message with any descriptors; null at end of stream, -errno on failure (e.g. -EAGAIN). */
export function recvWithFds(sock: number, flags = 0): FdMessage | null | number {
  prepare(MAX_MESSAGE, CONTROL_SIZE);
  const n = libc.recvmsg(sock, hdr.addr, flags | MSG_CMSG_CLOEXEC);
  if (n === -1) return -errno();
  const fds: number[] = [];
  const controlLen = hdr.getU64(MSGHDR.controllen);
  let off = 0;
  while (off + CMSG.data <= controlLen) {
    const len = hdr.getU64(CTRL_OFF + off + CMSG.len);
    if (len < CMSG.data || off + len > controlLen) break;
    const level = hdr.view.getInt32(CTRL_OFF + off + CMSG.level, true);
    const type = hdr.view.getInt32(CTRL_OFF + off + CMSG.type, true);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let i = 0; CMSG.data + 4 * (i + 1) <= len; i++) fds.push(hdr.view.getInt32(CTRL_OFF + off + CMSG.data + 4 * i, true));
    }
    off += (len + 7) & ~7;
  }
  if (n === 0 && fds.length === 0) return null;
  return { data: body.bytes.slice(0, n), fds };
}

/**
 * The passt link: a qemu guest on a UNIX stream socket (`-netdev stream`), one guest at a time. Both ways, each
 * Ethernet frame travels preceded by its length as a 32-bit big-endian number (doc/tap-l2.md §4).
 *
 * Input: one recv() per wake-up fills the input buffer behind any partial frame left from the last one; every
 * complete frame in it goes to the sink as a view (no copy), and the incomplete tail (a length prefix cut short,
 * or a frame not all there yet) moves to the front to be completed by the next read. A length below an Ethernet
 * header or above 65535 cannot be resynchronised from: the connection is dropped.
 *
 * Output: frames are built in the Link arena with 4 bytes of headroom, where flush() writes the length; the
 * batch goes out in one sendmsg() with an iovec per frame. The stream must never carry part of a frame followed
 * by something else, so what the socket does not take (a partial write, EAGAIN) is copied, cut mid-frame if need
 * be, into a pending buffer that is written first, on EPOLLOUT, before anything newer. While bytes are pending,
 * new batches are appended behind them; only whole frames that no longer fit are dropped (and counted), as a
 * full NIC queue would drop them, and TCP retransmits.
 *
 * Connections: listen() opens the socket qemu connects to (on passt's default path unless given one), adopt()
 * takes an already connected one (--fd). A second client while one is served is accepted and closed at
 * once. When the guest goes away, onDisconnect says why; frames for the guest are discarded until the next one.
 */
import { lstatSync, unlinkSync } from "node:fs";
import { basename, dirname } from "node:path";
import { EpollType } from "../epoll_ref.ts";
import { log } from "../log.ts";
import type { EventLoop } from "../loop.ts";
import {
  AF_UNIX, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, F_GETFL, F_SETFD, F_SETFL, FD_CLOEXEC, IOV_MAX,
  MSG_DONTWAIT, MSG_NOSIGNAL, O_CLOEXEC, O_DIRECTORY, O_NONBLOCK, O_PATH, SO_PEERCRED, SO_RCVBUF, SO_SNDBUF, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM,
  SOL_SOCKET,
} from "../syscalls/constants.ts";
import { Errno, errnoName, SyscallError } from "../syscalls/errno.ts";
import { close, fcntl, open, recv, send, sendmsg, unlinkAt } from "../syscalls/io.ts";
import { copyMem, Mem } from "../syscalls/mem.ts";
import { IovecArray } from "../syscalls/msg.ts";
import { accept4, bind, connect, getsockoptRaw, listen, setsockoptInt, socket } from "../syscalls/socket.ts";
import { MSGHDR } from "../syscalls/structs.ts";
import { ETH_HLEN } from "../wire/ethernet.ts";
import { ETH_MAX_LEN, Link, type FrameSink } from "./link.ts";

/** Bytes in front of each frame on the stream: its length. */
export const STREAM_HEADROOM = 4;
const ARENA_BYTES = 8 << 20;
const INPUT_BYTES = 8 << 20;
const PENDING_BYTES = 8 << 20;
/** Socket buffer size asked for (the kernel caps it at its wmem_max / rmem_max). */
const SOCKET_BUFFER = 0x3fffffff;
/** passt's default socket paths: the first free one of /tmp/passt_1.socket ... /tmp/passt_99.socket. */
const DEFAULT_PATH_MAX = 99;

/** What the stream reports to its owner. */
export interface StreamEvents {
  /** A guest connected (or an adopted socket was taken on): the link is usable. */
  onConnect(now: number): void;
  /** The guest went away, or was dropped for a protocol error; reason says which. */
  onDisconnect(reason: string): void;
}

/** The qemu stream socket link. */
export class PasstStream extends Link {
  /** Counters: guests served and refused, bad lengths, short writes, frames dropped behind pending bytes. */
  readonly streamStats = { connections: 0, refused: 0, badLength: 0, partialWrites: 0, pendingDropped: 0 };
  /** The socket path listened on, when listening. */
  path: string | undefined;
  private listenFd = -1;
  /** The socket file's directory, when stage 1 handed one over: the file is removed through it. */
  private dirFd = -1;
  private conn = -1;
  private readonly input = new Mem(INPUT_BYTES);
  private inputFill = 0;
  private readonly pending = new Mem(PENDING_BYTES);
  private pendingStart = 0;
  private pendingEnd = 0;
  private readonly iov = new IovecArray(IOV_MAX);
  private readonly msg = new Mem(MSGHDR.size);
  private readonly cred = new Mem(16);

  constructor(private readonly loop: EventLoop, private readonly sink: FrameSink, private readonly events: StreamEvents) {
    super(ARENA_BYTES, IOV_MAX, STREAM_HEADROOM);
    this.msg.setU64(MSGHDR.iov, this.iov.addressOf(0));
    loop.on(EpollType.TAP_LISTEN, (fd, _payload, _events, now) => this.accept(fd, now));
    loop.on(EpollType.TAP_PASST, (fd, _payload, ev, now) => this.ready(fd, ev, now));
  }

  /** True while a guest is connected. */
  get connected(): boolean {
    return this.conn >= 0;
  }

  /**
   * Takes on a listening socket that openPasstSocket made (stage 1 makes it: doc/isolation.md), and the fd of
   * its directory, through which the socket file is removed at the end, when no path reaches it any more.
   */
  adoptListener(fd: number, path: string, dirFd: number): void {
    this.listenFd = fd;
    this.path = path;
    this.dirFd = dirFd;
  }

  /** Starts accepting guests on the listening socket. */
  startListening(): void {
    this.loop.add(EpollType.TAP_LISTEN, this.listenFd, 0, EPOLLIN);
  }

  /** Serves an already connected socket (--fd): made non-blocking and close-on-exec here. */
  adopt(fd: number, now: number): void {
    const flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0) throw new SyscallError("fcntl", -flags, `--fd ${fd}`);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    this.connect(fd, now);
  }

  /** Closes the connection and the listening socket, and removes the socket file this stream created. */
  close(): void {
    if (this.conn >= 0) this.drop();
    if (this.listenFd >= 0) {
      close(this.listenFd);
      this.listenFd = -1;
      if (this.dirFd >= 0) {
        unlinkAt(this.dirFd, basename(this.path ?? ""));
        close(this.dirFd);
        this.dirFd = -1;
      } else if (this.path) rmSocketFile(this.path);
    }
  }

  protected writeQueued(): void {
    const fd = this.conn;
    if (fd < 0) {
      this.stats.outDropped += this.queued;
      return;
    }
    const b = this.out.bytes;
    const base = this.out.addr;
    let total = 0;
    for (let i = 0; i < this.queued; i++) {
      const at = this.queuedOff[i];
      const len = this.queuedLen[i];
      b[at] = len >>> 24;
      b[at + 1] = (len >>> 16) & 0xff;
      b[at + 2] = (len >>> 8) & 0xff;
      b[at + 3] = len & 0xff;
      this.iov.set(i, base + at, STREAM_HEADROOM + len);
      total += STREAM_HEADROOM + len;
    }
    if (this.pendingEnd > this.pendingStart && !this.writePending()) return;
    if (this.pendingEnd > this.pendingStart) {
      this.keep(0, 0);
      return;
    }
    this.msg.setU64(MSGHDR.iovlen, this.queued);
    const r = sendmsg(fd, this.msg.addr, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r === total) {
      this.stats.framesOut += this.queued;
      return;
    }
    if (r < 0 && r !== -Errno.EAGAIN && r !== -Errno.EINTR) {
      this.stats.outDropped += this.queued;
      this.lost(`send to the guest failed: ${errnoName(-r)}`);
      return;
    }
    this.streamStats.partialWrites++;
    // Find the frame the socket stopped in: the rest of it, and every frame after it, wait in pending.
    let done = Math.max(r, 0);
    let i = 0;
    while (done >= STREAM_HEADROOM + this.queuedLen[i]) done -= STREAM_HEADROOM + this.queuedLen[i++];
    this.stats.framesOut += i;
    this.keep(i, done);
  }

  /**
   * Appends queued frames from index first on (the first of them from byte skip of its prefix) to pending, and
   * waits for EPOLLOUT. A frame already partly on the stream always fits: pending is empty when that happens.
   */
  private keep(first: number, skip: number): void {
    const room = this.pending.bytes.length;
    for (let i = first; i < this.queued; i++) {
      const from = i === first ? skip : 0;
      const len = STREAM_HEADROOM + this.queuedLen[i] - from;
      if (this.pendingEnd + len > room && this.pendingStart > 0) {
        // Out of room at the end: move what is still pending to the front (at most once per batch).
        copyMem(this.pending.addr, this.pending.addr + this.pendingStart, this.pendingEnd - this.pendingStart);
        this.pendingEnd -= this.pendingStart;
        this.pendingStart = 0;
      }
      if (this.pendingEnd + len > room) {
        this.stats.outDropped++;
        this.streamStats.pendingDropped++;
        continue;
      }
      copyMem(this.pending.addr + this.pendingEnd, this.out.addr + this.queuedOff[i] + from, len);
      this.pendingEnd += len;
      this.stats.framesOut++;
    }
    this.loop.modify(EpollType.TAP_PASST, this.conn, 0, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
  }

  /** Writes what is pending; returns false when the connection was lost doing so. */
  private writePending(): boolean {
    const r = send(this.conn, this.pending.addr + this.pendingStart, this.pendingEnd - this.pendingStart, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
      if (r === -Errno.EAGAIN || r === -Errno.EINTR) return true;
      this.lost(`send to the guest failed: ${errnoName(-r)}`);
      return false;
    }
    this.pendingStart += r;
    if (this.pendingStart === this.pendingEnd) {
      this.pendingStart = this.pendingEnd = 0;
      this.loop.modify(EpollType.TAP_PASST, this.conn, 0, EPOLLIN | EPOLLRDHUP);
    }
    return true;
  }

  /** Events on the connection. */
  private ready(fd: number, events: number, now: number): void {
    if (fd !== this.conn) return;
    if (events & EPOLLOUT && !this.writePending()) return;
    if (events & EPOLLIN) this.read(fd, now);
    else if (events & (EPOLLERR | EPOLLHUP)) this.lost("the guest's connection failed");
  }

  /** One read, then every complete frame to the sink. */
  private read(fd: number, now: number): void {
    const mem = this.input;
    const n = recv(fd, mem.addr + this.inputFill, mem.bytes.length - this.inputFill, MSG_DONTWAIT);
    if (n === -Errno.EAGAIN || n === -Errno.EINTR) return;
    if (n <= 0) {
      this.lost(n === 0 ? "the guest closed the connection" : `receive from the guest failed: ${errnoName(-n)}`);
      return;
    }
    const b = mem.bytes;
    const end = this.inputFill + n;
    let at = 0;
    try {
      while (end - at >= STREAM_HEADROOM) {
        const len = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
        if (len < ETH_HLEN || len > ETH_MAX_LEN) {
          this.streamStats.badLength++;
          log.error(`passt: bad frame length ${len} from the guest: dropping the connection`);
          this.lost(`bad frame length ${len}`);
          return;
        }
        if (end - at - STREAM_HEADROOM < len) break;
        this.stats.framesIn++;
        // Past this frame before handing it on: should the sink throw, it is not handed on again.
        at += STREAM_HEADROOM + len;
        this.sink.frame(b, mem.addr, at - len, len, now);
        // Replies queued by the sink may have filled the arena and been written: that write can lose the guest.
        if (this.conn !== fd) return;
      }
    } finally {
      this.sink.flushInput();
      // The incomplete tail moves to the front, to be completed by the next read (unless the connection is gone).
      if (this.conn === fd) {
        if (at > 0 && at < end) copyMem(mem.addr, mem.addr + at, end - at);
        this.inputFill = end - at;
      }
    }
  }

  /** A client on the listening socket: served if no guest is, else accepted and closed. */
  private accept(lfd: number, now: number): void {
    const fd = accept4(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (fd !== -Errno.EAGAIN && fd !== -Errno.EINTR) log.warn(`passt: accepting a guest failed: ${errnoName(-fd)}`);
      return;
    }
    if (this.conn >= 0) {
      this.streamStats.refused++;
      log.info(`passt: a guest is already connected: refusing the connection from PID ${this.peerPid(fd)}`);
      close(fd);
      return;
    }
    log.info(`passt: guest connected (PID ${this.peerPid(fd)})`);
    this.connect(fd, now);
  }

  private connect(fd: number, now: number): void {
    setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, SOCKET_BUFFER);
    setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, SOCKET_BUFFER);
    this.loop.add(EpollType.TAP_PASST, fd, 0, EPOLLIN | EPOLLRDHUP);
    this.conn = fd;
    this.streamStats.connections++;
    this.events.onConnect(now);
  }

  /** The connection is gone: drop it and tell the owner. */
  private lost(reason: string): void {
    this.drop();
    this.events.onDisconnect(reason);
  }

  /** Closes the connection; what was read or pending for it is discarded. */
  private drop(): void {
    this.loop.remove(this.conn);
    close(this.conn);
    this.conn = -1;
    this.inputFill = 0;
    this.pendingStart = this.pendingEnd = 0;
  }

  /** The PID of the process at the other end of a UNIX socket (SO_PEERCRED), or "unknown". */
  private peerPid(fd: number): string {
    const r = getsockoptRaw(fd, SOL_SOCKET, SO_PEERCRED, this.cred.addr, 12);
    return r >= 4 ? String(this.cred.view.getInt32(0, true)) : "unknown";
  }
}

/** True when something accepts connections on a UNIX socket path (or is about to: its backlog is full). */
function probeInUse(path: string): boolean {
  const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    const r = connect(fd, { family: "unix", path });
    return r === 0 || r === -Errno.EAGAIN || r === -Errno.EINPROGRESS;
  } finally {
    close(fd);
  }
}

/** A listening socket on path (a stale file there is removed first); throws naming the path. */
function bindListener(path: string): number {
  rmSocketFile(path);
  const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    bind(fd, { family: "unix", path });
    listen(fd, 0);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

/** Removes a socket file if one is there: anything else at the path is left for bind to refuse. */
function rmSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Not there, or not ours to remove: bind reports what matters.
  }
}

/**
 * Binds and listens on the socket qemu connects to: path, or the first free one of passt's default paths.
 * Returns the listening fd and the path. Throws with the reason.
 */
export function openPasstSocket(path?: string): { fd: number; path: string; dirFd: number } {
  const found = bindPasstSocket(path);
  return { ...found, dirFd: open(dirname(found.path), O_PATH | O_DIRECTORY | O_CLOEXEC) };
}

function bindPasstSocket(path?: string): { fd: number; path: string } {
  if (path !== undefined) {
    if (probeInUse(path)) throw new Error(`socket path ${path} is in use`);
    return { fd: bindListener(path), path };
  }
  for (let n = 1; n <= DEFAULT_PATH_MAX; n++) {
    const candidate = `/tmp/passt_${n}.socket`;
    if (probeInUse(candidate)) continue;
    try {
      return { fd: bindListener(candidate), path: candidate };
    } catch {
      continue;
    }
  }
  throw new Error(`no free socket path among /tmp/passt_1.socket to /tmp/passt_${DEFAULT_PATH_MAX}.socket`);
}

/**
 * The pasta link: a tap device in the target namespace. One read() returns one frame and one write() sends one,
 * so input is read frame by frame until EAGAIN (bounded per wake-up, to stay fair to other fds) and output is
 * one write per queued frame at the end of the loop cycle. A frame the kernel will not take (EAGAIN, ENOBUFS)
 * is dropped and counted, as a real link would; EOF or an error on the tap means the namespace is gone.
 */
import { EpollType } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLRDHUP } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { read, write } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { rateLimited } from "../log.ts";
import { ETH_MAX_LEN, Link, type FrameSink } from "./link.ts";

const FRAMES_PER_WAKE = 256;
const ETH_HLEN = 14;
const writeErrorLog = rateLimited("tap: write error");

/** The tap device link. */
export class PastaTap extends Link {
  /** The tap fd (non-blocking). */
  readonly fd: number;
  /** Frames shorter than an Ethernet header, dropped. */
  runts = 0;
  private readonly input = new Mem(ETH_MAX_LEN + 1);

  constructor(loop: EventLoop, fd: number, sink: FrameSink, onGone: (reason: string) => void) {
    super(8 << 20, 1024, 0);
    this.fd = fd;
    loop.on(EpollType.TAP_PASTA, (tapFd, _payload, events, now) => {
      if (events & (EPOLLHUP | EPOLLERR)) {
        onGone("tap device hung up");
        return;
      }
      const buf = this.input.bytes;
      for (let i = 0; i < FRAMES_PER_WAKE; i++) {
        const n = read(tapFd, this.input.addr, ETH_MAX_LEN);
        if (n === -Errno.EAGAIN || n === -Errno.EINTR) return;
        if (n <= 0) {
          onGone(n === 0 ? "tap device closed" : `tap read failed: errno ${-n}`);
          return;
        }
        this.stats.framesIn++;
        if (n < ETH_HLEN) {
          this.runts++;
          continue;
        }
        sink.frame(buf, this.input.addr, 0, n, now);
      }
    });
    loop.add(EpollType.TAP_PASTA, fd, 0, EPOLLIN | EPOLLRDHUP);
  }

  /** A tap device is always there to write to. */
  get connected(): boolean {
    return true;
  }

  protected writeQueued(): void {
    const base = this.out.addr;
    for (let i = 0; i < this.queued; i++) {
      const r = write(this.fd, base + this.queuedOff[i], this.queuedLen[i]);
      if (r === this.queuedLen[i]) {
        this.stats.framesOut++;
        continue;
      }
      this.stats.outDropped++;
      if (r < 0 && r !== -Errno.EAGAIN && r !== -Errno.ENOBUFS && r !== -Errno.EIO) {
        writeErrorLog.warn(`tap write failed: errno ${-r}, frame dropped`);
      }
    }
  }
}

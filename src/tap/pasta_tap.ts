/**
 * The pasta link: a tap device in the target namespace. One read() returns one frame and one write() sends one,
 * so input is read frame by frame until EAGAIN (bounded per wake-up, to stay fair to other fds) and output is
 * one write per queued frame at the end of the loop cycle. Frames of one burst are read one after the other into
 * an input arena and each is handed on as soon as it is read; they stay valid until the sink's flushInput() at
 * the end of the burst (or when the arena is full), so the sink may batch work over them: UDP datagrams of a
 * flow go out in one sendmmsg. A frame the kernel will not take (EAGAIN, ENOBUFS)
 * is dropped and counted, as a real link would; EOF or an error on the tap means the namespace is gone.
 */
import { EpollType } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLRDHUP } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { read, write } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { rateLimited } from "../log.ts";
import { Link, type FrameSink } from "./link.ts";

const FRAMES_PER_WAKE = 256;
const ETH_HLEN = 14;
/** struct virtio_net_hdr: in front of every frame when the tap has IFF_VNET_HDR. */
const VNET_HDR_LEN = 10;
const VNET_FLAGS = 0;
const VNET_GSO_TYPE = 1;
const VNET_HDR_LEN_FIELD = 2;
const VNET_GSO_SIZE = 4;
const VNET_CSUM_START = 6;
const VNET_CSUM_OFFSET = 8;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** Largest frame the kernel hands over with TSO on: a 64 KiB IP packet behind the Ethernet header. */
const INPUT_MAX = ETH_HLEN + 65536;
/** Input arena: room for a burst of frames, at least one of the largest. */
const INPUT_ARENA = 2 << 20;
const writeErrorLog = rateLimited("tap: write error");

/** The tap device link. */
export class PastaTap extends Link {
  /** The tap fd (non-blocking). */
  readonly fd: number;
  /** Frames shorter than an Ethernet header, dropped. */
  runts = 0;
  private readonly input = new Mem(INPUT_ARENA);

  /**
   * vnetHdr: the tap was opened with IFF_VNET_HDR; offload: TUNSETOFFLOAD took partial checksums and TSO, so
   * TCP frames to the guest go out with their checksum (and segmentation) left to the kernel.
   */
  constructor(loop: EventLoop, fd: number, sink: FrameSink, onGone: (reason: string) => void, vnetHdr = false, offload = false) {
    super(8 << 20, 1024, vnetHdr ? VNET_HDR_LEN : 0, offload);
    this.fd = fd;
    const skip = vnetHdr ? VNET_HDR_LEN : 0;
    loop.on(EpollType.TAP_PASTA, (tapFd, _payload, events, now) => {
      if (events & (EPOLLHUP | EPOLLERR)) {
        onGone("tap device hung up");
        return;
      }
      const buf = this.input.bytes;
      const base = this.input.addr;
      const room = skip + INPUT_MAX;
      let at = 0;
      for (let i = 0; i < FRAMES_PER_WAKE; i++) {
        if (at + room > INPUT_ARENA) {
          sink.flushInput();
          at = 0;
        }
        const n = read(tapFd, base + at, room);
        if (n === -Errno.EAGAIN || n === -Errno.EINTR) break;
        if (n <= 0) {
          sink.flushInput();
          onGone(n === 0 ? "tap device closed" : `tap read failed: errno ${-n}`);
          return;
        }
        this.stats.framesIn++;
        if (n < skip + ETH_HLEN) {
          this.runts++;
          continue;
        }
        sink.frame(buf, base, at + skip, n - skip, now);
        at += (n + 63) & ~63;
      }
      sink.flushInput();
    });
    loop.add(EpollType.TAP_PASTA, fd, 0, EPOLLIN | EPOLLRDHUP);
  }

  override markOffload(csumStart: number, csumOffset: number, gsoType: number, gsoSize: number, hdrLen: number): void {
    const b = this.out.bytes;
    const h = this.reservedAt;
    b[h + VNET_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    b[h + VNET_GSO_TYPE] = gsoSize > 0 ? gsoType : 0;
    wrLe16(b, h + VNET_HDR_LEN_FIELD, hdrLen);
    wrLe16(b, h + VNET_GSO_SIZE, gsoSize);
    wrLe16(b, h + VNET_CSUM_START, csumStart);
    wrLe16(b, h + VNET_CSUM_OFFSET, csumOffset);
  }

  /** A tap device is always there to write to. */
  get connected(): boolean {
    return true;
  }

  protected writeQueued(): void {
    const base = this.out.addr;
    const hr = this.headroom;
    for (let i = 0; i < this.queued; i++) {
      const len = hr + this.queuedLen[i];
      const r = write(this.fd, base + this.queuedOff[i], len);
      if (r === len) {
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

function wrLe16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = v >>> 8;
}

/**
 * The link to the guest: one interface, two implementations (the pasta tap device, the passt stream socket).
 *
 * Protocol code never knows which one it talks to. Frames to the guest are built in place in the link's output
 * arena (reserve, write, commit) or copied in (send), queued, and written out once per loop cycle by flush():
 * batching is the point, so nothing is written per frame on the way in. Frames from the guest are handed to a
 * FrameSink one at a time, as views into the link's input buffer that stay valid until the sink's flushInput().
 */
import { Mem } from "../syscalls/mem.ts";

/** Receives frames from the guest. */
export interface FrameSink {
  /**
   * One Ethernet frame at buf[off, off + len), valid only during the call; addr is the address of buf[0], so
   * payloads can be handed to the kernel without a copy.
   */
  frame(buf: Uint8Array, addr: number, off: number, len: number, now: number): void;
  /**
   * The frames handed on so far may be overwritten once this returns: work batched over them (UDP datagrams
   * queued for sendmmsg) is done now. Links call it at the end of each burst of input and before reusing input.
   */
  flushInput(): void;
}

/** Ethernet frames are padded to this length (without FCS) on the way out. */
export const ETH_ZLEN = 60;
/** Largest Ethernet frame orzo handles (tun limit; the stream protocol's is the same). */
export const ETH_MAX_LEN = 65535;

/** Counters every link keeps. */
export interface LinkStats {
  framesIn: number;
  framesOut: number;
  /** Frames to the guest dropped because the link could not take them. */
  outDropped: number;
}

/**
 * Shown each batch of frames to the guest just before the link writes it: frame i is lens[i] bytes at
 * addr + offs[i], for i below count.
 */
export type OutputObserver = (addr: number, offs: Int32Array, lens: Int32Array, count: number) => void;

/** A queue of outgoing frames in one preallocated arena, each preceded by the link's own headroom. */
export abstract class Link {
  /** The output arena: frames are built here. */
  readonly out: Mem;
  /** Bytes reserved in front of each frame for the link's own header (passt: the 4-byte length). */
  readonly headroom: number;
  /** Counters. */
  readonly stats: LinkStats = { framesIn: 0, framesOut: 0, outDropped: 0 };
  /** Offsets (of the headroom) and lengths (of the frame) of queued frames. */
  protected readonly queuedOff: Int32Array;
  protected readonly queuedLen: Int32Array;
  protected queued = 0;
  private used = 0;
  /** Offset of the headroom of the frame being built, -1 when none is. */
  protected reservedAt = -1;
  /**
   * True when the link's kernel side completes TCP checksums and cuts TCP super-frames into segments (pasta's
   * tap with a vnet header): frames are then marked with markOffload instead of being checksummed here.
   */
  readonly offload: boolean;

  constructor(arenaBytes: number, maxFrames: number, headroom: number, offload = false) {
    this.out = new Mem(arenaBytes);
    this.headroom = headroom;
    this.offload = offload;
    this.queuedOff = new Int32Array(maxFrames);
    this.queuedLen = new Int32Array(maxFrames);
  }

  /** Reserves room for a frame of up to maxLen bytes; returns the offset in out.bytes where it goes. */
  reserve(maxLen: number): number {
    const need = this.headroom + Math.max(maxLen, ETH_ZLEN);
    if (this.used + need > this.out.bytes.length || this.queued === this.queuedOff.length) this.flush();
    if (need > this.out.bytes.length) throw new RangeError(`frame of ${maxLen} bytes exceeds the link arena`);
    this.reservedAt = this.used;
    if (this.headroom > 0) this.out.bytes.fill(0, this.used, this.used + this.headroom);
    return this.used + this.headroom;
  }

  /**
   * Marks the frame being built for the kernel to finish (links with offload only): its L4 checksum, whose field
   * is at csumStart + csumOffset in the frame and holds the pseudo-header sum, and, when gsoSize > 0, its cutting
   * into TCP segments of gsoSize payload bytes behind hdrLen bytes of headers.
   */
  markOffload(_csumStart: number, _csumOffset: number, _gsoType: number, _gsoSize: number, _hdrLen: number): void {
    throw new Error("this link has no offloads");
  }

  /** Queues the frame built at the reserved offset, padded to 60 bytes. */
  commit(len: number): void {
    const at = this.reservedAt;
    if (at < 0) throw new Error("commit without reserve");
    this.reservedAt = -1;
    if (len < ETH_ZLEN) this.out.bytes.fill(0, at + this.headroom + len, at + this.headroom + ETH_ZLEN);
    const padded = Math.max(len, ETH_ZLEN);
    this.queuedOff[this.queued] = at;
    this.queuedLen[this.queued] = padded;
    this.queued++;
    this.used = at + this.headroom + ((padded + 7) & ~7);
  }

  /** Queues a copy of a frame. */
  send(buf: Uint8Array, off: number, len: number): void {
    const at = this.reserve(len);
    this.out.bytes.set(buf.subarray(off, off + len), at);
    this.commit(len);
  }

  /** Writes every queued frame to the guest (or drops and counts what the link cannot take). */
  flush(): void {
    if (this.queued > 0) this.writeQueued();
    this.queued = 0;
    this.used = 0;
  }

  /**
   * Shows every batch written while a guest is connected to observe first (the pcap capture). It wraps this one
   * instance's flush, which reserve() calls too when the arena fills, so nothing escapes it; a link nobody
   * observes keeps the plain flush and pays nothing.
   */
  observeOutput(observe: OutputObserver): void {
    const plain = this.flush;
    this.flush = () => {
      if (this.queued > 0 && this.connected) observe(this.out.addr + this.headroom, this.queuedOff, this.queuedLen, this.queued);
      plain.call(this);
    };
  }

  /** True when frames can reach a guest (passt: a client is connected). */
  abstract get connected(): boolean;

  /** Writes queued frames [0, queued) to the guest. */
  protected abstract writeQueued(): void;
}

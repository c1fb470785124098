/**
 * Per-connection state of tap-side TCP flows, stored by flow number next to the flow table (struct of arrays),
 * and the modular sequence arithmetic every TCP decision rests on.
 *
 * Sequence numbers are kept as unsigned 32-bit values in JS numbers; comparisons are modular within a window of
 * 2^24 (the largest window orzo uses), so a value "before" another is at most 16 MiB behind it.
 */
import { inanyIsV4 } from "../wire/inany.ts";
import type { FlowTable, Side } from "./flow.ts";

/** Guest MSS when its SYN carries none (RFC 9293). */
export const MSS_DEFAULT = 536;
/** Initial window (RFC 6928), and the least window advertised during the handshake. */
export const WINDOW_DEFAULT = 14600;
/** Largest window used either way: 16 MiB. */
export const MAX_WINDOW = 1 << 24;
/** Window scale advertised to the guest: 65535 << 8 covers MAX_WINDOW. */
export const WS_TO_TAP = 8;
/** Retransmissions (and SYN retries) before a connection is reset. */
export const TCP_MAX_RETRIES = 7;
/** First retransmission timeout. */
export const RTO_INIT_MS = 1000;
/** Cap on any retransmission timeout. */
export const RTO_MAX_MS = 120_000;
/** SYN retries at the first timeout before the timeout starts doubling. */
const SYN_LINEAR_RETRIES = 4;

/** The retransmission timeout after `retries` retries: linear for the first SYN retries, then doubling, capped. */
export function rtoMs(retries: number, handshake: boolean): number {
  const exp = handshake ? Math.max(0, retries - SYN_LINEAR_RETRIES) : retries;
  return Math.min(RTO_INIT_MS * 2 ** exp, RTO_MAX_MS);
}

/** Flows listed once each until drained (timers to arm after a cycle's output). */
export class FlowQueue {
  private readonly list: Int32Array;
  private readonly listed: Uint8Array;
  private count = 0;

  constructor(capacity: number) {
    this.list = new Int32Array(capacity);
    this.listed = new Uint8Array(capacity);
  }

  /** Lists flow f unless it is listed already. */
  add(f: number): void {
    if (this.listed[f]) return;
    this.listed[f] = 1;
    this.list[this.count++] = f;
  }

  /** True when no flow is listed. */
  get empty(): boolean {
    return this.count === 0;
  }

  /** Calls fn for each listed flow, in order, and empties the queue. */
  drain(fn: (f: number) => void): void {
    for (let i = 0; i < this.count; i++) {
      const f = this.list[i];
      this.listed[f] = 0;
      fn(f);
    }
    this.count = 0;
  }
}

/** Connections with no activity at all for this long are reset. */
export const INACTIVITY_MS = 7_200_000;

/** a - b as an unsigned 32-bit distance. */
export function seqSub(a: number, b: number): number {
  return (a - b) >>> 0;
}

/** a + n, modulo 2^32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a strictly before b (modular, within MAX_WINDOW). */
export function seqLt(a: number, b: number): boolean {
  return ((b - a - 1) >>> 0) < MAX_WINDOW;
}

/** a before or equal to b (modular, within MAX_WINDOW). */
export function seqLe(a: number, b: number): boolean {
  return ((b - a) >>> 0) < MAX_WINDOW;
}

/** The sequence state of every connection, indexed by flow number. */
export class TcpConns {
  /** Next sequence number to send to the guest. */
  readonly seqToTap: Uint32Array;
  /** Highest acknowledgment received from the guest: socket data from here on is still queued. */
  readonly seqAckFromTap: Uint32Array;
  /** Next sequence number expected from the guest. */
  readonly seqFromTap: Uint32Array;
  /** Acknowledgment number last sent to the guest. */
  readonly seqAckToTap: Uint32Array;
  /** Sequence of the guest's last duplicate ACK request, to send one pair per gap. */
  readonly seqDupAck: Uint32Array;
  /** The guest's window in bytes (already scaled). */
  readonly wndFromTap: Uint32Array;
  /** The guest's window field as last received, unscaled (duplicate ACK detection). */
  readonly wndFromTapRaw: Uint16Array;
  /** Window last advertised to the guest, in bytes. */
  readonly wndToTap: Uint32Array;
  /** The guest's window scale shift (0 when it did not offer scaling). */
  readonly wsFromTap: Uint8Array;
  /** Our window scale toward the guest (0 when the guest did not offer scaling). */
  readonly wsToTap: Uint8Array;
  /** Largest segment payload toward the guest. */
  readonly mss: Uint32Array;
  /** Retransmissions (or SYN retries) since the guest last acknowledged something new. */
  readonly retries: Uint8Array;
  /** Bytes of guest data accepted but not yet written to the socket (see TcpSpill). */
  readonly spillLen: Uint32Array;
  /** Index of the spill buffer in use, -1 for none. */
  readonly spillBuf: Int32Array;
  /** The socket's free send space when last measured, and guest bytes written to it since (window estimate). */
  readonly sndSpace: Float64Array;
  readonly writtenSince: Float64Array;
  /** Segments queued to the guest (a wrapping count): tells whether one left since an ACK was asked for. */
  readonly segmentsOut: Uint32Array;

  constructor(capacity: number) {
    this.seqToTap = new Uint32Array(capacity);
    this.seqAckFromTap = new Uint32Array(capacity);
    this.seqFromTap = new Uint32Array(capacity);
    this.seqAckToTap = new Uint32Array(capacity);
    this.seqDupAck = new Uint32Array(capacity);
    this.wndFromTap = new Uint32Array(capacity);
    this.wndFromTapRaw = new Uint16Array(capacity);
    this.wndToTap = new Uint32Array(capacity);
    this.wsFromTap = new Uint8Array(capacity);
    this.wsToTap = new Uint8Array(capacity);
    this.mss = new Uint32Array(capacity);
    this.retries = new Uint8Array(capacity);
    this.spillLen = new Uint32Array(capacity);
    this.spillBuf = new Int32Array(capacity);
    this.sndSpace = new Float64Array(capacity);
    this.writtenSince = new Float64Array(capacity);
    this.segmentsOut = new Uint32Array(capacity);
  }

  /** Resets a connection's state when its flow is created. */
  reset(f: number): void {
    this.seqToTap[f] = this.seqAckFromTap[f] = this.seqFromTap[f] = this.seqAckToTap[f] = this.seqDupAck[f] = 0;
    this.wndFromTap[f] = WINDOW_DEFAULT;
    this.wndFromTapRaw[f] = 0;
    this.wndToTap[f] = WINDOW_DEFAULT;
    this.wsFromTap[f] = this.wsToTap[f] = 0;
    this.mss[f] = MSS_DEFAULT;
    this.retries[f] = 0;
    this.spillLen[f] = 0;
    this.spillBuf[f] = -1;
    this.sndSpace[f] = this.writtenSince[f] = 0;
  }
}

/**
 * Spill buffers: guest data that arrived in order while the socket was momentarily full.
 *
 * pasta drops such data and leaves the guest to recover by timeout (doc/tcp.md §6), which collapses throughput.
 * orzo keeps it in a bounded pool of fixed-size buffers instead, acknowledges it, and writes it when the socket
 * has room again; the window advertised meanwhile shrinks by what is held, so the guest slows down rather than
 * losing segments. When the pool is exhausted the data is refused (not acknowledged), as before.
 */
export class TcpSpill {
  /** Size of each buffer. */
  readonly size: number;
  private readonly bufs: Uint8Array[] = [];
  private readonly free: number[] = [];
  private readonly max: number;

  constructor(size: number, max: number) {
    this.size = size;
    this.max = max;
  }

  /** Takes a buffer; returns its index, or -1 when the pool is exhausted. */
  take(): number {
    const i = this.free.pop();
    if (i !== undefined) return i;
    if (this.bufs.length >= this.max) return -1;
    this.bufs.push(new Uint8Array(this.size));
    return this.bufs.length - 1;
  }

  /** The bytes of buffer i. */
  buffer(i: number): Uint8Array {
    return this.bufs[i];
  }

  /** Returns buffer i to the pool. */
  give(i: number): void {
    this.free.push(i);
  }
}

/** Counters of the TCP path. */
export interface TcpStats {
  opened: number;
  closed: number;
  resets: number;
  spilled: number;
  refused: number;
  retransmits: number;
}

/** True when the flow's side ts is IPv4. */
export function isV4(t: FlowTable, f: number, ts: Side): boolean {
  return inanyIsV4(t.addrBytes, t.addrOffset(f, ts));
}

/** The most payload per segment for an MTU: the MTU less IP and TCP headers, in whole pages above one page. */
export function mssForMtu(mtu: number, v4: boolean): number {
  const mss = mtu - (v4 ? 40 : 60);
  return mss > 4096 ? mss - (mss % 4096) : mss;
}

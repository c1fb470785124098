/**
 * Acknowledgments to the guest (doc/tcp.md §8): batched per loop cycle, and briefly delayed when small.
 *
 * Theory of operation. Guest payload written to a socket marks its connection; at the end of the loop cycle one
 * ACK per marked connection goes out, carrying the current window. A connection owed less than one segment's
 * worth, whose advertised window did not grow, waits up to ACK_DELAY_MS instead, as a delayed-ACK receiver does
 * (RFC 9293 3.8.6.3; Linux acknowledges at once only from a full segment on): request/response traffic then
 * carries the acknowledgment on the reply, which spares a tap write here and a pure ACK for the guest's kernel to
 * process, where passt sends both. Bulk traffic is not delayed: a cycle that brings a segment's worth is acknowledged at
 * its end. The loop wakes for the deadline by bounding its wait, so the delay costs no timer fd and no syscall.
 */
import type { EventLoop } from "../loop.ts";
import { TcpEvent } from "./tcp_state.ts";
import { seqSub, type TcpConns } from "./tcp_conn.ts";
import { FlowType, type FlowTable } from "./flow.ts";

/** Longest wait for a reply to carry a small acknowledgment: far below any guest's retransmission timeout. */
export const ACK_DELAY_MS = 0.5;

/** What the acknowledgments need from the connections. */
export interface AckSender {
  /** Recomputes the window offered to the guest (forced: ask the socket even if the estimate would do). */
  updateWindow(f: number, forced: boolean): void;
  /** Sends a pure ACK with the current acknowledgment number and window. */
  sendAck(f: number): void;
}

/** The ACKs owed to the guest by connection, marked during a cycle and sent (or delayed) at its end. */
export class TcpAcks {
  /** By flow: 1 an ACK is owed if anything changed, 2 one is owed regardless. */
  private readonly mark: Uint8Array;
  private readonly marked: Int32Array;
  private markedCount = 0;
  /** By flow: the connection's segment count when the ACK was last asked for. */
  private readonly outAtMark: Uint32Array;
  /** By flow: when a delayed ACK is due (performance.now() ms), 0 when none is; a flow is in `delayed` iff not 0. */
  private readonly due: Float64Array;
  private readonly delayed: Int32Array;
  private delayedCount = 0;

  constructor(
    private readonly t: FlowTable,
    private readonly c: TcpConns,
    private readonly loop: EventLoop,
    private readonly sender: AckSender,
  ) {
    this.mark = new Uint8Array(t.capacity);
    this.marked = new Int32Array(t.capacity);
    this.outAtMark = new Uint32Array(t.capacity);
    this.due = new Float64Array(t.capacity);
    this.delayed = new Int32Array(t.capacity);
  }

  /** Owes the guest an ACK at the end of this cycle (forced: even if nothing changed, and without delay). */
  later(f: number, forced: boolean): void {
    const m = this.mark[f];
    if (m === 0) this.marked[this.markedCount++] = f;
    this.outAtMark[f] = this.c.segmentsOut[f];
    if (forced) this.mark[f] = 2;
    else if (m === 0) this.mark[f] = 1;
  }

  /** True when an ACK was asked for in this cycle and not sent yet. */
  owed(f: number): boolean {
    return this.mark[f] !== 0;
  }

  /** Sends the ACKs owed, delays the small ones, and sends delayed ones that fell due without a reply. */
  flush(now: number): void {
    const c = this.c;
    for (let i = 0; i < this.markedCount; i++) {
      const f = this.marked[i];
      // A segment that left after the request carried the acknowledgment: a forced ACK would only repeat it.
      const requested = this.mark[f] === 2;
      const forced = requested && c.segmentsOut[f] === this.outAtMark[f];
      this.mark[f] = 0;
      if (!this.live(f)) continue;
      const oldWnd = c.wndToTap[f];
      this.sender.updateWindow(f, forced);
      const lag = seqSub(c.seqFromTap[f], c.seqAckToTap[f]);
      if (!forced) {
        const wnd = c.wndToTap[f];
        if (lag === 0 && wnd === oldWnd) continue;
        // A window that only shrank by what was written keeps its right edge: no news worth a frame of its own.
        if (!requested && lag > 0 && lag < c.mss[f] && wnd >>> c.wsToTap[f] <= oldWnd >>> c.wsToTap[f]) {
          if (this.due[f] === 0) {
            this.due[f] = now + ACK_DELAY_MS;
            this.delayed[this.delayedCount++] = f;
          }
          continue;
        }
      }
      this.send(f);
    }
    this.markedCount = 0;
    if (this.delayedCount > 0) this.flushDelayed(now);
  }

  /** Delayed ACKs: dropped once a segment carried the acknowledgment, sent when due; the loop wakes for the rest. */
  private flushDelayed(now: number): void {
    const c = this.c;
    let kept = 0;
    let next = Infinity;
    for (let i = 0; i < this.delayedCount; i++) {
      const f = this.delayed[i];
      if (!this.live(f) || c.seqAckToTap[f] === c.seqFromTap[f]) {
        this.due[f] = 0;
        continue;
      }
      if (now >= this.due[f]) {
        this.due[f] = 0;
        this.sender.updateWindow(f, false);
        this.send(f);
        continue;
      }
      if (this.due[f] < next) next = this.due[f];
      this.delayed[kept++] = f;
    }
    this.delayedCount = kept;
    if (kept > 0) this.loop.wakeBy(next);
  }

  private send(f: number): void {
    this.c.seqAckToTap[f] = this.c.seqFromTap[f];
    this.sender.sendAck(f);
  }

  private live(f: number): boolean {
    return this.t.type[f] === FlowType.TCP && this.t.events[f] !== TcpEvent.CLOSED;
  }
}

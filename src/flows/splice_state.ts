/**
 * Spliced TCP connection state (socket to socket, no tap) and the per-side epoll masks computed from it.
 *
 * Side 0 is the accepted socket, side 1 the one we connect. Data read from one side is spliced into the other;
 * when the other side cannot take it (OUT_WAIT on that side), this side stops reading so the pipe is not
 * overfilled: that cross-side effect is state here, so each side's mask is a pure function of the flow.
 */
import { EPOLLIN, EPOLLOUT, EPOLLRDHUP } from "../syscalls/constants.ts";

/** Spliced connection events; per-side bits are BIT << side. */
export const SpliceEvent = {
  CONNECT: 1 << 0,
  ESTABLISHED: 1 << 1,
  OUT_WAIT_0: 1 << 2,
  FIN_RCVD_0: 1 << 4,
  FIN_SENT_0: 1 << 6,
} as const;

/** Spliced connection flags. */
export const SpliceFlag = {
  /** Being torn down: both sockets leave epoll and are closed at the end of the cycle. */
  CLOSING: 1 << 4,
} as const;

/** OUT_WAIT for a side. */
export function spliceOutWait(side: number): number {
  return SpliceEvent.OUT_WAIT_0 << side;
}

/** FIN_RCVD for a side. */
export function spliceFinRcvd(side: number): number {
  return SpliceEvent.FIN_RCVD_0 << side;
}

/** FIN_SENT for a side. */
export function spliceFinSent(side: number): number {
  return SpliceEvent.FIN_SENT_0 << side;
}

/** The epoll mask of one side of a spliced connection; 0 with CLOSING means "remove". */
export function spliceEpollEvents(events: number, flags: number, side: number): number {
  if (flags & SpliceFlag.CLOSING) return 0;
  const other = side ^ 1;
  if (events & SpliceEvent.ESTABLISHED) {
    let mask = 0;
    if (!(events & spliceFinSent(other)) && !(events & spliceOutWait(other))) mask |= EPOLLIN | EPOLLRDHUP;
    if (events & spliceOutWait(side)) mask |= EPOLLOUT;
    return mask;
  }
  if (events & SpliceEvent.CONNECT && side === 1) return EPOLLOUT;
  return 0;
}

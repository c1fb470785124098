/**
 * TCP connection state bits (tap-side connections) and the socket's epoll mask computed from them.
 *
 * "events" are the connection's lifecycle milestones; "flags" are conditions that come and go. The epoll mask of
 * the socket is a pure function of both: every change of state is followed by flowEpollSet, which recomputes it,
 * so no caller ever passes an event mask. Waiting for the socket to take more data (EPOLLOUT after a short write)
 * is the SOCK_OUT_WAIT flag, not an ad-hoc mask bit, so a recompute never loses it.
 */
import { EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP } from "../syscalls/constants.ts";

/** TCP connection events. SOCK_ACCEPTED, TAP_SYN_RCVD and ESTABLISHED replace all bits; 0 is CLOSED. */
export const TcpEvent = {
  CLOSED: 0,
  SOCK_ACCEPTED: 1 << 0,
  TAP_SYN_RCVD: 1 << 1,
  ESTABLISHED: 1 << 2,
  /** Before ESTABLISHED: SYN-ACK sent to the tap. After: FIN received from the socket. */
  TAP_SYN_ACK_SENT: 1 << 3,
  SOCK_FIN_RCVD: 1 << 3,
  SOCK_FIN_SENT: 1 << 4,
  TAP_FIN_RCVD: 1 << 5,
  TAP_FIN_SENT: 1 << 6,
  TAP_FIN_ACKED: 1 << 7,
} as const;

/** TCP connection flags. */
export const TcpFlag = {
  STALLED: 1 << 0,
  ACTIVE_CLOSE: 1 << 2,
  ACK_FROM_TAP_DUE: 1 << 4,
  ACK_FROM_TAP_BLOCKS: 1 << 5,
  /** The socket did not take all data from the tap: wait for EPOLLOUT. */
  SOCK_OUT_WAIT: 1 << 7,
  /**
   * The last peek found nothing beyond what is in flight: the next byte comes with an epoll edge, so a guest ACK
   * need not peek again (it would only get EAGAIN).
   */
  SOCK_DRAINED: 1 << 8,
} as const;

/**
 * The socket's epoll mask for a connection's events and flags; 0 with CLOSED means "remove".
 *
 * Established sockets are edge-triggered: bytes already peeked stay queued until the guest acknowledges them, so
 * a level-triggered EPOLLIN would fire for data orzo already handled. An edge comes with every new arrival; when
 * orzo stops short of the queue's end (window full), the guest's acknowledgment resumes the reading, not epoll.
 * So stalling and resuming cost no epoll_ctl at all, unlike passt's level/edge switching.
 */
export function tcpEpollEvents(events: number, flags: number): number {
  if (events === TcpEvent.CLOSED) return 0;
  const out = flags & TcpFlag.SOCK_OUT_WAIT ? EPOLLOUT : 0;
  if (events & TcpEvent.ESTABLISHED) {
    if (events & (TcpEvent.TAP_FIN_SENT | TcpEvent.SOCK_FIN_RCVD)) return (EPOLLET | out) >>> 0;
    return (EPOLLIN | EPOLLRDHUP | EPOLLET | out) >>> 0;
  }
  if (events === TcpEvent.TAP_SYN_RCVD) return (EPOLLOUT | EPOLLET | EPOLLRDHUP) >>> 0;
  return (EPOLLET | EPOLLRDHUP) >>> 0;
}

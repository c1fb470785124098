/**
 * epoll_ref: the 64-bit data word of every fd registered in epoll, handled as two u32 halves.
 *
 *   low word:  bits 0-7 type (EpollType), bits 8-31 fd (so fds must stay below 2^24)
 *   high word: payload, by type: a flow side index (flow << 1 | side) for flow sockets, a plain flow index for
 *              TCP timers, a listening-socket reference (port, pif, rule) for listeners, or a plain index.
 *
 * The loop decodes the type to pick a handler and passes fd and payload down, so no handler needs a lookup to
 * find what woke it. Keeping the halves apart avoids BigInt on the wait path.
 */

/** What an fd in epoll is: the loop dispatches on this. */
export const EpollType = {
  NONE: 0,
  TCP: 1,
  TCP_SPLICE: 2,
  TCP_LISTEN: 3,
  TCP_TIMER: 4,
  UDP_LISTEN: 5,
  UDP: 6,
  PING: 7,
  NSQUIT_INOTIFY: 8,
  NSQUIT_TIMER: 9,
  TAP_PASTA: 10,
  TAP_PASST: 11,
  TAP_LISTEN: 12,
  NS_AGENT: 13,
  CHILD_EXIT: 14,
  WAKE: 15,
  RUNTIME: 16,
} as const;

/** An epoll type value. */
export type EpollType = (typeof EpollType)[keyof typeof EpollType];

/** Number of epoll types, for per-type tables. */
export const EPOLL_TYPE_COUNT = 17;

/** Largest fd an epoll_ref can carry. */
export const FD_REF_MAX = 0xffffff;

/** The low word of an epoll_ref: type and fd. The fd must be within 0..FD_REF_MAX. */
export function refLo(type: number, fd: number): number {
  return (type | (fd << 8)) >>> 0;
}

/** The type stored in an epoll_ref's low word. */
export function refType(lo: number): number {
  return lo & 0xff;
}

/** The fd stored in an epoll_ref's low word. */
export function refFd(lo: number): number {
  return lo >>> 8;
}

/** A flow side index: flow index and side (0 initiating, 1 target) in one u32. */
export function sidx(flow: number, side: number): number {
  return ((flow << 1) | side) >>> 0;
}

/** The flow index of a flow side index. */
export function sidxFlow(s: number): number {
  return s >>> 1;
}

/** The side (0 or 1) of a flow side index. */
export function sidxSide(s: number): number {
  return s & 1;
}

/** A listening socket's payload: bound port, pif on which it listens, forwarding rule index. */
export function listenRef(port: number, pif: number, rule: number): number {
  return (port | (pif << 16) | (rule << 24)) >>> 0;
}

/** The bound port of a listening socket's payload. */
export function listenPort(p: number): number {
  return p & 0xffff;
}

/** The pif of a listening socket's payload. */
export function listenPif(p: number): number {
  return (p >>> 16) & 0xff;
}

/** The forwarding rule index of a listening socket's payload. */
export function listenRule(p: number): number {
  return p >>> 24;
}

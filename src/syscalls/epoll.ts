/**
 * epoll: create, control and wait, with epoll_event arrays as Uint32Array words.
 *
 * struct epoll_event is 12 packed bytes on x86_64: word 0 is the event mask, words 1 and 2 the low and high
 * halves of the 64-bit data (the epoll_ref). Keeping the halves apart means no BigInt on the wait path.
 */
import { EPOLL_CLOEXEC } from "./constants.ts";
import { check, libc, ret } from "./libc.ts";
import { Mem } from "./mem.ts";
import { EPOLL_EVENT, TIMESPEC } from "./structs.ts";

/** A preallocated array of epoll_event structs for epoll_wait. */
export class EpollEvents {
  /** Capacity in events. */
  readonly capacity: number;
  /** The raw memory. */
  readonly mem: Mem;
  /** Words: events at [3i], data low at [3i+1], data high at [3i+2]. */
  readonly words: Uint32Array;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.mem = new Mem(capacity * EPOLL_EVENT.size);
    this.words = this.mem.u32;
  }
}

/** One event struct for epoll_ctl, reused by every call on this thread. */
const ctlEvent = new Mem(EPOLL_EVENT.size);

/** epoll_create1(EPOLL_CLOEXEC); throws on failure. */
export function epollCreate(): number {
  return check("epoll_create1", libc.epoll_create1(EPOLL_CLOEXEC));
}

/** epoll_ctl(2) with the event mask and the two halves of the 64-bit data; returns 0 or -errno. */
export function epollCtl(epfd: number, op: number, fd: number, events: number, dataLo: number, dataHi: number): number {
  const w = ctlEvent.u32;
  w[EPOLL_EVENT.events] = events;
  w[EPOLL_EVENT.dataLo] = dataLo;
  w[EPOLL_EVENT.dataHi] = dataHi;
  return ret(libc.epoll_ctl(epfd, op, fd, ctlEvent.addr));
}

/** epoll_wait(2) into an event array; returns the number of events or -errno (-EINTR on a signal). */
export function epollWait(epfd: number, events: EpollEvents, timeoutMs: number): number {
  return ret(libc.epoll_wait(epfd, events.mem.addr, events.capacity, timeoutMs));
}

/** The timeout of epollWaitPrecise, reused by every call on this thread. */
const waitTimeout = new Mem(TIMESPEC.size);

/** epoll_pwait2(2): epollWait with a timeout to the nanosecond (timeoutMs ≥ 0, fractions kept). */
export function epollWaitPrecise(epfd: number, events: EpollEvents, timeoutMs: number): number {
  const sec = Math.floor(timeoutMs / 1000);
  waitTimeout.setU64(TIMESPEC.sec, sec);
  waitTimeout.setU64(TIMESPEC.nsec, Math.floor((timeoutMs - sec * 1000) * 1e6));
  return ret(libc.epoll_pwait2(epfd, events.mem.addr, events.capacity, waitTimeout.addr, null));
}

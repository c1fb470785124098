/** timerfd and eventfd: the loop's only clocks and wake-ups (Bun timers do not run while epoll_wait blocks). */
import { check, libc, ret } from "./libc.ts";
import { Mem } from "./mem.ts";
import { ITIMERSPEC } from "./structs.ts";

const spec = new Mem(ITIMERSPEC.size);
const counter = new Mem(8);

/** timerfd_create(2); throws on failure. */
export function timerfdCreate(clock: number, flags: number): number {
  return check("timerfd_create", libc.timerfd_create(clock, flags));
}

/** Arms a timerfd: first expiry after valueMs (0 disarms), then every intervalMs (0: one-shot). 0 or -errno. */
export function timerfdSet(fd: number, valueMs: number, intervalMs: number): number {
  writeTimespec(ITIMERSPEC.valueSec, valueMs);
  writeTimespec(ITIMERSPEC.intervalSec, intervalMs);
  return ret(libc.timerfd_settime(fd, 0, spec.addr, null));
}

/** Milliseconds until a timerfd's next expiry (0 when disarmed), or -errno. */
export function timerfdRemainingMs(fd: number): number {
  const r = ret(libc.timerfd_gettime(fd, spec.addr));
  if (r < 0) return r;
  return spec.getU64(ITIMERSPEC.valueSec) * 1000 + spec.getU64(ITIMERSPEC.valueNsec) / 1e6;
}

/** eventfd(2); throws on failure. */
export function eventfdCreate(initial: number, flags: number): number {
  return check("eventfd", libc.eventfd(initial, flags));
}

/** Reads the 8-byte counter of a timerfd or eventfd; returns its value (below 2^53) or -errno. */
export function readCounter(fd: number): number {
  const r = ret(libc.read(fd, counter.addr, 8));
  return r < 0 ? r : counter.getU64(0);
}

/** Adds to an eventfd's counter; returns 8 or -errno. */
export function writeCounter(fd: number, value: number): number {
  counter.setU64(0, value);
  return ret(libc.write(fd, counter.addr, 8));
}

function writeTimespec(off: number, ms: number): void {
  const sec = Math.floor(ms / 1000);
  spec.setU64(off, sec);
  spec.setU64(off + 8, Math.round((ms - sec * 1000) * 1e6));
}

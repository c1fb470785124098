/** poll(2) on one fd: a bounded wait for setup-path request/response exchanges (netlink) outside the event loop. */
import { libc, ret } from "./libc.ts";
import { Mem } from "./mem.ts";
import { POLLFD } from "./structs.ts";

const pollfd = new Mem(POLLFD.size);

/** Waits up to timeoutMs for events on fd; returns the events that occurred (revents), 0 on timeout, or -errno. */
export function pollOne(fd: number, events: number, timeoutMs: number): number {
  pollfd.view.setInt32(POLLFD.fd, fd, true);
  pollfd.view.setInt16(POLLFD.events, events, true);
  pollfd.view.setInt16(POLLFD.revents, 0, true);
  const r = ret(libc.poll(pollfd.addr, 1, timeoutMs));
  return r <= 0 ? r : pollfd.view.getUint16(POLLFD.revents, true);
}

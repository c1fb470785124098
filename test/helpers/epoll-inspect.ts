/** Reads what an epoll instance holds from /proc/self/fdinfo: the kernel's own view of each registration. */
import { readFileSync } from "node:fs";

/** One registration as the kernel reports it. */
export interface EpollRegistration {
  fd: number;
  events: number;
  /** Low and high 32-bit words of the registered data (the epoll_ref). */
  dataLo: number;
  dataHi: number;
}

const ALWAYS_REPORTED = 0x8 | 0x10;

/** Every fd registered in an epoll instance of this process. */
export function epollRegistrations(epfd: number): Map<number, EpollRegistration> {
  const out = new Map<number, EpollRegistration>();
  for (const line of readFileSync(`/proc/self/fdinfo/${epfd}`, "utf8").split("\n")) {
    const m = /^tfd:\s+(\d+)\s+events:\s+([0-9a-f]+)\s+data:\s+([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const data = m[3].padStart(16, "0");
    out.set(Number(m[1]), {
      fd: Number(m[1]),
      // The kernel adds EPOLLERR|EPOLLHUP to every registration: report what was asked for.
      events: (parseInt(m[2], 16) & ~ALWAYS_REPORTED) >>> 0,
      dataHi: parseInt(data.slice(0, 8), 16) >>> 0,
      dataLo: parseInt(data.slice(8), 16) >>> 0,
    });
  }
  return out;
}

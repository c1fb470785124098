/**
 * C struct layouts (x86_64) shared by the wrappers: sizes and field offsets, defined once.
 *
 * 64-bit fields are written as two u32 halves through Mem.setU64, so no BigInt is ever made.
 */

/** struct iovec { void *iov_base; size_t iov_len; } */
export const IOVEC = { size: 16, base: 0, len: 8 } as const;

/** struct msghdr. */
export const MSGHDR = {
  size: 56,
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
} as const;

/** struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; } (padded to 64). */
export const MMSGHDR = { size: 64, hdr: 0, len: 56 } as const;

/** struct epoll_event: packed on x86_64, so 12 bytes, the 64-bit data as two u32 words at 4 and 8. */
export const EPOLL_EVENT = { size: 12, words: 3, events: 0, dataLo: 1, dataHi: 2 } as const;

/** struct pollfd { int fd; short events; short revents; } */
export const POLLFD = { size: 8, fd: 0, events: 4, revents: 6 } as const;

/** struct itimerspec { struct timespec it_interval, it_value; } with 64-bit seconds and nanoseconds. */
export const ITIMERSPEC = { size: 32, intervalSec: 0, intervalNsec: 8, valueSec: 16, valueNsec: 24 } as const;

/** struct timespec { time_t tv_sec; long tv_nsec; } */
export const TIMESPEC = { size: 16, sec: 0, nsec: 8 } as const;

/** struct linger { int l_onoff; int l_linger; } */
export const LINGER = { size: 8, onoff: 0, linger: 4 } as const;

/** struct ifreq: 16-byte name, then a 24-byte union (flags as a short at 16). */
export const IFREQ = { size: 40, name: 0, nameLen: 16, flags: 16 } as const;

/** struct sockaddr_in, sockaddr_in6, sockaddr_un and sockaddr_storage sizes and offsets. */
export const SOCKADDR = {
  family: 0,
  port: 2,
  in4Addr: 4,
  in4Size: 16,
  in6Flowinfo: 4,
  in6Addr: 8,
  in6ScopeId: 24,
  in6Size: 28,
  unPath: 2,
  unPathMax: 108,
  unSize: 110,
  storageSize: 128,
} as const;

/** struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; }: the data follows at 16, each aligned to 8. */
export const CMSGHDR = { size: 16, len: 0, level: 8, type: 12, align: 8 } as const;

/** struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; } and struct in6_pktinfo. */
export const IN_PKTINFO = { size: 12, addr: 8, size6: 20, addr6: 0 } as const;

/**
 * struct sock_extended_err (linux/errqueue.h), the data of an IP_RECVERR / IPV6_RECVERR control message; the
 * offender's sockaddr (SO_EE_OFFENDER) follows the 16-byte struct.
 */
export const SOCK_EXTENDED_ERR = { size: 16, errno: 0, origin: 4, type: 5, code: 6, info: 8, data: 12, offender: 16 } as const;

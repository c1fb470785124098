/**
 * Isolation stages 4 to 6 (doc/isolation.md), once set-up is done and the instance is ready: no core dumps
 * and no ptrace by others (PR_SET_DUMPABLE 0, process-wide), an empty read-only filesystem (pivot_root inside
 * the mount namespace the exec chain made for the whole process), then the seccomp allow-list with
 * no_new_privs, synchronised over every thread.
 *
 * The allow-lists are what the data path calls (traced with scripts/seccomp-trace.sh over the test suite and
 * the benchmark) plus what Bun's runtime needs on its own threads: memory (mmap, mprotect with PROT_EXEC for
 * the JIT, madvise, munmap), threads (clone3, futex, rseq, set_robust_list), signals (rt_sig*, tgkill),
 * getrandom, clock_gettime when the vDSO falls back, and openat/newfstatat: the garbage collector reads
 * /proc/self/statm, which the empty root answers with ENOENT, and Bun carries on without it.
 */
import { log } from "../log.ts";
import {
  AF_INET, AF_INET6, IP_FREEBIND, IP_PKTINFO, IP_RECVERR, IP_TTL, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPV6_FREEBIND,
  IPV6_RECVERR, IPV6_RECVPKTINFO, IPV6_UNICAST_HOPS, IPV6_V6ONLY, SIOCOUTQ, SO_BINDTODEVICE, SO_LINGER, SO_PEEK_OFF,
  SO_RCVBUF, SO_REUSEADDR, SO_SNDBUF, SOL_SOCKET, TCP_NODELAY, MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, UMOUNT_NOFOLLOW } from "../syscalls/constants.ts";
import { chdir, mount, pivotRoot, prctl, rawSyscall, umount2 } from "../syscalls/process.ts";
import { errnoName } from "../syscalls/errno.ts";
import { buildFilter, installFilter, type ArgRule } from "./seccomp.ts";
import { prepareTrim } from "./trim.ts";
import { SYSCALL_NUMBERS, type SyscallName } from "./syscall_numbers.ts";

/** The developer switch that skips stages 5 and 6 (for profilers and strace): see doc/isolation.md. */
export const NO_SANDBOX_ENV = "ORZO_NO_SANDBOX";
/** Test-only: after the filter is in place, make this system call (by name) and log the outcome. */
export const SECCOMP_PROBE_ENV = "ORZO_TEST_SECCOMP_PROBE";
/**
 * Developer switch for re-deriving the allow-lists (bench/seccomp-derive.ts): the filter lets unlisted calls
 * through and the kernel logs each (SECCOMP_RET_LOG), instead of failing them.
 */
export const SYSCALL_LOG_ENV = "ORZO_SECCOMP_LOG";

/** Calls of the data path, hottest first: the filter compares in this order. */
const DATA_PATH: readonly SyscallName[] = [
  "epoll_wait", "epoll_pwait2", "read", "write", "recvfrom", "sendto", "recvmmsg", "sendmmsg", "readv",
  "writev", "recvmsg", "sendmsg", "futex", "sched_yield", "madvise", "pread64", "ioctl", "epoll_ctl", "setsockopt",
  "getsockopt", "close", "socket", "connect", "accept4", "bind", "listen", "shutdown", "getsockname", "getpeername",
  "fcntl", "timerfd_create", "timerfd_settime", "timerfd_gettime", "eventfd2", "ftruncate", "lseek",
  "wait4", "waitid", "restart_syscall",
];

/** What Bun's runtime calls on its own threads, whatever orzo does. */
const RUNTIME: readonly SyscallName[] = [
  "mmap", "munmap", "mprotect", "mremap", "brk", "clone", "clone3", "exit", "exit_group", "rseq", "set_robust_list",
  "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "tgkill", "gettid", "getpid", "getrandom",
  "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "sched_getaffinity", "prlimit64", "prctl",
  "membarrier", "poll", "ppoll", "openat", "newfstatat", "fstat", "statx", "getcwd", "readlink", "uname",
  "sysinfo", "dup", "dup3",
];

/** pasta alone: spliced connections move their bytes through pipes. */
const PASTA_ONLY: readonly SyscallName[] = ["splice", "pipe2"];

/** passt alone: its socket file is removed at the end, through the fd of its directory. */
const PASST_ONLY: readonly SyscallName[] = ["unlinkat"];

/**
 * Calls allowed with certain arguments only. Sockets of the IP families alone: no netlink (the namespace's
 * configuration is done), no packet sockets; the one ioctl the data path makes (SIOCOUTQ, the bytes a TCP
 * socket has not sent yet); the socket options orzo sets, none of which needs a capability (SO_MARK,
 * IP_TRANSPARENT or SO_RCVBUFFORCE would need CAP_NET_ADMIN). What CAP_NET_ADMIN still allows is then out of
 * reach: see doc/isolation.md.
 */
export const ARG_RULES: readonly ArgRule[] = [
  { call: "socket", arg: 0, values: [AF_INET, AF_INET6] },
  { call: "ioctl", arg: 1, values: [SIOCOUTQ] },
  {
    call: "setsockopt", arg: 1, arg2: 2, pairs: [
      [IPPROTO_TCP, TCP_NODELAY],
      [SOL_SOCKET, SO_PEEK_OFF], [SOL_SOCKET, SO_LINGER], [SOL_SOCKET, SO_REUSEADDR], [SOL_SOCKET, SO_RCVBUF],
      [SOL_SOCKET, SO_SNDBUF], [SOL_SOCKET, SO_BINDTODEVICE],
      [IPPROTO_IP, IP_TTL], [IPPROTO_IP, IP_FREEBIND], [IPPROTO_IP, IP_PKTINFO], [IPPROTO_IP, IP_RECVERR],
      [IPPROTO_IPV6, IPV6_UNICAST_HOPS], [IPPROTO_IPV6, IPV6_FREEBIND], [IPPROTO_IPV6, IPV6_RECVPKTINFO],
      [IPPROTO_IPV6, IPV6_RECVERR], [IPPROTO_IPV6, IPV6_V6ONLY],
    ],
  },
];

/** The allow-list of a mode, hottest calls first. */
export function allowList(mode: "pasta" | "passt"): SyscallName[] {
  return mode === "pasta" ? [...PASTA_ONLY, ...DATA_PATH, ...RUNTIME] : [...DATA_PATH, ...RUNTIME, ...PASST_ONLY];
}

/** Stage 5: the process's root becomes an empty read-only tmpfs; the host's files are out of reach. */
function emptyRoot(): void {
  // /tmp is only a mount point here: the mount lives in orzo's own mount namespace and goes with it.
  mount("tmpfs", "/tmp", "tmpfs", MS_RDONLY | MS_NODEV | MS_NOEXEC | MS_NOSUID, "nr_inodes=2,nr_blocks=0");
  chdir("/tmp");
  pivotRoot(".", ".");
  umount2(".", MNT_DETACH | UMOUNT_NOFOLLOW);
  chdir("/");
}

/** Stages 4 to 6, in order; throws an Error naming the stage that failed. */
export function confine(mode: "pasta" | "passt"): void {
  const trim = prepareTrim();
  prctl(PR_SET_DUMPABLE, 0);
  if (process.env[NO_SANDBOX_ENV] === "1") {
    log.warn(`${NO_SANDBOX_ENV}=1: the filesystem view and the system call filter are left as they are`);
    return;
  }
  try {
    emptyRoot();
  } catch (e) {
    throw new Error(`isolation: an empty filesystem view: ${(e as Error).message}`);
  }
  // no_new_privs on this thread first: the synchronised filter then sets it on every other thread.
  prctl(PR_SET_NO_NEW_PRIVS, 1);
  installFilter(buildFilter(allowList(mode), process.env[SYSCALL_LOG_ENV] === "1", ARG_RULES));
  trim();
  const probe = process.env[SECCOMP_PROBE_ENV];
  if (probe !== undefined && probe in SYSCALL_NUMBERS) {
    const r = rawSyscall(SYSCALL_NUMBERS[probe as SyscallName]);
    log.warn(`seccomp probe: ${probe} returned ${r < 0 ? errnoName(-r) : r}`);
  }
}

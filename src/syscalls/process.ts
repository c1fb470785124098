/** Devices, namespaces and process attributes: ioctl, setns, unshare, prctl, identities. */
import type { Pointer } from "bun:ffi";
import { CLOSE_RANGE_CLOEXEC, SECCOMP_SET_MODE_FILTER, SYS_PIVOT_ROOT, SYS_SECCOMP, WNOHANG } from "./constants.ts";
import { addressOf, check, libc, peek, ret } from "./libc.ts";
import { encodeCString } from "./strings.ts";

/** ioctl(2) with a pointer argument; returns the result or -errno. */
export function ioctlPtr(fd: number, request: number, arg: number | Uint8Array): number {
  return ret(libc.ioctl(fd, request, arg));
}

/** ioctl(2) with an integer argument passed by value (e.g. TUNSETOFFLOAD); returns the result or -errno. */
export function ioctlInt(fd: number, request: number, arg: number): number {
  return ret(libc.ioctl_int(fd, request, arg));
}

/** setns(2) for the calling thread; throws on failure. */
export function setns(fd: number, nstype: number): void {
  check("setns", libc.setns(fd, nstype));
}

/** unshare(2); throws on failure (EINVAL for a user namespace in a multithreaded process). */
export function unshare(flags: number): void {
  check("unshare", libc.unshare(flags));
}

/** prctl(2) with one argument; throws on failure. */
export function prctl(option: number, arg: number): void {
  check("prctl", libc.prctl(option, arg, 0, 0, 0));
}

/** The process ID as the kernel sees it in the caller's PID namespace. */
export function getpid(): number {
  return libc.getpid();
}

/** Lets other runnable threads on this CPU run first (returns at once when there are none). */
export function schedYield(): void {
  libc.sched_yield();
}

/** The real user ID. */
export function getuid(): number {
  return libc.getuid();
}

/** The real group ID. */
export function getgid(): number {
  return libc.getgid();
}

/** The effective user ID. */
export function geteuid(): number {
  return libc.geteuid();
}

/** The effective group ID. */
export function getegid(): number {
  return libc.getegid();
}

/** A user's ID and primary group from the system's user database (NSS), or undefined when there is none. */
export function userByName(name: string): { uid: number; gid: number } | undefined {
  const p = libc.getpwnam(encodeCString(name));
  // struct passwd: char *pw_name, char *pw_passwd, uid_t pw_uid, gid_t pw_gid, ...
  return p ? { uid: peek.u32(p as unknown as Pointer, 16), gid: peek.u32(p as unknown as Pointer, 20) } : undefined;
}

/** A group's ID from the system's group database (NSS), or undefined when there is none. */
export function groupByName(name: string): number | undefined {
  const g = libc.getgrnam(encodeCString(name));
  // struct group: char *gr_name, char *gr_passwd, gid_t gr_gid, ...
  return g ? peek.u32(g as unknown as Pointer, 16) : undefined;
}

/** The index of a network interface by name, or 0 when there is none. */
export function ifNameToIndex(name: string): number {
  return libc.if_nametoindex(encodeCString(name));
}

/** inotify_init1(2); throws on failure. */
export function inotifyInit(flags: number): number {
  return check("inotify_init1", libc.inotify_init1(flags));
}

/** inotify_add_watch(2) on a path; returns the watch descriptor; throws a SyscallError naming the path. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return check("inotify_add_watch", libc.inotify_add_watch(fd, encodeCString(path), mask), path);
}

/** dup2(2); throws on failure. */
export function dup2(oldFd: number, newFd: number): void {
  check("dup2", libc.dup2(oldFd, newFd));
}

/** setsid(2): a new session, detached from the controlling terminal; returns the session ID or -errno. */
export function setsid(): number {
  return ret(libc.setsid());
}

/** pidfd_open(2): an fd that turns readable when the process exits; throws on failure. */
export function pidfdOpen(pid: number): number {
  return check("pidfd_open", libc.pidfd_open(pid, 0));
}

/** An array of C string pointers (NULL-terminated) and the strings it points into, kept alive together. */
function cStringArray(items: readonly string[]): { array: Uint32Array; keep: Uint8Array[] } {
  const keep = items.map(encodeCString);
  // Pointers are 64-bit: two 32-bit halves each, so no BigInt is needed.
  const array = new Uint32Array((items.length + 1) * 2);
  keep.forEach((s, i) => {
    const a = addressOf(s);
    array[2 * i] = a >>> 0;
    array[2 * i + 1] = Math.floor(a / 2 ** 32);
  });
  return { array, keep };
}

/**
 * execve(2): replaces the whole process (every thread) with path, keeping its PID and the fds without
 * FD_CLOEXEC. Returns only on failure, by throwing a SyscallError naming path.
 */
export function execve(path: string, argv: readonly string[], env: readonly string[]): never {
  const a = cStringArray(argv);
  const e = cStringArray(env);
  check("execve", libc.execve(encodeCString(path), a.array, e.array), path);
  throw new Error("execve returned");
}

/** Marks every fd from `first` on close-on-exec (close_range(2) with CLOSE_RANGE_CLOEXEC); throws on failure. */
export function cloexecFrom(first: number): void {
  check("close_range", libc.close_range(first, 0xffffffff, CLOSE_RANGE_CLOEXEC));
}

/**
 * waitpid(2) without blocking: the child's status in the shell's convention (its exit code, or 128 + the signal
 * that killed it), or -1 while it runs. Throws on failure (ECHILD: not our child).
 */
export function reapChild(pid: number): number {
  const status = new Int32Array(1);
  const r = check("waitpid", libc.waitpid(pid, status, WNOHANG));
  if (r === 0) return -1;
  const s = status[0];
  return (s & 0x7f) === 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f);
}

/** mount(2) with a string for each name (null for none); throws a SyscallError naming the target. */
export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  const c = (s: string | null) => (s === null ? null : encodeCString(s));
  check("mount", libc.mount(c(source), encodeCString(target), c(fstype), flags, c(data)), target);
}

/** umount2(2); throws a SyscallError naming the target. */
export function umount2(target: string, flags: number): void {
  check("umount2", libc.umount2(encodeCString(target), flags), target);
}

/** chdir(2); throws a SyscallError naming the path. */
export function chdir(path: string): void {
  check("chdir", libc.chdir(encodeCString(path)), path);
}

/** pivot_root(2): the mount namespace's root becomes newRoot, the old one is put at putOld; throws on failure. */
export function pivotRoot(newRoot: string, putOld: string): void {
  const n = encodeCString(newRoot);
  const o = encodeCString(putOld);
  check("pivot_root", libc.syscall3(SYS_PIVOT_ROOT, addressOf(n), addressOf(o), 0));
}

/** sethostname(2) in the calling thread's UTS namespace; throws on failure. */
export function sethostname(name: string): void {
  const bytes = new TextEncoder().encode(name);
  check("sethostname", libc.sethostname(bytes, bytes.length));
}

/** gethostname(2): the calling thread's UTS namespace's host name. */
export function gethostname(): string {
  const buf = new Uint8Array(256);
  check("gethostname", libc.gethostname(buf, buf.length));
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

/** struct sock_fprog: u16 len (in 8-byte instructions), then (8-aligned) the address of the program. */
const SOCK_FPROG = { size: 16, len: 0, filter: 8 } as const;

/**
 * seccomp(2) SECCOMP_SET_MODE_FILTER with a classic BPF program (struct sock_filter instructions); flags such
 * as SECCOMP_FILTER_FLAG_TSYNC. Returns 0, the ID of a thread that could not be synchronised, or -errno.
 */
export function seccompSetFilter(flags: number, program: Uint8Array): number {
  const fprog = new Uint8Array(SOCK_FPROG.size);
  const v = new DataView(fprog.buffer);
  v.setUint16(SOCK_FPROG.len, program.length / 8, true);
  const addr = addressOf(program);
  v.setUint32(SOCK_FPROG.filter, addr >>> 0, true);
  v.setUint32(SOCK_FPROG.filter + 4, Math.floor(addr / 2 ** 32), true);
  return ret(libc.syscall3(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, addressOf(fprog)));
}

/** A raw system call with no arguments, for the filter's observable-outcome probe; returns its result or -errno. */
export function rawSyscall(nr: number): number {
  return ret(libc.syscall3(nr, 0, 0, 0));
}

/** madvise(2) over [addr, addr + len) (page-aligned); returns 0 or -errno. */
export function madvise(addr: number, len: number, advice: number): number {
  return ret(libc.madvise(addr, len, advice));
}

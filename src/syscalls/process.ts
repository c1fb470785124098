/** Devices, namespaces and process attributes: ioctl, setns, unshare, prctl, identities. */
import { check, libc, ret } from "./libc.ts";
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

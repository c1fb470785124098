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

/**
 * The C library, bound through bun:ffi: the one place where symbols are declared.
 *
 * Widths follow the C prototypes exactly: size_t and other 64-bit parameters are u64 (a negative i32 passed
 * where C expects 64 bits gets zero-extended once the JIT warms up), ssize_t returns are read as i32 (the value
 * sits in eax; sizes stay far below 2 GiB, and an i64 return would cost a BigInt). Each symbol is bound on first
 * use, because binding costs about 0.3 ms per symbol and start-up time is a feature.
 *
 * errno is read right after each failing call through __errno_location, bound once for the main thread.
 */
import { dlopen, ptr as ffiPtr, read, CString, type FFIFunction, type Pointer } from "bun:ffi";
import { setErrnoDescriber, SyscallError } from "./errno.ts";

const LIBC = "libc.so.6";

/** Every libc symbol the project uses, with its C signature. */
const SIGNATURES = {
  __errno_location: { args: [], returns: "ptr" },
  strerror: { args: ["i32"], returns: "ptr" },
  // sockets
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  listen: { args: ["i32", "i32"], returns: "i32" },
  accept4: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  getpeername: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  // I/O
  read: { args: ["i32", "ptr", "u64"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i32" },
  readv: { args: ["i32", "ptr", "i32"], returns: "i32" },
  writev: { args: ["i32", "ptr", "i32"], returns: "i32" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
  recvfrom: { args: ["i32", "ptr", "u64", "i32", "ptr", "ptr"], returns: "i32" },
  sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i32" },
  recvmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
  recvmmsg: { args: ["i32", "ptr", "u32", "i32", "ptr"], returns: "i32" },
  sendmmsg: { args: ["i32", "ptr", "u32", "i32"], returns: "i32" },
  splice: { args: ["i32", "ptr", "i32", "ptr", "u64", "u32"], returns: "i32" },
  pipe2: { args: ["ptr", "i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  memmove: { args: ["ptr", "ptr", "u64"], returns: "ptr" },
  open: { args: ["ptr", "i32", "u32"], returns: "i32" },
  openat: { args: ["i32", "ptr", "i32", "u32"], returns: "i32" },
  unlinkat: { args: ["i32", "ptr", "i32"], returns: "i32" },
  ftruncate: { args: ["i32", "u64"], returns: "i32" },
  // event sources
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  epoll_pwait2: { args: ["i32", "ptr", "i32", "ptr", "ptr"], returns: "i32" },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  timerfd_create: { args: ["i32", "i32"], returns: "i32" },
  timerfd_settime: { args: ["i32", "i32", "ptr", "ptr"], returns: "i32" },
  timerfd_gettime: { args: ["i32", "ptr"], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  // devices, namespaces, process
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  ioctl_int: { args: ["i32", "u64", "u64"], returns: "i32" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  unshare: { args: ["i32"], returns: "i32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  getpid: { args: [], returns: "i32" },
  sched_yield: { args: [], returns: "i32" },
  getuid: { args: [], returns: "u32" },
  getgid: { args: [], returns: "u32" },
  geteuid: { args: [], returns: "u32" },
  getegid: { args: [], returns: "u32" },
  getpwnam: { args: ["ptr"], returns: "ptr" },
  getgrnam: { args: ["ptr"], returns: "ptr" },
  if_nametoindex: { args: ["ptr"], returns: "u32" },
  inotify_init1: { args: ["i32"], returns: "i32" },
  inotify_add_watch: { args: ["i32", "ptr", "u32"], returns: "i32" },
  dup2: { args: ["i32", "i32"], returns: "i32" },
  setsid: { args: [], returns: "i32" },
  pidfd_open: { args: ["i32", "u32"], returns: "i32" },
  waitpid: { args: ["i32", "ptr", "i32"], returns: "i32" },
  execve: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
  close_range: { args: ["u32", "u32", "i32"], returns: "i32" },
  // isolation: the filesystem view, the hostname, the system call filter
  mount: { args: ["ptr", "ptr", "ptr", "u64", "ptr"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  umount2: { args: ["ptr", "i32"], returns: "i32" },
  chdir: { args: ["ptr"], returns: "i32" },
  sethostname: { args: ["ptr", "u64"], returns: "i32" },
  gethostname: { args: ["ptr", "u64"], returns: "i32" },
  // A raw system call with up to three arguments (pointers passed as addresses): pivot_root, seccomp, probes.
  syscall3: { args: ["i64", "i64", "i64", "i64"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

/** Names bound under another key: one dlopen gives one signature per symbol, so ioctl with an integer
 * argument needs a binding of its own. */
const SYMBOL_OF: Partial<Record<keyof typeof SIGNATURES, string>> = { ioctl_int: "ioctl", syscall3: "syscall" };

/** A libc function as called from the wrappers: pointers are passed as numbers or typed arrays. */
type CFunction = (...args: (number | ArrayBufferView | null)[]) => number;

/** The lazily bound libc symbols: the first access binds, later accesses are plain property reads. */
export const libc = {} as { readonly [K in keyof typeof SIGNATURES]: CFunction };

for (const name of Object.keys(SIGNATURES) as (keyof typeof SIGNATURES)[]) {
  Object.defineProperty(libc, name, {
    configurable: true,
    enumerable: true,
    get(): CFunction {
      const symbol = SYMBOL_OF[name] ?? name;
      const lib = dlopen(LIBC, { [symbol]: SIGNATURES[name] } as Record<string, FFIFunction>);
      const fn = lib.symbols[symbol] as unknown as CFunction;
      Object.defineProperty(libc, name, { value: fn, writable: false, enumerable: true });
      return fn;
    },
  });
}

let errnoAddr = 0;

/** The calling thread's errno: read it right after the call that failed, before anything else runs. */
export function errno(): number {
  if (errnoAddr === 0) errnoAddr = libc.__errno_location() as number;
  return read.i32(errnoAddr as Pointer, 0);
}

/** A call's result as the hot paths want it: the value, or the negative errno when it is -1. */
export function ret(r: number): number {
  return r === -1 ? -errno() : r;
}

/** The address of a typed array's first byte; the array must stay referenced while the kernel uses it. */
export function addressOf(view: NodeJS.TypedArray): number {
  return ffiPtr(view) as number;
}

/** Reads a NUL-terminated C string at an address. */
export function cString(addr: number): string {
  return addr === 0 ? "" : new CString(addr as Pointer).toString();
}

/** Throws a SyscallError for a setup-path call that returned -1; returns the result otherwise. */
export function check(name: string, r: number, detail?: string): number {
  if (r === -1) throw new SyscallError(name, errno(), detail);
  return r;
}

/** The bun:ffi reader for raw memory, re-exported so no other module imports bun:ffi. */
export const peek = read;

setErrnoDescriber((n) => cString(libc.strerror(n)));

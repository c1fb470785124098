/**
 * Errno names and the one error type of the syscall layer.
 *
 * Hot-path wrappers return a negative errno and never allocate; setup-path wrappers throw a SyscallError
 * that names the call, the errno name and the C library's message, so a failure at start-up reads like
 * "socket: EAFNOSUPPORT (Address family not supported by protocol)".
 */

/** Linux errno names (x86_64, asm-generic), indexed by number. */
const ERRNO_NAMES: readonly string[] = [
  "OK", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD",
  "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR",
  "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS",
  "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP",
  "E41", "ENOMSG", "EIDRM", "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI",
  "EL2HLT", "EBADE", "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "E58", "EBFONT", "ENOSTR",
  "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK", "EADV", "ESRMNT", "ECOMM",
  "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD", "EREMCHG", "ELIBACC",
  "ELIBBAD", "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ", "ERESTART", "ESTRPIPE", "EUSERS", "ENOTSOCK",
  "EDESTADDRREQ", "EMSGSIZE", "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT",
  "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN", "ENETUNREACH",
  "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS",
  "ETIMEDOUT", "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE", "EUCLEAN",
  "ENOTNAM", "ENAVAIL", "EISNAM", "EREMOTEIO", "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE", "ECANCELED",
  "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD", "ENOTRECOVERABLE", "ERFKILL",
  "EHWPOISON",
];

/** Errno values the data paths test for, by name. */
export const Errno = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14,
  EEXIST: 17, ENODEV: 19, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOSPC: 28, EPIPE: 32, ENOSYS: 38,
  EBADMSG: 74, ENOTSOCK: 88, EMSGSIZE: 90, ENOPROTOOPT: 92, EPROTONOSUPPORT: 93, EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97, EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETUNREACH: 101, ECONNABORTED: 103, ECONNRESET: 104,
  ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTUNREACH: 113, EALREADY: 114,
  EINPROGRESS: 115,
} as const;

/** The symbolic name of an errno value ("EAGAIN"), or "E<n>" for one we do not know. */
export function errnoName(errno: number): string {
  const n = errno < 0 ? -errno : errno;
  return ERRNO_NAMES[n] ?? `E${n}`;
}

let describe: (errno: number) => string = () => "";

/** An errno as "EEXIST (File exists)": its name and the C library's message. */
export function errnoText(errno: number): string {
  const n = errno < 0 ? -errno : errno;
  return `${errnoName(n)} (${describe(n) || "unknown error"})`;
}

/** Installs the C library's strerror as the source of errno messages (done by the libc binding). */
export function setErrnoDescriber(fn: (errno: number) => string): void {
  describe = fn;
}

/** A failed setup-path system call: names the call, the errno name and its message. */
export class SyscallError extends Error {
  /** Positive errno value. */
  readonly errno: number;
  /** Symbolic errno name, e.g. "ECONNREFUSED". */
  readonly code: string;
  /** The C function that failed. */
  readonly syscall: string;

  constructor(syscall: string, errno: number, detail?: string) {
    const n = errno < 0 ? -errno : errno;
    const code = errnoName(n);
    const what = detail ? `${syscall}(${detail})` : syscall;
    super(`${what}: ${errnoText(n)}`);
    this.name = "SyscallError";
    this.errno = n;
    this.code = code;
    this.syscall = syscall;
  }
}

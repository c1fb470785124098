/**
 * Isolation stage 6 (doc/isolation.md): a seccomp-BPF allow-list, built here as classic BPF and installed with
 * SECCOMP_FILTER_FLAG_TSYNC, so that it covers every thread of the process (Bun's own and the namespace thread),
 * and sets no_new_privs on each of them.
 *
 * The program checks the architecture first (anything but x86_64 ends the process: a 32-bit call table would
 * give the numbers other meanings), refuses the x32 range the same way, then compares the call number with the
 * list, the calls of the data path first, so that the common case leaves after a few comparisons. A call that
 * is not on the list fails with EPERM (and the kernel logs it): orzo is not killed, so a call Bun makes rarely
 * and the list missed shows as a logged error instead of an outage; the call itself never runs either way.
 */
import { SECCOMP_FILTER_FLAG_TSYNC } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { seccompSetFilter } from "../syscalls/process.ts";
import { SYSCALL_NUMBERS, type SyscallName } from "./syscall_numbers.ts";

/** struct sock_filter: u16 code, u8 jt, u8 jf, u32 k. */
const SOCK_FILTER = { size: 8, code: 0, jt: 2, jf: 3, k: 4 } as const;
/** struct seccomp_data: the call number, then the architecture. */
const SECCOMP_DATA = { nr: 0, arch: 4 } as const;

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_RET_K = 0x06;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_LOG = 0x7ffc0000;
/** The errno an unlisted call fails with. */
export const DENIED_ERRNO = Errno.EPERM;

/** One instruction. */
interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/**
 * The filter program for an allow-list (in the order given: put the hottest calls first). logOnly: unlisted
 * calls go through and are logged by the kernel, to find what the list misses. Throws when the list is too long
 * for the 8-bit jump offsets.
 */
export function buildFilter(allowed: readonly SyscallName[], logOnly = false): Uint8Array {
  const numbers = [...new Set(allowed.map((n) => SYSCALL_NUMBERS[n]))];
  if (numbers.length > 250) throw new RangeError(`${numbers.length} system calls do not fit one jump table`);
  const prog: Insn[] = [
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA.arch },
    { code: BPF_JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 },
    { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA.nr },
    { code: BPF_JGE_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
    { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
  ];
  // Each comparison jumps to the ALLOW at the end: past the rest of the list and the default return.
  numbers.forEach((nr, i) => prog.push({ code: BPF_JEQ_K, jt: numbers.length - i, jf: 0, k: nr }));
  prog.push({ code: BPF_RET_K, jt: 0, jf: 0, k: logOnly ? SECCOMP_RET_LOG : SECCOMP_RET_ERRNO | DENIED_ERRNO });
  prog.push({ code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW });
  const bytes = new Uint8Array(prog.length * SOCK_FILTER.size);
  const v = new DataView(bytes.buffer);
  prog.forEach((insn, i) => {
    const off = i * SOCK_FILTER.size;
    v.setUint16(off + SOCK_FILTER.code, insn.code, true);
    v.setUint8(off + SOCK_FILTER.jt, insn.jt);
    v.setUint8(off + SOCK_FILTER.jf, insn.jf);
    v.setUint32(off + SOCK_FILTER.k, insn.k, true);
  });
  return bytes;
}

/** Installs the program for every thread of the process; throws an Error naming what failed. */
export function installFilter(program: Uint8Array): void {
  const r = seccompSetFilter(SECCOMP_FILTER_FLAG_TSYNC, program);
  if (r > 0) throw new Error(`seccomp: thread ${r} could not take the filter`);
  if (r < 0) throw new Error(`seccomp: errno ${-r}`);
}

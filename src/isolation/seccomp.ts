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
/** struct seccomp_data: the call number, the architecture, then the six arguments (64 bits each, low word first). */
const SECCOMP_DATA = { nr: 0, arch: 4, args: 16 } as const;

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
 * A call allowed only with certain argument values (the low 32 bits of each: the C types are ints): one of
 * `values` in argument `arg`, or, with `pairs`, one of the [value of `arg`, value of `arg2`] pairs.
 */
export type ArgRule =
  | { readonly call: SyscallName; readonly arg: number; readonly values: readonly number[] }
  | { readonly call: SyscallName; readonly arg: number; readonly arg2: number; readonly pairs: readonly (readonly [number, number])[] };

/**
 * The filter program for an allow-list (in the order given: put the hottest calls first) and calls allowed only
 * with certain argument values. logOnly: what would be denied goes through and is logged by the kernel, to find
 * what the lists miss. Throws when the program is too long for the 8-bit jump offsets.
 *
 * Layout (classic BPF jumps only forward): the architecture checks; one comparison per listed call, jumping to
 * the ALLOW at the very end; one comparison per argument rule, jumping to its block; the default return; the
 * blocks (load the argument, compare with each value, jump to ALLOW, else the default return); ALLOW.
 */
export function buildFilter(allowed: readonly SyscallName[], logOnly = false, rules: readonly ArgRule[] = []): Uint8Array {
  const ruled = new Set(rules.map((r) => r.call));
  const numbers = [...new Set(allowed.filter((n) => !ruled.has(n)).map((n) => SYSCALL_NUMBERS[n]))];
  const deny = logOnly ? SECCOMP_RET_LOG : SECCOMP_RET_ERRNO | DENIED_ERRNO;
  const prog: Insn[] = [
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA.arch },
    { code: BPF_JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH_X86_64 },
    { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA.nr },
    { code: BPF_JGE_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
    { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
  ];
  // A block: load, then per value one comparison (per pair: compare, load the second, compare, reload the first).
  const blockLen = (r: ArgRule) => 2 + ("values" in r ? r.values.length : 4 * r.pairs.length);
  const blocksLen = rules.reduce((n, r) => n + blockLen(r), 0);
  const allowAt = prog.length + numbers.length + rules.length + 1 + blocksLen;
  const jump = (from: number, to: number) => {
    const d = to - from - 1;
    if (d > 255) throw new RangeError(`the filter program is too long for its jumps (${allowAt + 1} instructions)`);
    return d;
  };
  for (const nr of numbers) prog.push({ code: BPF_JEQ_K, jt: jump(prog.length, allowAt), jf: 0, k: nr });
  let blockAt = prog.length + rules.length + 1;
  for (const r of rules) {
    prog.push({ code: BPF_JEQ_K, jt: jump(prog.length, blockAt), jf: 0, k: SYSCALL_NUMBERS[r.call] });
    blockAt += blockLen(r);
  }
  prog.push({ code: BPF_RET_K, jt: 0, jf: 0, k: deny });
  const arg = (i: number) => ({ code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA.args + 8 * i });
  for (const r of rules) {
    prog.push(arg(r.arg));
    if ("values" in r) {
      for (const value of r.values) prog.push({ code: BPF_JEQ_K, jt: jump(prog.length, allowAt), jf: 0, k: value >>> 0 });
    } else {
      for (const [a, b] of r.pairs) {
        // First argument differs: skip this pair's other three instructions.
        prog.push({ code: BPF_JEQ_K, jt: 0, jf: 3, k: a >>> 0 });
        prog.push(arg(r.arg2));
        prog.push({ code: BPF_JEQ_K, jt: jump(prog.length, allowAt), jf: 0, k: b >>> 0 });
        prog.push(arg(r.arg));
      }
    }
    prog.push({ code: BPF_RET_K, jt: 0, jf: 0, k: deny });
  }
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

/**
 * Finds what the seccomp allow-lists (src/isolation/sandbox.ts) miss: runs the test suite and the benchmark's
 * smoke run with ORZO_SECCOMP_LOG=1, so that every instance's filter lets unlisted calls through and the kernel
 * logs each one (SECCOMP_RET_LOG, an audit record in the kernel log), then lists the calls logged for orzo.
 * Run as root: `bun run bench/seccomp-derive.ts` (several minutes). A call it lists needs a look: add it to the
 * list, or find out why orzo makes it. Re-run it when Bun is upgraded.
 */
import { join } from "node:path";
import { SYSCALL_NUMBERS } from "../src/isolation/syscall_numbers.ts";

const root = join(import.meta.dir, "..");
const kernelLog = () => Bun.spawnSync(["dmesg"], { stdout: "pipe" }).stdout.toString().split("\n");
const before = new Set(kernelLog());
const env = { ...process.env, ORZO_SECCOMP_LOG: "1" } as Record<string, string>;
for (const argv of [["bun", "run", "test"], ["bun", "run", "bench", "--smoke"]]) {
  console.log(`seccomp-derive: ${argv.join(" ")}`);
  const p = Bun.spawnSync(argv, { cwd: root, env, stdout: "ignore", stderr: "ignore" });
  console.log(`seccomp-derive: exit status ${p.exitCode}`);
}

const names = new Map<number, string>(Object.entries(SYSCALL_NUMBERS).map(([name, nr]) => [nr, name]));
const logged = new Map<string, number>();
for (const line of kernelLog()) {
  if (before.has(line) || !/type=1326/.test(line) || !/comm="orzo"/.test(line) || !/code=0x7ffc0000/.test(line)) continue;
  const nr = Number(/syscall=(\d+)/.exec(line)?.[1]);
  const name = names.get(nr) ?? `#${nr}`;
  logged.set(name, (logged.get(name) ?? 0) + 1);
}
console.log(logged.size === 0 ? "\nno unlisted call was logged" : "\nunlisted calls orzo made (kernel log records):");
for (const [name, n] of [...logged].sort((a, b) => b[1] - a[1])) console.log(`  ${name} ${n}`);

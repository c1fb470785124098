import { describe, expect, test } from "bun:test";
import { chooseIdentity, launcherArgv, namespaceHostname, passtChain, pastaChain, resolveRunas, uidMapped, type Facts } from "../src/isolation/chain.ts";
import { buildFilter } from "../src/isolation/seccomp.ts";
import { allowList, ARG_RULES } from "../src/isolation/sandbox.ts";
import { SYSCALL_NUMBERS } from "../src/isolation/syscall_numbers.ts";
import { executableRanges } from "../src/isolation/trim.ts";

const tools = { setpriv: "/usr/bin/setpriv", unshare: "/usr/bin/unshare", nsenter: "/usr/bin/nsenter" };
const root: Facts = { euid: 0, egid: 0, initialUserns: true, tools, orzo: ["/bin/orzo"] };
const user: Facts = { ...root, euid: 1000, egid: 1000 };
const nobody = { uid: 65534, gid: 65534 };

describe("isolation: the exec chain", () => {
  test("the identity: --runas, else the caller, else nobody for root of the initial namespace", () => {
    expect(chooseIdentity(undefined, root, nobody)).toEqual(nobody);
    expect(chooseIdentity(undefined, { ...root, initialUserns: false }, nobody)).toEqual({ uid: 0, gid: 0 });
    expect(chooseIdentity(undefined, user, nobody)).toEqual({ uid: 1000, gid: 1000 });
    expect(chooseIdentity({ uid: 0, gid: 0 }, root, nobody)).toEqual({ uid: 0, gid: 0 });
  });

  test("--runas names are looked up; a name that is root is refused; numbers pass", () => {
    const users = (n: string) => ({ alice: { uid: 1001, gid: 1001 }, toor: { uid: 0, gid: 0 } })[n];
    const groups = (n: string) => ({ staff: 50 })[n];
    expect(resolveRunas({ user: "alice" }, users, groups)).toEqual({ uid: 1001, gid: 1001 });
    expect(resolveRunas({ user: "alice", group: "staff" }, users, groups)).toEqual({ uid: 1001, gid: 50 });
    expect(resolveRunas({ user: 0 }, users, groups)).toEqual({ uid: 0, gid: 0 });
    expect(resolveRunas({ user: 7, group: 8 }, users, groups)).toEqual({ uid: 7, gid: 8 });
    expect(() => resolveRunas({ user: "toor" }, users, groups)).toThrow("is root");
    expect(() => resolveRunas({ user: "bob" }, users, groups)).toThrow("no user named bob");
    expect(() => resolveRunas({ user: "alice", group: "wheel" }, users, groups)).toThrow("no group named wheel");
  });

  test("pasta as root joining a user namespace: identity, then the namespace, the mount namespace, the capability cut, orzo", () => {
    expect(pastaChain(nobody, root, "/proc/9/ns/user", ["pasta", "-f"])).toEqual([
      "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
      "/usr/bin/nsenter", "--user=/proc/9/ns/user", "--preserve-credentials", "--",
      "/usr/bin/unshare", "--mount", "--propagation", "private", "--",
      "/usr/bin/setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+sys_admin,+net_admin,+net_bind_service", "--",
      "/bin/orzo", "pasta", "-f",
    ]);
    // The caller's own identity and user namespace: no step for either.
    expect(pastaChain({ uid: 1000, gid: 1000 }, user, undefined, ["pasta"])[0]).toBe("/usr/bin/unshare");
  });

  test("passt: a user namespace of its own, and CAP_SYS_ADMIN alone", () => {
    const chain = passtChain({ uid: 1000, gid: 1000 }, user, ["passt"]);
    expect(chain.slice(0, 4)).toEqual(["/usr/bin/unshare", "--user", "--map-root-user", "--"]);
    expect(chain).toContain("--bounding-set=-all,+sys_admin");
  });

  test("the launcher: the command's namespaces, a user namespace unless --netns-only, the command last", () => {
    const l = launcherArgv({ uid: 1000, gid: 1000 }, user, false, ["ls", "-l"]);
    expect(l.slice(0, 3)).toEqual(["/usr/bin/unshare", "--user", "--map-root-user"]);
    for (const ns of ["--net", "--uts", "--ipc", "--pid", "--mount"]) expect(l).toContain(ns);
    expect(l.slice(-2)).toEqual(["ls", "-l"]);
    expect(launcherArgv({ uid: 1000, gid: 1000 }, user, true, ["true"])).not.toContain("--user");
  });

  test("the namespace's host name: -H, else pasta- and the host's, at most 64 bytes", () => {
    expect(namespaceHostname("box", "vm")).toBe("box");
    expect(namespaceHostname(undefined, "vm")).toBe("pasta-vm");
    expect(namespaceHostname(undefined, "x".repeat(80))).toHaveLength(64);
  });
});

describe("isolation: the seccomp program", () => {
  test("arch check, x32 refused, one comparison per call jumping to ALLOW, EPERM by default", () => {
    const prog = buildFilter(["read", "write", "read"]);
    const v = new DataView(prog.buffer);
    const insn = (i: number) => ({ code: v.getUint16(i * 8, true), jt: v.getUint8(i * 8 + 2), jf: v.getUint8(i * 8 + 3), k: v.getUint32(i * 8 + 4, true) });
    expect(prog.length / 8).toBe(6 + 2 + 2);
    expect(insn(1)).toEqual({ code: 0x15, jt: 1, jf: 0, k: 0xc000003e });
    expect(insn(4).k).toBe(0x40000000);
    expect(insn(6)).toEqual({ code: 0x15, jt: 2, jf: 0, k: 0 });
    expect(insn(7)).toEqual({ code: 0x15, jt: 1, jf: 0, k: 1 });
    expect(insn(8)).toEqual({ code: 0x06, jt: 0, jf: 0, k: 0x00050000 | 1 });
    expect(insn(9)).toEqual({ code: 0x06, jt: 0, jf: 0, k: 0x7fff0000 });
  });

  test("run on a BPF interpreter: listed calls pass, argument rules check their argument, the rest fail with EPERM", () => {
    const prog = buildFilter(allowList("pasta"), false, ARG_RULES);
    const v = new DataView(prog.buffer);
    /** Runs the program on a struct seccomp_data (classic BPF: loads, equality and >= jumps, returns). */
    const run = (nr: number, args: number[] = [], arch = 0xc000003e) => {
      const data = new DataView(new ArrayBuffer(64));
      data.setUint32(0, nr, true);
      data.setUint32(4, arch, true);
      args.forEach((a, i) => data.setUint32(16 + 8 * i, a >>> 0, true));
      let acc = 0;
      for (let pc = 0; pc < prog.length / 8; pc++) {
        const [code, jt, jf, k] = [v.getUint16(pc * 8, true), v.getUint8(pc * 8 + 2), v.getUint8(pc * 8 + 3), v.getUint32(pc * 8 + 4, true)];
        if (code === 0x20) acc = data.getUint32(k, true);
        else if (code === 0x15) pc += acc === k ? jt : jf;
        else if (code === 0x35) pc += acc >= k ? jt : jf;
        else if (code === 0x06) return k;
        else throw new Error(`unexpected instruction ${code}`);
      }
      throw new Error("ran off the end");
    };
    const ALLOW = 0x7fff0000;
    const EPERM = 0x00050001;
    expect(run(SYSCALL_NUMBERS.read)).toBe(ALLOW);
    expect(run(SYSCALL_NUMBERS.splice)).toBe(ALLOW);
    expect(run(SYSCALL_NUMBERS.mount)).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.socket, [2, 1, 0])).toBe(ALLOW);
    expect(run(SYSCALL_NUMBERS.socket, [10, 2, 0])).toBe(ALLOW);
    expect(run(SYSCALL_NUMBERS.socket, [16, 3, 0])).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.socket, [17, 3, 0])).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.ioctl, [5, 0x5411])).toBe(ALLOW);
    expect(run(SYSCALL_NUMBERS.ioctl, [5, 0x400454ca])).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.setsockopt, [5, 6, 1])).toBe(ALLOW);
    expect(run(SYSCALL_NUMBERS.setsockopt, [5, 41, 26])).toBe(ALLOW);
    // SO_MARK and SO_RCVBUFFORCE need CAP_NET_ADMIN; TCP level with a socket-level number is not a listed pair.
    expect(run(SYSCALL_NUMBERS.setsockopt, [5, 1, 36])).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.setsockopt, [5, 1, 33])).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.setsockopt, [5, 6, 42])).toBe(EPERM);
    expect(run(SYSCALL_NUMBERS.read, [], 0x40000003)).toBe(0x80000000);
    expect(run(0x40000000 + SYSCALL_NUMBERS.read)).toBe(0x80000000);
  });

  test("the lists: passt has no splice; neither has mount, setns, unshare or pivot_root", () => {
    expect(allowList("pasta")).toContain("splice");
    expect(allowList("passt")).not.toContain("splice");
    for (const mode of ["pasta", "passt"] as const) {
      for (const call of ["mount", "setns", "unshare", "pivot_root", "ptrace", "execve"] as const) expect(allowList(mode)).not.toContain(call);
    }
  });
});

describe("isolation: trimming the executable's start-up pages", () => {
  test("only the executable's read-only mappings are taken", () => {
    const maps = [
      "00400000-00452000 r--p 00000000 08:02 173521 /usr/bin/orzo",
      "00452000-00500000 r-xp 00052000 08:02 173521 /usr/bin/orzo",
      "00600000-00601000 rw-p 00100000 08:02 173521 /usr/bin/orzo",
      "7f0000000000-7f0000001000 r-xp 00000000 08:02 1 /usr/lib/libc.so.6",
      "7f0000002000-7f0000003000 rw-p 00000000 00:00 0",
    ].join("\n");
    expect(executableRanges(maps, "/usr/bin/orzo")).toEqual([
      { start: 0x400000, end: 0x452000 },
      { start: 0x452000, end: 0x500000 },
    ]);
  });
});

describe("isolation: joining a user namespace that does not map the identity", () => {
  test("the identity's mapping is read from uid_map; unmapped, nsenter makes orzo root there instead of keeping it", () => {
    expect(uidMapped("         0       1000          1\n", 1000)).toBe(true);
    expect(uidMapped("         0     100000      65536\n", 0)).toBe(false);
    expect(uidMapped("         0          0 4294967295\n", 65534)).toBe(true);
    expect(uidMapped("", 0)).toBe(false);
    expect(pastaChain({ uid: 0, gid: 0 }, root, "/proc/9/ns/user", ["pasta"], false).slice(0, 3)).toEqual(["/usr/bin/nsenter", "--user=/proc/9/ns/user", "--"]);
  });
});

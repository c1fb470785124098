import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { expectConfined, PASST_CAPS, PASTA_CAPS, readyPid } from "./helpers/isolation.ts";
import { must, run, TestHost, waitFor } from "./helpers/netns.ts";
import { commandTmpDir, waitForLine } from "./helpers/process.ts";

let host: TestHost;
let orzo: string;
let tmp: string;
let n = 0;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("iso");
  tmp = commandTmpDir("orzo-iso-");
});
afterAll(async () => {
  await host?.destroy();
});

describe("isolation: every thread of a running instance", () => {
  test("pasta with a command, started as root: nobody, pasta's capabilities, no_new_privs, seccomp, empty root; an fd left open is not inherited", async () => {
    const pidFile = join(tmp, `p${++n}.pid`);
    const done = join(tmp, `done${n}`);
    const leak = join(tmp, `leak${n}`);
    await Bun.write(leak, "");
    // fd 7 is open in the shell that starts orzo, without close-on-exec: it must not reach the instance.
    const p = host.spawn(["sh", "-c", `exec 7<${leak}; exec ${orzo} pasta --config-net -P ${pidFile} -- sh -c 'while [ ! -e ${done} ]; do sleep 0.05; done'`]);
    try {
      const pid = await readyPid(pidFile);
      await expectConfined(pid, 65534, PASTA_CAPS);
      const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ""; } });
      expect(targets).not.toContain(leak);
    } finally {
      await Bun.write(done, "");
      expect(await Promise.race([p.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
    }
  });

  test("pasta joining a namespace by path (--runas 0) and by PID, rootless", async () => {
    const ns = `orzo-iso-${process.pid}`;
    await must(["ip", "netns", "add", ns]);
    try {
      const pidFile = join(tmp, `p${++n}.pid`);
      expect((await host.run([orzo, "pasta", "--runas", "0", "--config-net", "--netns", ns, "-P", pidFile])).code).toBe(0);
      const pid = await readyPid(pidFile);
      await expectConfined(pid, 0, PASTA_CAPS);
      process.kill(pid, "SIGTERM");
      expect(await waitFor(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
    } finally {
      await run(["ip", "netns", "del", ns]);
    }
    const holder = host.spawn(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "unshare", "-rn", "sleep", "60"]);
    try {
      expect(await waitFor(() => { try { return readlinkSync(`/proc/${holder.pid}/exe`).endsWith("/sleep"); } catch { return false; } }, 5000)).toBe(true);
      const pidFile = join(tmp, `p${++n}.pid`);
      const r = await host.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", orzo, "pasta", "--config-net", "-P", pidFile, String(holder.pid)]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      await expectConfined(await readyPid(pidFile), 65534, PASTA_CAPS);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  test("passt as root, as uid 65534, and with --fd: nobody, only CAP_SYS_ADMIN in its own namespace", async () => {
    const sock = join(tmp, `s${++n}.sock`);
    const pidFile = join(tmp, `p${n}.pid`);
    const p = host.spawn([orzo, "passt", "-f", "-1", "-s", sock, "-P", pidFile]);
    try {
      await expectConfined(await readyPid(pidFile), 65534, PASST_CAPS);
    } finally {
      p.kill();
    }
    // Rootless: the caller's own identity, in a user namespace of its own.
    const pidFile3 = join(tmp, `p${++n}.pid`);
    const r = host.spawn(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", orzo, "passt", "-f", "-1", "-s", join(tmp, `s${n}.sock`), "-P", pidFile3]);
    try {
      await expectConfined(await readyPid(pidFile3), 65534, PASST_CAPS);
    } finally {
      r.kill();
    }
    const pidFile2 = join(tmp, `p${++n}.pid`);
    // socat hands orzo one end of a connected socket as fd 5, the other end to a process that keeps it open.
    const q = host.spawn(["socat", `EXEC:'${orzo} passt -f --fd 5 -P ${pidFile2}',fdin=5,fdout=5`, "EXEC:'sleep 30'"]);
    try {
      await expectConfined(await readyPid(pidFile2), 65534, PASST_CAPS);
    } finally {
      q.kill();
    }
  });

  test("a system call outside the list fails with EPERM, and orzo carries on", async () => {
    const pidFile = join(tmp, `p${++n}.pid`);
    const p = host.spawn([orzo, "passt", "-f", "-1", "-s", join(tmp, `s${n}.sock`), "-P", pidFile], { env: { ...process.env, ORZO_TEST_SECCOMP_PROBE: "mount" } as Record<string, string> });
    try {
      const pid = await readyPid(pidFile);
      await waitForLine(p.stderr as ReadableStream<Uint8Array>, /seccomp probe: mount returned EPERM/, 5000).found;
      expect(existsSync(`/proc/${pid}`)).toBe(true);
    } finally {
      p.kill();
    }
  });
});

describe("isolation: the user namespace pasta joins or makes", () => {
  test("--userns with --netns joins that user namespace (rootless); one that does not map the caller; --netns-only runs the command in the caller's", async () => {
    const nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
    const holder = host.spawn([...nobody, "unshare", "-rn", "sleep", "60"]);
    try {
      expect(await waitFor(() => { try { return readlinkSync(`/proc/${holder.pid}/exe`).endsWith("/sleep"); } catch { return false; } }, 5000)).toBe(true);
      const pidFile = join(tmp, `p${++n}.pid`);
      const ns = `/proc/${holder.pid}/ns`;
      const r = await host.run([...nobody, orzo, "pasta", "--config-net", "-P", pidFile, "--netns", `${ns}/net`, "--userns", `${ns}/user`]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const pid = await readyPid(pidFile);
      expect(readlinkSync(`/proc/${pid}/ns/user`)).toBe(readlinkSync(`${ns}/user`));
      expect(await must(["nsenter", "-t", String(holder.pid), "-n", "ip", "-br", "-4", "addr", "show", "dev", "eth0"])).toContain("198.51.100.1");
    } finally {
      holder.kill("SIGKILL");
    }
    // A user namespace that does not map the caller (root here): orzo joins it as its root, as nsenter does.
    const unmapped = host.spawn(["unshare", "--user", "--net", "sleep", "60"]);
    try {
      expect(await waitFor(() => { try { return readlinkSync(`/proc/${unmapped.pid}/exe`).endsWith("/sleep"); } catch { return false; } }, 5000)).toBe(true);
      await Bun.write(`/proc/${unmapped.pid}/uid_map`, "0 100000 65536\n");
      await Bun.write(`/proc/${unmapped.pid}/gid_map`, "0 100000 65536\n");
      const pidFile = join(tmp, `p${++n}.pid`);
      const r = await host.run([orzo, "pasta", "--runas", "0", "--config-net", "-P", pidFile, String(unmapped.pid)]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      await expectConfined(await readyPid(pidFile), 100000, PASTA_CAPS);
      expect(await must(["nsenter", "-t", String(unmapped.pid), "-n", "ip", "-br", "-4", "addr", "show", "dev", "eth0"])).toContain("198.51.100.1");
    } finally {
      unmapped.kill("SIGKILL");
    }
    // As root with --runas 0: root of a new user namespace (one ID mapped), or with --netns-only the caller's own.
    const own = await host.run([orzo, "pasta", "--runas", "0", "--", "cat", "/proc/self/uid_map"]);
    expect(own.stdout.trim().split(/\s+/)).toEqual(["0", "0", "1"]);
    const only = await host.run([orzo, "pasta", "--runas", "0", "--netns-only", "--", "cat", "/proc/self/uid_map"]);
    expect(only.stdout.trim().split(/\s+/)).toEqual(["0", "0", "4294967295"]);
  });
});

describe("isolation: pasta's command", () => {
  test("is PID 1 of its own PID namespace, with a fresh /proc and pasta's host name, or -H", async () => {
    const r = await host.run([orzo, "pasta", "--", "sh", "-c", "echo $$; hostname; ls /proc | grep -E '^[0-9]+$' | sort -n | tail -1"]);
    expect(r.code).toBe(0);
    const [pid, name, highest] = r.stdout.trim().split("\n");
    expect(pid).toBe("1");
    expect(name).toBe(`pasta-${(await must(["hostname"])).trim()}`.slice(0, 64));
    // Only the command's own few processes: the host's (this test's, for one) are not there.
    expect(Number(highest)).toBeLessThan(10);
    expect(process.pid).toBeGreaterThan(10);
    const h = await host.run([orzo, "pasta", "-H", "box7", "--", "hostname"]);
    expect(h.stdout.trim()).toBe("box7");
  });
});

describe("isolation: an environment that forbids a stage", () => {
  test("no mount namespace may be made: orzo refuses to start (as pasta), one line, nothing left running", async () => {
    const sock = join(tmp, `s${++n}.sock`);
    // A user namespace whose limit of mount namespaces is 0 stands for a container that forbids them.
    const r = await host.run(["unshare", "-r", "sh", "-c", `echo 0 > /proc/sys/user/max_mnt_namespaces && exec ${orzo} passt -f -s ${sock}`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/unshare.*No space left on device/);
    expect((await run(["pgrep", "-f", `passt -f -s ${sock}`])).code).toBe(1);
  });
});

describe("isolation: bad input is one line and exit status 1", () => {
  test("a malformed or unknown --runas, a namespace path that is none, an unwritable PID file, util-linux missing", async () => {
    const cases: [string[], RegExp, Record<string, string>?][] = [
      [["--runas", "no-such-user-here", "--", "true"], /--runas: no user named no-such-user-here/],
      [["--runas", "1:2:3", "--", "true"], /runas/],
      [["--runas", "0", "--netns", "/dev/null"], /setns|namespace/],
      [["-P", "/nonexistent/dir/pid", "--", "true"], /PID file \/nonexistent\/dir\/pid/],
      [["--", "true"], /util-linux's setpriv is needed/, { PATH: "/nonexistent" }],
    ];
    for (const [args, message, env] of cases) {
      const r = await run([orzo, "pasta", ...args], { env: env ? { ...process.env, ...env } as Record<string, string> : undefined });
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
  });
});

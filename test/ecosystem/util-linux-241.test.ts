/**
 * orzo's isolation under Debian 13's util-linux 2.41 (issues 16 and 18): the exec chain goes through setpriv,
 * unshare and nsenter, and 2.41's nsenter calls setgroups when it joins a user namespace unless told to keep the
 * credentials, which a namespace with setgroups "deny" refuses. Each case runs in the Debian 13 root
 * (debian13.ts), whose util-linux comes first in PATH, inside a hermetic test host namespace; every thread of the
 * running instance is then read from /proc, as in test/isolation.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { orzoBinary } from "../helpers/binary.ts";
import { expectConfined, PASST_CAPS, PASTA_CAPS, readyPid } from "../helpers/isolation.ts";
import { TestHost, TOPOLOGY, waitFor } from "../helpers/netns.ts";
import { commandTmpDir } from "../helpers/process.ts";
import { DEBIAN13_BUILD_TIMEOUT_MS, enterDebian13, type Debian13 } from "./debian13.ts";

const NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
/** The namespace's eth0 as `ip -br addr` shows it once --config-net copied the test host's addresses. */
const CONFIGURED = new RegExp(`^eth0\\s+\\S+\\s+${TOPOLOGY.host4}/${TOPOLOGY.prefix4} ${TOPOLOGY.host6}/${TOPOLOGY.prefix6}`, "m");
const CASE_TIMEOUT_MS = 60_000;

let host: TestHost;
let root: Debian13;
let orzo: string;
let tmp: string;
let n = 0;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("d13");
  tmp = commandTmpDir("orzo-d13-");
  root = await enterDebian13({ netns: host.name, binds: [dirname(orzo), tmp], log: (line) => console.error(line) });
}, DEBIAN13_BUILD_TIMEOUT_MS + 60_000);
afterAll(async () => {
  await root?.close();
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Waits until a process spawned inside the root has exec'd into its last program (its exe ends with name). */
async function execd(pid: number, name: string): Promise<void> {
  expect(await waitFor(() => { try { return readlinkSync(`/proc/${pid}/exe`).endsWith(`/${name}`); } catch { return false; } }, 5000)).toBe(true);
}

/** Waits for a process to end, bounded; returns its exit status, or "timeout". */
function exited(p: ReturnType<typeof Bun.spawn>, ms = 10_000): Promise<number | "timeout"> {
  return Promise.race([p.exited, Bun.sleep(ms).then(() => "timeout" as const)]);
}

/** Ends an orzo instance by its PID, and waits (bounded) until it is gone. */
async function stop(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  expect(await waitFor(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
}

describe("Debian 13's util-linux", () => {
  test("2.41's setpriv, unshare and nsenter come first in PATH inside the root", async () => {
    for (const tool of ["setpriv", "unshare", "nsenter"]) {
      const r = await root.run(["sh", "-c", `command -v ${tool}; ${tool} --version`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^/usr/bin/${tool}\n${tool} from util-linux 2\\.41\\.`));
    }
  });

  test("its nsenter fails to join a setgroups-denied user namespace unless it keeps the credentials (issue 18)", async () => {
    const target = root.spawn([...NOBODY, "unshare", "-rn", "sleep", "60"]);
    try {
      await execd(target.pid, "sleep");
      expect(readFileSync(`/proc/${target.pid}/setgroups`, "utf8")).toBe("deny\n");
      const plain = await root.run([...NOBODY, "nsenter", "-t", String(target.pid), "-U", "-n", "true"]);
      expect(plain.code).not.toBe(0);
      expect(plain.stderr).toMatch(/setgroups failed/);
      const kept = await root.run([...NOBODY, "nsenter", "-t", String(target.pid), "-U", "-n", "--preserve-credentials", "true"]);
      expect(kept.stderr).toBe("");
      expect(kept.code).toBe(0);
    } finally {
      target.kill("SIGKILL");
    }
  });
});

describe("orzo's isolation under util-linux 2.41", () => {
  for (const [who, as] of [["root", []], ["uid 65534", NOBODY]] as const) {
    test(`pasta --config-net with a command, started as ${who}: PID 1, the host's addresses, every thread confined`, async () => {
      const pidFile = join(tmp, `p${++n}.pid`);
      const done = join(tmp, `done${n}`);
      const p = root.spawn([...as, orzo, "pasta", "--config-net", "-P", pidFile, "--", "sh", "-c", `echo $$; ip -br addr; while [ ! -e ${done} ]; do sleep 0.05; done`]);
      try {
        await expectConfined(await readyPid(pidFile), 65534, PASTA_CAPS);
      } finally {
        await Bun.write(done, "");
      }
      expect(await exited(p)).toBe(0);
      const out = await new Response(p.stdout as ReadableStream).text();
      expect(out.split("\n")[0]).toBe("1");
      expect(out).toMatch(CONFIGURED);
    }, CASE_TIMEOUT_MS);
  }

  /** The namespaces to join: who makes them, how, and what their user namespace looks like. */
  const targets = [
    { name: "unshare -rn (setgroups deny), joined as uid 65534", maker: NOBODY, argv: ["unshare", "-rn"], setgroups: "deny", runas: NOBODY, id: 65534 },
    { name: "unshare -U --map-user=0 (no group map), joined as uid 65534", maker: NOBODY, argv: ["unshare", "-U", "--map-user=0", "-n"], setgroups: "allow", runas: NOBODY, id: 65534 },
    { name: "unshare -U with an explicit map made by root, joined with --runas 0", maker: [], argv: ["unshare", "-U", "--map-users=0:0:65536", "--map-groups=0:0:65536", "-n"], setgroups: "allow", runas: [], id: 0 },
  ];
  for (const t of targets) {
    test(`pasta joins a namespace made by ${t.name}: every thread confined, the namespace configured`, async () => {
      const target = root.spawn([...t.maker, ...t.argv, "sleep", "60"]);
      let pid = 0;
      try {
        await execd(target.pid, "sleep");
        expect(readFileSync(`/proc/${target.pid}/setgroups`, "utf8")).toBe(`${t.setgroups}\n`);
        const pidFile = join(tmp, `p${++n}.pid`);
        const r = await root.run([...t.runas, orzo, "pasta", ...(t.id === 0 ? ["--runas", "0"] : []), "--config-net", "-P", pidFile, String(target.pid)]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        pid = await readyPid(pidFile);
        await expectConfined(pid, t.id, PASTA_CAPS);
        const addr = await root.run(["nsenter", "-t", String(target.pid), "-n", "ip", "-br", "addr"]);
        expect(addr.stdout).toMatch(CONFIGURED);
      } finally {
        if (pid) await stop(pid);
        target.kill("SIGKILL");
      }
    }, CASE_TIMEOUT_MS);
  }

  for (const [who, as] of [["root", []], ["uid 65534", NOBODY]] as const) {
    test(`passt -f -1, started as ${who}: listens, every thread confined, exits when its guest leaves`, async () => {
      const sock = join(tmp, `s${++n}.sock`);
      const pidFile = join(tmp, `p${n}.pid`);
      const p = root.spawn([...as, orzo, "passt", "-f", "-1", "-s", sock, "-P", pidFile]);
      try {
        await expectConfined(await readyPid(pidFile), 65534, PASST_CAPS);
        expect(statSync(sock).isSocket()).toBe(true);
        // A guest that connects and hangs up at once: with -1, passt exits then.
        const guest = await root.run(["socat", "-u", "OPEN:/dev/null", `UNIX-CONNECT:${sock}`]);
        expect(guest.code, guest.stderr).toBe(0);
        expect(await exited(p)).toBe(0);
      } finally {
        p.kill("SIGKILL");
      }
    }, CASE_TIMEOUT_MS);
  }
});

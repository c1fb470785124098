/**
 * Rootless Podman 5 with orzo as its pasta (issue 18), and every check again with Debian 13's pasta as the
 * reference, in the same run: a check the reference fails shows as its own failed test. Podman finds `pasta`
 * through containers.conf helper_binaries_dir (rootless.ts); the container is a local busybox + socat image.
 *
 * The host side is the test host namespace (198.51.100.1/24, 2001:db8:1::1/64, the router at .254 and ::fe, which
 * also runs the DNS server that the host's resolv.conf names): socat services there send and receive the 16 MiB
 * files, and clients there reach published ports. Every transfer is compared by sha256.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { TOPOLOGY, waitFor } from "../helpers/netns.ts";
import { DEBIAN13_BUILD_TIMEOUT_MS } from "./debian13.ts";
import { boundPorts, fetchSha, hashService, randomFile, serveFile, waitBound } from "./host-services.ts";
import { ECO_IMAGE, ECO_USER, pastaTargets, RootlessRoot, type PastaTarget } from "./rootless.ts";

const CASE_TIMEOUT_MS = 120_000;
const BIG = 16 << 20;
/** The address Podman has pasta forward DNS from (--dns-forward), first in the container's resolv.conf. */
const DNS_FORWARD = "169.254.1.1";
/** A name only the test's DNS server knows, and its addresses. */
const DNS_NAME = "eco.orzo.test";
const DNS_A = "192.0.2.7";
const DNS_AAAA = "2001:db8:99::7";

let eco: RootlessRoot;
let data: string;
let bigSha: string;
let smallSha: string;
let dns: ReturnType<typeof Bun.spawn> | undefined;

/** Ports of one target's checks, apart from the other target's, so that nothing of one run meets the next. */
function ports(target: PastaTarget) {
  const base = target.id === "orzo" ? 18_100 : 18_200;
  return { down4: base + 1, up4: base + 2, downLo: base + 3, upLo: base + 4, pubLo: base + 11, pubHost: base + 12, pubLo6: base + 13, auto: base + 21, left: base + 31 };
}

beforeAll(async () => {
  eco = await RootlessRoot.create("pod", { image: true, log: (line) => console.error(line) });
  data = join(eco.tmp, "data");
  mkdirSync(data);
  mkdirSync(join(eco.tmp, "logs"));
  chownSync(join(eco.tmp, "logs"), ECO_USER.uid, ECO_USER.gid);
  bigSha = randomFile(join(data, "big"), BIG);
  smallSha = randomFile(join(data, "small"), 1 << 20);
  // The host's resolver (the router, as resolv.conf says), answering one name of its own.
  dns = Bun.spawn(["ip", "netns", "exec", eco.host.router, "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
    "--bind-interfaces", `--listen-address=${TOPOLOGY.router4}`, `--listen-address=${TOPOLOGY.router6}`, "--port=53", "--user=root",
    "--pid-file=", "--log-facility=-", `--address=/${DNS_NAME}/${DNS_A}`, `--address=/${DNS_NAME}/${DNS_AAAA}`], { stdout: "ignore", stderr: "ignore" });
  await waitBound(dns.pid, "udp", [53]);
  for (const t of pastaTargets()) {
    const p = ports(t);
    serveFile(eco.host, TOPOLOGY.host4, p.down4, join(data, "big"));
    serveFile(eco.host, "127.0.0.1", p.downLo, join(data, "big"));
    hashService(eco.host, TOPOLOGY.host4, p.up4);
    hashService(eco.host, "127.0.0.1", p.upLo);
    await waitBound(eco.root.holder, "tcp", [p.down4, p.downLo, p.up4, p.upLo]);
  }
}, DEBIAN13_BUILD_TIMEOUT_MS + 120_000);
afterAll(async () => {
  dns?.kill("SIGKILL");
  await eco?.close();
});

/** Runs a shell script in a new container (--rm, the data directory at /data) with these network options. */
function inContainer(target: PastaTarget, network: string[], script: string, podmanArgs: string[] = []) {
  return eco.podman(target, [...podmanArgs, "run", "--rm", ...network, "-v", `${data}:/data:ro`, ECO_IMAGE, "sh", "-c", script]);
}

/** Starts a detached container; returns its name and its PID (in the host's PID namespace). */
async function detached(target: PastaTarget, name: string, args: string[], command: string[]): Promise<{ name: string; pid: number }> {
  await eco.mustPodman(target, ["run", "-d", "--name", name, "-v", `${data}:/data:ro`, ...args, ECO_IMAGE, ...command]);
  const pid = Number((await eco.mustPodman(target, ["inspect", "-f", "{{.State.Pid}}", name])).trim());
  expect(pid).toBeGreaterThan(0);
  return { name, pid };
}

/** Removes a container, bounded, whatever state it is in. */
async function remove(target: PastaTarget, name: string): Promise<void> {
  await eco.podman(target, ["rm", "-f", "-t", "0", name]);
}

/** The processes of the run (PIDs) whose command line names path. */
function processesNaming(path: string): number[] {
  return eco.root.processes().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(path);
    } catch {
      return false;
    }
  });
}

/** Whether a process exists and is not a zombie. */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The processes of the run that execute the target's binary (Debian's pasta re-executes itself as pasta.avx2). */
function processesOf(target: PastaTarget): number[] {
  return eco.root.processes().filter((pid) => {
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`);
      return exe === target.binary || exe === `${target.binary}.avx2`;
    } catch {
      return false;
    }
  });
}

/** The addressing checks: what pasta copies from the host's eth0 into the container. */
function expectHostAddressing(out: string): void {
  const [addr, route4, route6, mtu] = out.split("===\n");
  expect(addr).toContain(`inet ${TOPOLOGY.host4}/${TOPOLOGY.prefix4} `);
  expect(addr).toContain(`inet6 ${TOPOLOGY.host6}/${TOPOLOGY.prefix6} `);
  expect(route4).toMatch(new RegExp(`^default via ${TOPOLOGY.router4} dev eth0`, "m"));
  expect(route4).toMatch(/^198\.51\.100\.0\/24 dev eth0/m);
  expect(route6).toMatch(new RegExp(`^default via ${TOPOLOGY.router6} dev eth0`, "m"));
  expect(mtu.trim()).toBe("65520");
}
const ADDRESSING = "ip addr show dev eth0; echo ===; ip route; echo ===; ip -6 route; echo ===; cat /sys/class/net/eth0/mtu";

for (const target of pastaTargets()) {
  describe(`rootless Podman with ${target.title}`, () => {
    const p = ports(target);

    test("podman info names the pasta of helper_binaries_dir", async () => {
      const out = await eco.mustPodman(target, ["info", "--format", "{{.Host.Pasta.Executable}}"]);
      expect(out.trim()).toBe(join(eco.helperDir(target), "pasta"));
    }, CASE_TIMEOUT_MS);

    for (const [label, network] of [["--network pasta", ["--network", "pasta"]], ["the rootless default network", []]] as const) {
      test(`${label}: the host's addresses, routes and MTU 65520 in the container`, async () => {
        const r = await inContainer(target, [...network], ADDRESSING);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expectHostAddressing(r.stdout);
      }, CASE_TIMEOUT_MS);
    }

    for (const via of [
      { label: "host.containers.internal (the host's address)", network: ["--network", "pasta"], peer: "host.containers.internal", down: p.down4, up: p.up4 },
      { label: "the gateway with pasta:--map-gw (the host's loopback)", network: ["--network", "pasta:--map-gw"], peer: TOPOLOGY.router4, down: p.downLo, up: p.upLo },
    ]) {
      test(`16 MiB each way to host services through ${via.label}`, async () => {
        // The upload's answer is the hash the host service computed, once it has everything.
        const r = await inContainer(target, via.network, [
          `socat -u TCP:${via.peer}:${via.down} - | sha256sum`,
          `socat -t 30 - TCP:${via.peer}:${via.up} < /data/big`,
        ].join(" && "));
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const [toContainer, toHost] = r.stdout.split("\n").map((line) => line.split(/\s/)[0]);
        expect({ toContainer, toHost }).toEqual({ toContainer: bigSha, toHost: bigSha });
      }, CASE_TIMEOUT_MS);
    }

    test("-p TCP and UDP published on 127.0.0.1, the host's address and ::1 reach the container", async () => {
      const name = `pub-${target.id}`;
      const published = [["127.0.0.1", p.pubLo], [TOPOLOGY.host4, p.pubHost], ["::1", p.pubLo6]] as const;
      const args = published.flatMap(([a, port]) => {
        const host = a.includes(":") ? `[${a}]` : a;
        return ["-p", `${host}:${port}:8080`, "-p", `${host}:${port}:8081/udp`];
      });
      try {
        const c = await detached(target, name, args, ["sh", "-c",
          "socat TCP6-LISTEN:8080,ipv6only=0,reuseaddr,fork PIPE & exec socat -b 65536 UDP6-RECVFROM:8081,ipv6only=0,fork PIPE"]);
        await waitBound(c.pid, "tcp", [8080]);
        await waitBound(c.pid, "udp", [8081]);
        for (const [address, port] of published) {
          expect({ address, tcp: await fetchSha(eco.host, address, port, join(data, "small")) }).toEqual({ address, tcp: smallSha });
          const udp = await eco.host.run([process.execPath, join(import.meta.dir, "..", "fixtures", "udp-client.ts"), address, String(port), "2", "1200", "2", "2"], { timeoutMs: 30_000 });
          expect({ address, udp: udp.stdout.trim(), stderr: udp.stderr }).toEqual({ address, udp: JSON.stringify({ sent: 4, intact: 4, corrupt: 0, missing: 0 }), stderr: "" });
        }
      } finally {
        await remove(target, name);
      }
    }, CASE_TIMEOUT_MS);

    test(`DNS through ${DNS_FORWARD} reaches the host's resolver`, async () => {
      const r = await inContainer(target, ["--network", "pasta"], `grep -m 1 ^nameserver /etc/resolv.conf; nslookup ${DNS_NAME} ${DNS_FORWARD}`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split("\n")[0]).toBe(`nameserver ${DNS_FORWARD}`);
      expect(r.stdout).toContain(`Server:\t\t${DNS_FORWARD}`);
      expect(r.stdout).toMatch(new RegExp(`^Address: ${DNS_A.replaceAll(".", "\\.")}$`, "m"));
      expect(r.stdout).toMatch(new RegExp(`^Address: ${DNS_AAAA}$`, "m"));
    }, CASE_TIMEOUT_MS);

    test("pasta:-t,auto: a port the container starts listening on is forwarded from the host, both paths", async () => {
      const name = `auto-${target.id}`;
      try {
        const c = await detached(target, name, ["--network", "pasta:-t,auto"], ["socat", "-U", `TCP-LISTEN:${p.auto},reuseaddr,fork`, "OPEN:/data/big,rdonly"]);
        await waitBound(c.pid, "tcp", [p.auto]);
        // pasta scans the container's listening ports about once a second and then listens on the host.
        await waitBound(eco.root.holder, "tcp", [p.auto], 10_000);
        expect({ via: "127.0.0.1", sha: await fetchSha(eco.host, "127.0.0.1", p.auto) }).toEqual({ via: "127.0.0.1", sha: bigSha });
        expect({ via: TOPOLOGY.host4, sha: await fetchSha(eco.host, TOPOLOGY.host4, p.auto) }).toEqual({ via: TOPOLOGY.host4, sha: bigSha });
      } finally {
        await remove(target, name);
      }
    }, CASE_TIMEOUT_MS);

    test("pasta:--debug: the container is configured and Podman logs pasta's debug output", async () => {
      const r = await inContainer(target, ["--network", "pasta:--debug"], ADDRESSING, ["--log-level=debug"]);
      expect(r.code, r.stderr).toBe(0);
      expectHostAddressing(r.stdout);
      expect(r.stderr).toMatch(/level=debug msg="pasta arguments: --config-net --debug /);
      // Podman passes on what pasta printed: with --debug, lines that start with a timestamp.
      expect(r.stderr).toMatch(/msg="pasta logged warnings: \\"\d+\.\d{4}: /);
    }, CASE_TIMEOUT_MS);

    test("pasta:-l,FILE: pasta writes its log to FILE, as the rootless user", async () => {
      const log = join(eco.tmp, "logs", `${target.id}.log`);
      const r = await inContainer(target, ["--network", `pasta:-l,${log}`], "ip addr show dev eth0");
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`inet ${TOPOLOGY.host4}/`);
      expect(existsSync(log)).toBe(true);
      expect(statSync(log).uid).toBe(ECO_USER.uid);
      // The first line names the program and its PID.
      expect(readFileSync(log, "utf8").split("\n")[0]).toMatch(/^(pasta|orzo) \S+: \S+ \(\d+\)$/);
    }, CASE_TIMEOUT_MS);

    test("nothing of pasta is left after podman stop and podman rm", async () => {
      const name = `left-${target.id}`;
      try {
        await detached(target, name, ["-p", `127.0.0.1:${p.left}:8080`], ["sleep", "600"]);
        const netns = (await eco.mustPodman(target, ["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name])).trim();
        const running = processesNaming(netns);
        expect(running.length).toBe(1);
        expect(processesOf(target)).toContain(running[0]);
        expect(boundPorts(eco.root.holder, "tcp").has(p.left)).toBe(true);
        await eco.mustPodman(target, ["stop", "-t", "0", name]);
        // Gone, not only exiting: an exiting process has lost its command line before it closes its sockets, and
        // a multithreaded one shows as a zombie while its other threads still end, so the port is waited for too.
        expect(await waitFor(() => !isRunning(running[0]), 10_000)).toBe(true);
        expect(processesNaming(netns)).toEqual([]);
        expect(await waitFor(() => !boundPorts(eco.root.holder, "tcp").has(p.left), 5000)).toBe(true);
        await eco.mustPodman(target, ["rm", name]);
        expect((await eco.mustPodman(target, ["ps", "-a", "--format", "{{.Names}}"])).split("\n")).not.toContain(name);
        expect((await eco.root.run(["test", "-e", netns])).code).not.toBe(0);
        // No instance of the binary is left at all: not this container's, nor one of an earlier check's.
        expect(await waitFor(() => processesOf(target).length === 0, 10_000)).toBe(true);
      } finally {
        await remove(target, name);
      }
    }, CASE_TIMEOUT_MS);
  });
}

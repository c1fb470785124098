import { commandTmpDir } from "./helpers/process.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { must, run, TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";

const fixtures = join(import.meta.dir, "fixtures");
let host: TestHost;
let orzo: string;
let tmp: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("pasta");
  tmp = commandTmpDir("orzo-pasta-");
});
afterAll(async () => {
  await host?.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs `orzo pasta ARGS -- sh -c SCRIPT` in the host namespace. */
function pasta(args: string[], script: string, timeoutMs = 20_000) {
  return host.run([orzo, "pasta", ...args, "--", "sh", "-c", script], { timeoutMs });
}

describe("pasta: the command and its exit status", () => {
  test("the exit status comes back", async () => {
    expect((await pasta([], "exit 7")).code).toBe(7);
    expect((await pasta([], "exit 0")).code).toBe(0);
  });

  test("a command killed by a signal gives 128 + its number", async () => {
    // The command is PID 1 of its PID namespace: only SIGKILL from outside ends it without a handler of its own.
    const marker = `${process.pid}${Date.now()}`;
    const p = pasta([], `exec sleep 30.${marker}`);
    // Anchored: orzo's own command line holds the same words further on.
    expect(await waitFor(async () => (await run(["pkill", "-KILL", "-f", `^sleep 30\\.${marker}$`])).code === 0, 5000)).toBe(true);
    const r = await p;
    expect(r.code).toBe(137);
    // The launcher's shell does not report the signal on the command's stderr.
    expect(r.stderr).toBe("");
  });

  test("the command runs in its own network namespace with the tap named after the host's interface", async () => {
    const r = await pasta([], "ip -j link show");
    expect(r.code).toBe(0);
    const links = JSON.parse(r.stdout) as { ifname: string; flags: string[] }[];
    expect(links.map((l) => l.ifname).sort()).toEqual(["eth0", "lo"]);
    expect(links.find((l) => l.ifname === "lo")!.flags).toContain("UP");
  });

  test("the namespace's loopback builds TCP packets as large as the device takes, IPv4 and IPv6", async () => {
    const ops = JSON.stringify([{ op: "link", dev: "lo" }]);
    const r = await pasta([], `${process.execPath} ${join(fixtures, "netlink-ops.ts")} '${ops}'`);
    expect(r.code).toBe(0);
    const [{ ok: lo }] = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(lo.tsoMaxSize).toBeGreaterThan(65536);
    expect(lo).toMatchObject({ gsoMaxSize: lo.tsoMaxSize, gsoIpv4MaxSize: lo.tsoMaxSize });
  });
});

describe("pasta --config-net", () => {
  test("addresses, routes and MTU copied from the host's template interface", async () => {
    const r = await pasta(["--config-net"], "ip -j addr show dev eth0; echo ===; ip -j -4 route; echo ===; ip -j -6 route");
    expect(r.code).toBe(0);
    const [addrText, route4Text, route6Text] = r.stdout.split("===\n");
    const [eth0] = JSON.parse(addrText) as { mtu: number; operstate: string; addr_info: { local: string; prefixlen: number; family: string; scope: string }[] }[];
    expect(eth0.mtu).toBe(65520);
    const global = eth0.addr_info.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`);
    expect(global.sort()).toEqual([`${TOPOLOGY.host4}/24`, `${TOPOLOGY.host6}/64`]);
    const routes4 = JSON.parse(route4Text) as { dst: string; gateway?: string }[];
    expect(routes4.find((x) => x.dst === "default")?.gateway).toBe(TOPOLOGY.router4);
    const routes6 = JSON.parse(route6Text) as { dst: string; gateway?: string }[];
    expect(routes6.find((x) => x.dst === "default")?.gateway).toBe(TOPOLOGY.router6);
  });

  test("-a, -n, -g, -I and -m are configured instead of copies", async () => {
    const r = await pasta(["--config-net", "-4", "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2", "-I", "tap7", "-m", "1500"], "ip -j addr show dev tap7; echo ===; ip -j -4 route");
    expect(r.code).toBe(0);
    const [addrText, routeText] = r.stdout.split("===\n");
    const [tap] = JSON.parse(addrText) as { mtu: number; addr_info: { local: string; prefixlen: number; family: string }[] }[];
    expect(tap.mtu).toBe(1500);
    expect(tap.addr_info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`)).toEqual(["10.0.2.15/24"]);
    expect((JSON.parse(routeText) as { dst: string; gateway?: string }[]).find((x) => x.dst === "default")?.gateway).toBe("10.0.2.2");
  });
});

describe("pasta: L2 services to real clients", () => {
  test("busybox udhcpc gets address, router, DNS and MTU", async () => {
    const r = await pasta(["--dhcp-dns", "--dhcp-search"], `ip link set eth0 up && busybox udhcpc -i eth0 -f -q -n -t 5 -T 1 -s ${fixtures}/udhcpc-script.sh -O mtu -O search`);
    expect(r.code).toBe(0);
    const lease = r.stdout.split("\n").find((l) => l.startsWith("lease "));
    expect(lease).toBeDefined();
    expect(lease).toContain(`ip=${TOPOLOGY.host4} `);
    expect(lease).toContain("subnet=255.255.255.0 ");
    expect(lease).toContain(`router=${TOPOLOGY.router4} `);
    expect(lease).toContain(`dns=${TOPOLOGY.router4} `);
    expect(lease).toContain("mtu=65520 ");
    expect(lease).toContain(`search=${TOPOLOGY.search}`);
  });

  test("SLAAC from router advertisements gives the IPv6 address and default route", async () => {
    const r = await pasta([], [
      "ip link set eth0 up",
      "i=0; while [ $i -lt 100 ] && ! ip -6 addr show dev eth0 scope global | grep -q inet6; do sleep 0.05; i=$((i+1)); done",
      "ip -j -6 addr show dev eth0 scope global; echo ===; ip -j -6 route show default",
    ].join("; "));
    expect(r.code).toBe(0);
    const [addrText, routeText] = r.stdout.split("===\n");
    const [eth0] = JSON.parse(addrText) as { addr_info: { local: string; prefixlen: number }[] }[];
    expect(eth0.addr_info.some((a) => a.local.startsWith("2001:db8:1:") && a.prefixlen === 64)).toBe(true);
    const [route] = JSON.parse(routeText) as { gateway: string; dev: string }[];
    expect(route.dev).toBe("eth0");
    expect(route.gateway.startsWith("fe80::")).toBe(true);
  });

  test("dhclient -6 gets the address and DNS servers", async () => {
    const script = join(tmp, "dhclient6.sh");
    await Bun.write(script, '#!/bin/sh\necho "dhcp6 reason=$reason ip6=$new_ip6_address/$new_ip6_prefixlen dns=$new_dhcp6_name_servers"\n');
    await must(["chmod", "755", script]);
    const r = await pasta(["--dhcp-dns"], `ip link set eth0 up && i=0; while [ $i -lt 100 ] && { ! ip -6 addr show dev eth0 scope link | grep -q inet6 || ip -6 addr show dev eth0 | grep -q tentative; }; do sleep 0.05; i=$((i+1)); done; dhclient -6 -1 -v -sf ${script} -lf ${tmp}/leases6 -pf ${tmp}/dhclient6.pid eth0; kill $(cat ${tmp}/dhclient6.pid) 2>/dev/null; true`, 30_000);
    const line = r.stdout.split("\n").find((l) => l.startsWith("dhcp6 reason=BOUND6"));
    expect(line).toBeDefined();
    expect(line).toContain(`ip6=${TOPOLOGY.host6}/128`);
    expect(line).toContain(`dns=${TOPOLOGY.router6}`);
  });

  test("ping and ping -6 reach the gateway (the host's loopback) and the router", async () => {
    const r = await pasta(["--config-net"], [
      `ping -c 1 -W 3 ${TOPOLOGY.router4}`,
      `ping -6 -c 1 -W 3 ${TOPOLOGY.router6}`,
    ].join(" && "));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("pasta: attaching to existing namespaces", () => {
  test("--netns PATH: -P appears once the tap is configured; orzo exits when the namespace file is removed", async () => {
    const ns = `orzo-att-${process.pid}`;
    const pidFile = join(tmp, "att.pid");
    await must(["ip", "netns", "add", ns]);
    try {
      // Started as root, orzo runs as nobody unless --runas 0: a namespace root made needs root (as in pasta).
      const r = await host.run([orzo, "pasta", "--runas", "0", "--config-net", "-4", "--netns", ns, "-P", pidFile]);
      expect(r.code).toBe(0);
      expect(existsSync(pidFile)).toBe(true);
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      expect(pid).toBeGreaterThan(1);
      const addr = JSON.parse(await must(["ip", "-n", ns, "-j", "-4", "addr", "show", "dev", "eth0"])) as { addr_info: { local: string }[] }[];
      expect(addr[0].addr_info.map((a) => a.local)).toEqual([TOPOLOGY.host4]);
      await must(["ip", "netns", "del", ns]);
      expect(await waitFor(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
    } finally {
      await run(["ip", "netns", "del", ns]);
    }
  });

  test("joining by PID: orzo exits when the process is gone", async () => {
    // ip netns exec and unshare both exec: the spawned PID becomes sleep, in a network namespace of its own.
    const holder = host.spawn(["unshare", "--net", "sleep", "60"]);
    const pidFile = join(tmp, "bypid.pid");
    try {
      expect(await waitFor(() => { try { return readlinkSync(`/proc/${holder.pid}/exe`).endsWith("/sleep"); } catch { return false; } }, 5000)).toBe(true);
      const r = await host.run([orzo, "pasta", "--runas", "0", "--config-net", "-4", "-P", pidFile, String(holder.pid)]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      expect(await must(["nsenter", "-t", String(holder.pid), "-n", "ip", "-j", "-4", "addr", "show", "dev", "eth0"])).toContain(TOPOLOGY.host4);
      holder.kill("SIGKILL");
      expect(await waitFor(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
    } finally {
      holder.kill("SIGKILL");
    }
  });
});

describe("pasta: rootless", () => {
  const nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];

  test("as uid 65534: exit status, --config-net addressing, DHCP and ping", async () => {
    const r = await host.run([...nobody, orzo, "pasta", "--config-net", "--", "sh", "-c", `id -u; ip -j -4 addr show dev eth0; ping -c 1 -W 3 ${TOPOLOGY.router4} >/dev/null && echo pinged; exit 3`]);
    expect(r.code).toBe(3);
    const [uid, addrText, pinged] = r.stdout.trim().split("\n");
    expect(uid).toBe("0");
    expect((JSON.parse(addrText) as { addr_info: { local: string }[] }[])[0].addr_info.map((a) => a.local)).toEqual([TOPOLOGY.host4]);
    expect(pinged).toBe("pinged");
    const d = await host.run([...nobody, orzo, "pasta", "--dhcp-dns", "--", "sh", "-c", `ip link set eth0 up && busybox udhcpc -i eth0 -f -q -n -t 5 -T 1 -s ${fixtures}/udhcpc-script.sh`]);
    expect(d.stdout).toContain(`lease ip=${TOPOLOGY.host4} `);
  });
});

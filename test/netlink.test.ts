/**
 * The NETLINK_ROUTE client against the real kernel, in network namespaces made here (never the machine's own
 * interfaces): a fixture runs the client inside a namespace (`ip netns exec`) and prints results, and `ip -j`
 * checks the state it left. Then the same client against a fake kernel (silence, stale and malformed replies),
 * and its parsers against real, truncated, mutated and random frames.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Netlink, NetlinkError, type LinkInfo, type RouteInfo } from "../src/ns/netlink.ts";
import { defaultGateway, isLinkLocal, templateIndex } from "../src/ns/netlink-host.ts";
import { forEachMessage, IFF, NLM_F, NLMSG, nlBuffer, RTM } from "../src/ns/netlink-msg.ts";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM } from "../src/syscalls/constants.ts";
import { close } from "../src/syscalls/io.ts";
import { socketpair } from "../src/syscalls/socket.ts";
import { attr, concat, decodeAll, done, errorReply, FakeKernel, ifinfomsg, linkRecord, msg, Prng, u32 } from "./fixtures/netlink-frames.ts";
import { must, run, waitFor } from "./helpers/netns.ts";

const FIXTURE = join(import.meta.dir, "fixtures/netlink-ops.ts");
/** Bound for tests that build namespaces and run the fixture. */
const NETNS_TEST_MS = 30_000;

/** Namespaces still to remove: afterAll removes whatever a failed test left. */
const namespaces = new Set<string>();
let made = 0;

afterAll(async () => {
  for (const ns of [...namespaces]) await dropNetns(ns);
});

async function dropNetns(ns: string): Promise<void> {
  await run(["ip", "netns", "del", ns], { timeoutMs: 10_000 });
  namespaces.delete(ns);
}

/** Runs body with `count` fresh namespaces (loopback up), removed afterwards whether or not it fails. */
async function withNetns(count: number, body: (...names: string[]) => Promise<void>): Promise<void> {
  const names: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const ns = `orzo-nl-${process.pid}-${++made}`;
      await must(["ip", "netns", "add", ns]);
      namespaces.add(ns);
      names.push(ns);
      await ip(ns, "link set lo up");
    }
    await body(...names);
  } finally {
    for (const ns of names) await dropNetns(ns);
  }
}

/** Runs `ip -n ns <command>` for each command, failing on the first error. */
async function ip(ns: string, ...commands: string[]): Promise<void> {
  for (const c of commands) await must(["ip", "-n", ns, ...c.split(" ")]);
}

/** `ip -n ns -j <args>`, parsed (ip's JSON is untyped). */
async function ipJson(ns: string, args: string): Promise<any> {
  return JSON.parse(await must(["ip", "-n", ns, "-j", ...args.split(" ")]));
}

/** A veth pair with both ends in ns, both up. */
async function veth(ns: string, a: string, b: string): Promise<void> {
  await ip(ns, `link add ${a} type veth peer name ${b}`, `link set ${a} up`, `link set ${b} up`);
}

/** The interface's IPv6 link-local address once the kernel has made it (bounded wait). */
async function linkLocalOf(ns: string, dev: string): Promise<string> {
  let ll = "";
  const ok = await waitFor(async () => {
    // ip lists the addresses its filter left out as empty objects.
    const info: { local?: string }[] = (await ipJson(ns, `-6 addr show dev ${dev} scope link`))[0]?.addr_info ?? [];
    ll = info.find((a) => a.local)?.local ?? "";
    return ll !== "";
  }, 5000);
  if (!ok) throw new Error(`no link-local address on ${dev}`);
  return ll;
}

async function ifindexOf(ns: string, dev: string): Promise<number> {
  return (await ipJson(ns, `link show ${dev}`))[0].ifindex;
}

/** One operation's outcome as the fixture reports it. */
type Result = { ok?: any; error?: string; errno?: number; ms: number };

/** Runs operations through the Netlink client inside ns (with a socket from peer for copies and `peer: true`). */
async function nl(ns: string, ops: object[], peer?: string): Promise<Result[]> {
  const argv = ["ip", "netns", "exec", ns, process.execPath, FIXTURE, JSON.stringify(ops), ...(peer ? [peer] : [])];
  const r = await run(argv, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`fixture failed (${r.code}): ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

/** The only operation's result, failing with its error if it has one. */
async function nlOk(ns: string, op: object, peer?: string): Promise<any> {
  const [r] = await nl(ns, [op], peer);
  if (r.error) throw new Error(r.error);
  return r.ok;
}

describe("hostAddressing picks the template interface, address and gateway", () => {
  test("dual stack: default route interface, longest non-deprecated prefix, link-local IPv6 gateway", async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "eth0", "eth0p");
      await veth(ns, "eth1", "eth1p");
      await ip(ns, "addr add 10.0.0.1/8 dev eth0", "addr add 198.51.100.1/24 dev eth0",
        "addr add 198.51.100.77/26 dev eth0 preferred_lft 0", "addr add 203.0.113.1/24 dev eth1",
        "route add default via 198.51.100.254 dev eth0",
        "-6 addr add 2001:db8:1::1/64 dev eth0 nodad", "-6 addr add 2001:db8:1::77/80 dev eth0 nodad preferred_lft 0",
        "-6 addr add 2001:db8:2::1/64 dev eth1 nodad", "-6 route add default via fe80::fe dev eth0");
      const ll = await linkLocalOf(ns, "eth0");
      const ifindex = await ifindexOf(ns, "eth0");
      expect(await nlOk(ns, { op: "hostAddressing" })).toEqual({
        v4: { ifname: "eth0", ifindex, address: "198.51.100.1", prefixLen: 24, gateway: "198.51.100.254" },
        v6: { ifname: "eth0", ifindex, address: "2001:db8:1::1", prefixLen: 64, gateway: "fe80::fe", linkLocal: ll },
      });
    });
  }, NETNS_TEST_MS);

  test("the default route through a second interface wins over the first interface's routes", async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "eth0", "eth0p");
      await veth(ns, "eth1", "eth1p");
      await ip(ns, "addr add 192.0.2.1/24 dev eth0", "addr add 198.51.100.1/24 dev eth1",
        "route add default via 198.51.100.254 dev eth1", "-6 addr add 2001:db8:5::1/64 dev eth0 nodad",
        "-6 addr add 2001:db8:6::1/64 dev eth1 nodad", "-6 route add default via 2001:db8:6::fe dev eth1");
      const ll = await linkLocalOf(ns, "eth1");
      const ifindex = await ifindexOf(ns, "eth1");
      expect(await nlOk(ns, { op: "hostAddressing" })).toEqual({
        v4: { ifname: "eth1", ifindex, address: "198.51.100.1", prefixLen: 24, gateway: "198.51.100.254" },
        v6: { ifname: "eth1", ifindex, address: "2001:db8:6::1", prefixLen: 64, gateway: "2001:db8:6::fe", linkLocal: ll },
      });
    });
  }, NETNS_TEST_MS);

  test("no default route: the first interface with a route, skipping loopback and link-local routes", async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "eth0", "eth0p");
      await veth(ns, "eth1", "eth1p");
      await ip(ns, "route add 10.9.9.0/24 dev lo", "route add 169.254.0.0/16 dev eth0", "addr add 192.0.2.1/24 dev eth1",
        "-6 route add 2001:db8:9::/64 dev lo");
      await linkLocalOf(ns, "eth0");
      const ifindex = await ifindexOf(ns, "eth1");
      // IPv6 has only link-local and loopback routes: no template, local mode for IPv6.
      expect(await nlOk(ns, { op: "hostAddressing" })).toEqual({
        v4: { ifname: "eth1", ifindex, address: "192.0.2.1", prefixLen: 24 },
      });
    });
  }, NETNS_TEST_MS);

  test("IPv6 only", async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "eth0", "eth0p");
      await ip(ns, "-6 addr add 2001:db8:1::1/64 dev eth0 nodad", "-6 route add default via 2001:db8:1::fe dev eth0");
      const ll = await linkLocalOf(ns, "eth0");
      expect(await nlOk(ns, { op: "hostAddressing" })).toEqual({
        v6: { ifname: "eth0", ifindex: await ifindexOf(ns, "eth0"), address: "2001:db8:1::1", prefixLen: 64, gateway: "2001:db8:1::fe", linkLocal: ll },
      });
    });
  }, NETNS_TEST_MS);

  test("multipath default routes: the highest-weight nexthop; given interface names override the choice", async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "eth0", "eth0p");
      await veth(ns, "eth1", "eth1p");
      await ip(ns, "addr add 198.51.100.1/24 dev eth0", "addr add 203.0.113.1/24 dev eth1",
        "route add default nexthop via 198.51.100.252 dev eth0 weight 1 nexthop via 198.51.100.254 dev eth0 weight 5 nexthop via 198.51.100.253 dev eth0 weight 2",
        "-6 addr add 2001:db8:1::1/64 dev eth0 nodad", "-6 addr add 2001:db8:2::1/64 dev eth1 nodad",
        "-6 route add default nexthop via 2001:db8:1::fd dev eth0 weight 2 nexthop via 2001:db8:1::fe dev eth0 weight 7 nexthop via 2001:db8:1::fc dev eth0 weight 1");
      const ll0 = await linkLocalOf(ns, "eth0");
      const ll1 = await linkLocalOf(ns, "eth1");
      const [chosen, given, missing] = await nl(ns, [
        { op: "hostAddressing" },
        { op: "hostAddressing", ifname4: "eth1", ifname6: "eth1" },
        { op: "hostAddressing", ifname4: "nope0" },
      ]);
      const [i0, i1] = [await ifindexOf(ns, "eth0"), await ifindexOf(ns, "eth1")];
      expect(chosen.ok).toEqual({
        v4: { ifname: "eth0", ifindex: i0, address: "198.51.100.1", prefixLen: 24, gateway: "198.51.100.254" },
        v6: { ifname: "eth0", ifindex: i0, address: "2001:db8:1::1", prefixLen: 64, gateway: "2001:db8:1::fe", linkLocal: ll0 },
      });
      expect(given.ok).toEqual({
        v4: { ifname: "eth1", ifindex: i1, address: "203.0.113.1", prefixLen: 24 },
        v6: { ifname: "eth1", ifindex: i1, address: "2001:db8:2::1", prefixLen: 64, linkLocal: ll1 },
      });
      expect(missing.error).toBe("netlink: RTM_GETLINK nope0: ENODEV (No such device)");
    });
  }, NETNS_TEST_MS);

  test("the choice rules on synthetic records", () => {
    const links: LinkInfo[] = [
      { index: 1, name: "lo", type: 772, flags: 0x9, mtu: 65536 },
      { index: 2, name: "eth0", type: 1, flags: 0x1, mtu: 1500 },
      { index: 3, name: "eth1", type: 1, flags: 0x1, mtu: 1500 },
    ];
    const route = (r: Partial<RouteInfo>): RouteInfo =>
      ({ version: 4, table: 254, protocol: 3, scope: 0, type: 1, flags: 0, dstLen: 0, oif: 0, multipath: [], ...r });
    // A multipath default route counts for its first nexthop's interface.
    const mp = route({ multipath: [{ ifindex: 3, weight: 1, flags: 0, gateway: "192.0.2.1" }, { ifindex: 2, weight: 9, flags: 0, gateway: "192.0.2.2" }] });
    expect(templateIndex(4, [route({ dst: "10.0.0.0", dstLen: 8, oif: 2 }), mp], links)).toBe(3);
    // Only loopback and link-local routes, or routes of another table or type: no template.
    expect(templateIndex(4, [route({ oif: 1 }), route({ dst: "169.254.0.0", dstLen: 16, oif: 2 }), route({ oif: 2, table: 100 }), route({ oif: 2, type: 6 })], links)).toBe(0);
    expect(templateIndex(6, [route({ version: 6, dst: "fe80::", dstLen: 64, oif: 2 })], links)).toBe(0);
    // The gateway comes from the nexthop on the template interface with the highest weight, ties to the first.
    expect(defaultGateway(4, 3, [mp])).toBe("192.0.2.1");
    const tie = route({ multipath: [{ ifindex: 2, weight: 4, flags: 0, gateway: "192.0.2.7" }, { ifindex: 2, weight: 4, flags: 0, gateway: "192.0.2.8" }] });
    expect(defaultGateway(4, 2, [tie])).toBe("192.0.2.7");
    expect(isLinkLocal(6, "febf::1", 128)).toBe(true);
    expect(isLinkLocal(6, "fec0::", 10)).toBe(false);
    expect(isLinkLocal(6, "fe80::", 8)).toBe(false);
    expect(isLinkLocal(4, "169.254.1.1", 32)).toBe(true);
  });
});

describe("configuring a namespace interface", () => {
  test("MTU, MAC, link up, IPv4/IPv6 addresses, default and prefix routes, link-local address", async () => {
    await withNetns(1, async (ns) => {
      await ip(ns, "link add tap0 type veth peer name tap0p", "link set tap0p up");
      const r = await nl(ns, [
        { op: "setMtu", dev: "tap0", mtu: 1400 },
        { op: "setMac", dev: "tap0", mac: "9a:55:9a:55:9a:55" },
        { op: "setLinkUp", dev: "tap0" },
        { op: "addAddress", dev: "tap0", address: "198.51.100.2", prefixLen: 24 },
        { op: "addAddress", dev: "tap0", address: "2001:db8:1::2", prefixLen: 64 },
        { op: "addDefaultRoute", dev: "tap0", gateway: "198.51.100.1" },
        { op: "addDefaultRoute", dev: "tap0", gateway: "fe80::1" },
        { op: "addRoute", dev: "tap0", dst: "10.20.0.0", dstLen: 16, gateway: "198.51.100.254", metric: 50 },
        { op: "addRoute", dev: "tap0", dst: "192.0.2.0", dstLen: 24 },
        { op: "addRoute", dev: "tap0", dst: "2001:db8:30::", dstLen: 48, gateway: "2001:db8:1::fe" },
        { op: "linkLocal", dev: "tap0", timeoutMs: 3000 },
        { op: "setLinkLocalNoDad", dev: "tap0" },
        { op: "link", dev: "tap0" },
        { op: "routes" },
      ]);
      expect(r.filter((x) => x.error)).toEqual([]);
      const [link] = await ipJson(ns, "link show tap0");
      expect(link.mtu).toBe(1400);
      expect(link.address).toBe("9a:55:9a:55:9a:55");
      expect(link.flags).toContain("UP");
      expect(r[12].ok).toMatchObject({ name: "tap0", index: link.ifindex, mtu: 1400, mac: "9a:55:9a:55:9a:55" });
      const addrs = (await ipJson(ns, "addr show dev tap0"))[0].addr_info;
      expect(addrs).toContainEqual(expect.objectContaining({ family: "inet", local: "198.51.100.2", prefixlen: 24 }));
      expect(addrs).toContainEqual(expect.objectContaining({ family: "inet6", local: "2001:db8:1::2", prefixlen: 64, nodad: true }));
      const ll = addrs.find((a: any) => a.scope === "link");
      expect(r[10].ok).toBe(ll.local);
      expect(ll.nodad).toBe(true);
      const v4 = await ipJson(ns, "route show dev tap0");
      expect(v4).toContainEqual(expect.objectContaining({ dst: "default", gateway: "198.51.100.1" }));
      expect(v4).toContainEqual(expect.objectContaining({ dst: "10.20.0.0/16", gateway: "198.51.100.254", metric: 50 }));
      expect(v4).toContainEqual(expect.objectContaining({ dst: "192.0.2.0/24", scope: "link" }));
      const v6 = await ipJson(ns, "-6 route show dev tap0");
      expect(v6).toContainEqual(expect.objectContaining({ dst: "default", gateway: "fe80::1" }));
      expect(v6).toContainEqual(expect.objectContaining({ dst: "2001:db8:30::/48", gateway: "2001:db8:1::fe" }));
      // ip does not print protocol "boot" (its own default): read it back through the client's route dump.
      const defaults = (r[13].ok as RouteInfo[]).filter((x) => x.dstLen === 0);
      expect(defaults.map((x) => [x.version, x.gateway, x.protocol, x.oif])).toEqual([[4, "198.51.100.1", 3, link.ifindex], [6, "fe80::1", 3, link.ifindex]]);

      await nl(ns, [{ op: "setLinkUp", dev: "tap0", up: false }, { op: "setLinkFlags", dev: "tap0", set: IFF.NOARP, change: IFF.NOARP }]);
      const [after] = await ipJson(ns, "link show tap0");
      expect(after.flags).not.toContain("UP");
      expect(after.flags).toContain("NOARP");
    });
  }, NETNS_TEST_MS);

  test("GSO packet size of loopback raised to the device's limit, for IPv6 and IPv4, and read back", async () => {
    await withNetns(1, async (ns) => {
      const [before] = await nl(ns, [{ op: "link", dev: "lo" }]);
      const lo = before.ok as LinkInfo;
      expect(lo.gsoMaxSize).toBe(65536);
      expect(lo.tsoMaxSize).toBeGreaterThan(65536);
      const r = await nl(ns, [{ op: "setGsoMaxSize", dev: "lo", size: lo.tsoMaxSize }, { op: "link", dev: "lo" }]);
      expect(r[0].error).toBeUndefined();
      expect(r[1].ok).toMatchObject({ gsoMaxSize: lo.tsoMaxSize, gsoIpv4MaxSize: lo.tsoMaxSize, tsoMaxSize: lo.tsoMaxSize });
      const [shown] = await ipJson(ns, "-d link show lo");
      expect(shown.gso_max_size).toBe(lo.tsoMaxSize);
      const [tooBig] = await nl(ns, [{ op: "setGsoMaxSize", dev: "lo", size: lo.tsoMaxSize! + 8 }]);
      expect(tooBig.error).toContain("gso_max_size");
    });
  }, NETNS_TEST_MS);

  test("errors name the failing request", async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "tap0", "tap0p");
      await ip(ns, "addr add 198.51.100.2/24 dev tap0");
      const r = await nl(ns, [
        { op: "addAddress", dev: "tap0", address: "198.51.100.2", prefixLen: 24 },
        { op: "addRoute", dev: "tap0", dst: "10.99.0.0", dstLen: 16, gateway: "203.0.113.1" },
        { op: "addRoute", dev: "tap0", dst: "2001:db8:99::", dstLen: 48, gateway: "2001:db8:77::1" },
        { op: "addAddress", index: 9999, address: "192.0.2.9", prefixLen: 24 },
        { op: "link", dev: "nope0" },
        { op: "setMtu", dev: "tap0", mtu: 70000 },
        { op: "addAddress", dev: "tap0", address: "300.1.1.1", prefixLen: 24 },
        { op: "addAddress", dev: "tap0", address: "192.0.2.1", prefixLen: 33 },
        { op: "setMac", dev: "tap0", mac: "9a:55" },
      ]);
      expect(r[0].error).toStartWith("netlink: RTM_NEWADDR 198.51.100.2/24 on tap0: EEXIST (File exists)");
      expect(r[1].error).toStartWith("netlink: RTM_NEWROUTE 10.99.0.0/16 via 203.0.113.1 dev tap0: ENETUNREACH (Network is unreachable)");
      expect(r[2].error).toStartWith("netlink: RTM_NEWROUTE 2001:db8:99::/48 via 2001:db8:77::1 dev tap0: EHOSTUNREACH (No route to host)");
      expect(r[3].error).toStartWith("netlink: RTM_NEWADDR 192.0.2.9/24 on ifindex 9999: ENODEV (No such device)");
      expect(r[4].error).toBe("netlink: RTM_GETLINK nope0: ENODEV (No such device)");
      expect(r[5].error).toStartWith("netlink: RTM_NEWLINK tap0 mtu 70000: EINVAL (Invalid argument)");
      expect(r[6].error).toBe("netlink: RTM_NEWADDR 300.1.1.1/24 on tap0: EINVAL (Invalid argument): '300.1.1.1' is not an IPv4 address");
      expect(r[7].error).toBe("netlink: RTM_NEWADDR 192.0.2.1/33 on tap0: EINVAL (Invalid argument): prefix length 33");
      expect(r[8].error).toBe("netlink: RTM_NEWLINK tap0 address 9a:55: EINVAL (Invalid argument): not a MAC address");
    });
  }, NETNS_TEST_MS);

  test("waiting for a link-local address is bounded", async () => {
    await withNetns(1, async (ns) => {
      await ip(ns, "link add tap0 type veth peer name tap0p");
      const [r] = await nl(ns, [{ op: "linkLocal", dev: "tap0", timeoutMs: 300 }]);
      expect(r.error).toBe("netlink: IPv6 link-local address of tap0: ETIMEDOUT (Connection timed out): none within 300 ms");
      expect(r.ms).toBeGreaterThanOrEqual(300);
      expect(r.ms).toBeLessThan(1500);
    });
  }, NETNS_TEST_MS);
});

/** Routes of a device (including multipath routes whose nexthops all use it), without what a copy drops. */
function routesThrough(routes: any[], dev: string): string[] {
  return routes
    .filter((r) => r.dev === dev || (r.nexthops && r.nexthops.every((h: any) => h.dev === dev)))
    .map((r) => JSON.stringify({
      dst: r.dst, gateway: r.gateway, protocol: r.protocol, scope: r.scope, metric: r.metric, metrics: r.metrics,
      nexthops: r.nexthops?.map((h: any) => ({ gateway: h.gateway, weight: h.weight })),
    }))
    .sort();
}

describe("copying the host's template interface (--config-net)", () => {
  test("addresses and routes, dependent routes included, through a socket made in the other namespace", async () => {
    await withNetns(2, async (host, guest) => {
      await veth(host, "eth0", "eth0p");
      await veth(host, "eth1", "eth1p");
      await ip(host, "addr add 198.51.100.1/24 dev eth0", "addr add 198.51.100.77/26 dev eth0 preferred_lft 0",
        "addr add 192.0.2.1/24 dev eth1", "route add default via 198.51.100.254 dev eth0",
        "route add 203.0.113.0/24 dev eth0 scope link", "route add 10.40.0.0/16 via 203.0.113.1 dev eth0",
        "route add 10.50.0.0/16 via 198.51.100.254 dev eth0 src 198.51.100.1 mtu 1400",
        "route add 10.60.0.0/16 nexthop via 198.51.100.252 dev eth0 weight 1 nexthop via 198.51.100.253 dev eth0 weight 3",
        "route add 10.70.0.0/16 via 192.0.2.254 dev eth1",
        "route add 10.80.0.0/16 nexthop via 198.51.100.252 dev eth0 nexthop via 192.0.2.254 dev eth1",
        // Policy routing makes this gateway reachable on the host only: the copy can never install it.
        "rule add to 198.18.0.0/24 table 100 pref 100", "route add 198.18.0.0/24 dev eth0 table 100",
        "route add 10.90.0.0/16 via 198.18.0.1 dev eth0",
        "-6 addr add 2001:db8:1::1/64 dev eth0 nodad", "-6 addr add 2001:db8:1::99/64 dev eth0 nodad preferred_lft 0",
        "-6 addr add 2001:db8:2::1/64 dev eth1 nodad", "-6 route add default via fe80::fe dev eth0",
        "-6 route add 2001:db8:40::/48 via 2001:db8:1::fe dev eth0 metric 512",
        "-6 route add 2001:db8:60::/48 nexthop via 2001:db8:1::fc dev eth0 weight 2 nexthop via 2001:db8:1::fd dev eth0",
        "-6 route add 2001:db8:70::/48 via 2001:db8:2::fe dev eth1");
      await linkLocalOf(host, "eth0");
      await ip(guest, "link add tap0 type veth peer name tap0p", "link set tap0p up");

      const r = await nl(guest, [
        { op: "setLinkUp", dev: "tap0" },
        { op: "copyAddresses", from: "eth0", dev: "tap0" },
        { op: "copyRoutes", from: "eth0", dev: "tap0" },
      ], host);
      expect(r.filter((x) => x.error)).toEqual([]);
      expect(r[1].ok.sort()).toEqual(["198.51.100.1/24", "2001:db8:1::1/64"]);
      const addrs = (await ipJson(guest, "addr show dev tap0"))[0].addr_info;
      expect(addrs.filter((a: any) => a.scope === "global").map((a: any) => `${a.local}/${a.prefixlen}`).sort()).toEqual(["198.51.100.1/24", "2001:db8:1::1/64"]);
      expect(addrs.find((a: any) => a.local === "2001:db8:1::1").nodad).toBe(true);

      await linkLocalOf(guest, "tap0");
      const hostRoutes = [...routesThrough(await ipJson(host, "route show table main"), "eth0"), ...routesThrough(await ipJson(host, "-6 route show table main"), "eth0")];
      const guestRoutes = [...routesThrough(await ipJson(guest, "route show table main"), "tap0"), ...routesThrough(await ipJson(guest, "-6 route show table main"), "tap0")];
      const unreachable = hostRoutes.filter((x) => x.includes("10.90.0.0/16"));
      expect(unreachable).toHaveLength(1);
      expect(guestRoutes).toEqual(hostRoutes.filter((x) => !unreachable.includes(x)));
      expect(r[2].ok.copied).toBe(hostRoutes.length - 1);
      expect(r[2].ok.failed).toEqual([expect.stringMatching(/^netlink: RTM_NEWROUTE 10\.90\.0\.0\/16 via 198\.18\.0\.1 dev tap0: ENETUNREACH \(Network is unreachable\)/)]);
      // Preferred sources are the host's: stripped.
      expect((await ipJson(guest, "route show 10.50.0.0/16"))[0]).toMatchObject({ gateway: "198.51.100.254", metrics: [{ mtu: 1400 }] });
      expect((await ipJson(guest, "route show 10.50.0.0/16"))[0].prefsrc).toBeUndefined();
    });
  }, NETNS_TEST_MS);
});

describe("the socket", () => {
  test("a given fd must be a NETLINK_ROUTE socket", () => {
    const [a, b] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    try {
      expect(() => new Netlink({ fd: a })).toThrow(`netlink: fd ${a}: EINVAL (Invalid argument): not a NETLINK_ROUTE socket (family 1, protocol 0)`);
      expect(() => new Netlink({ fd: 1_000_000 })).toThrow("netlink: fd 1000000: EBADF (Bad file descriptor)");
    } finally {
      close(a);
      close(b);
    }
  });
});

describe("against a fake kernel", () => {
  /** Runs body with a client on a socket connected to a fake kernel; everything is closed afterwards. */
  function withFake(timeoutMs: number, body: (client: Netlink, kernel: FakeKernel) => void): void {
    const kernel = new FakeKernel();
    const client = new Netlink({ fd: kernel.clientFd, timeoutMs });
    try {
      body(client, kernel);
    } finally {
      client.close();
      kernel.close();
    }
  }

  /** Calls fn and returns the NetlinkError it throws, with the time it took. */
  function failure(fn: () => unknown): { error: NetlinkError; ms: number } {
    const start = performance.now();
    try {
      fn();
    } catch (e) {
      if (!(e instanceof NetlinkError)) throw e;
      return { error: e, ms: performance.now() - start };
    }
    throw new Error("no error");
  }

  test("a silent kernel, or one answering only other requests, times out", () => {
    withFake(200, (client, kernel) => {
      const silent = failure(() => client.links());
      expect(silent.error.message).toBe("netlink: RTM_GETLINK dump: ETIMEDOUT (Connection timed out): no reply within 200 ms");
      expect(silent.ms).toBeLessThan(1500);
      for (let i = 0; i < 50; i++) kernel.reply(concat(linkRecord(client.nextSequence + 1000 + i, 2, "stale"), done(client.nextSequence + 1000 + i)));
      const stale = failure(() => client.links());
      expect(stale.error.code).toBe("ETIMEDOUT");
      expect(stale.ms).toBeLessThan(1500);
    });
  });

  test("replies are matched by sequence number; a GET ends at its ACK", () => {
    withFake(500, (client, kernel) => {
      const seq = client.nextSequence;
      kernel.reply(errorReply(seq + 77, 0));
      kernel.reply(concat(linkRecord(seq, 5, "eth5", 0), errorReply(seq, 0)));
      expect(client.link(5)).toMatchObject({ index: 5, name: "eth5" });
    });
  });

  test("a kernel error carries its extended-ack text", () => {
    withFake(500, (client, kernel) => {
      kernel.reply(errorReply(client.nextSequence, 19, "fake kernel says no"));
      expect(failure(() => client.link(7)).error.message).toBe("netlink: RTM_GETLINK ifindex 7: ENODEV (No such device): fake kernel says no");
    });
  });

  test("an inconsistent dump is retried, up to a limit", () => {
    withFake(500, (client, kernel) => {
      const seq = client.nextSequence;
      kernel.reply(concat(linkRecord(seq, 2, "old", NLM_F.MULTI | NLM_F.DUMP_INTR), done(seq)));
      kernel.reply(concat(linkRecord(seq + 1, 2, "new"), done(seq + 1)));
      expect(client.links().map((l) => l.name)).toEqual(["new"]);
      for (let i = 0; i < 3; i++) kernel.reply(concat(linkRecord(seq + 2 + i, 2, "x", NLM_F.MULTI | NLM_F.DUMP_INTR), done(seq + 2 + i)));
      expect(failure(() => client.links()).error.message).toBe("netlink: RTM_GETLINK dump: EAGAIN (Resource temporarily unavailable): tables kept changing over 3 attempts");
    });
  });

  test("malformed replies are errors naming the request, and the dump is read to its end first", () => {
    withFake(300, (client, kernel) => {
      let seq = client.nextSequence;
      const badAttr = msg(RTM.NEWLINK, NLM_F.MULTI, seq, ifinfomsg(3), new Uint8Array([0, 0, 3, 0]));
      kernel.reply(concat(badAttr, linkRecord(seq, 4, "ok"), done(seq)));
      kernel.reply(concat(linkRecord(seq + 1, 4, "next"), done(seq + 1)));
      expect(failure(() => client.links()).error.message).toBe("netlink: RTM_GETLINK dump: EBADMSG (Bad message): attribute length 0 at offset 32 (4 bytes left)");
      expect(client.links().map((l) => l.name)).toEqual(["next"]);

      seq = client.nextSequence;
      const zeroLen = msg(RTM.NEWLINK, NLM_F.MULTI, seq);
      new DataView(zeroLen.buffer).setUint32(0, 0, true);
      kernel.reply(zeroLen);
      expect(failure(() => client.links()).error.message).toBe("netlink: RTM_GETLINK dump: EBADMSG (Bad message): message length 0 at offset 0 of a 16-byte datagram");

      const long = msg(RTM.NEWLINK, NLM_F.MULTI, client.nextSequence);
      new DataView(long.buffer).setUint32(0, 400, true);
      kernel.reply(long);
      expect(failure(() => client.links()).error.code).toBe("EBADMSG");

      kernel.reply(new Uint8Array(70_000));
      expect(failure(() => client.links()).error.message).toBe("netlink: RTM_GETLINK dump: EMSGSIZE (Message too long): reply of 70000 bytes exceeds the 65536-byte buffer");
    });
  });

  test("random replies with the right sequence number give only NetlinkErrors, each within the timeout", () => {
    const prng = new Prng(0x5eed);
    withFake(30, (client, kernel) => {
      for (let i = 0; i < 150; i++) {
        const seq = client.nextSequence;
        const body = prng.bytes(prng.below(120));
        const reply = msg(prng.below(3) === 0 ? NLMSG.ERROR : RTM.NEWLINK, prng.below(0x400), seq, body);
        if (prng.below(4) === 0) new DataView(reply.buffer).setUint32(0, prng.below(300), true);
        kernel.reply(prng.below(2) === 0 ? reply : concat(reply, done(seq)));
        const start = performance.now();
        try {
          client.links();
        } catch (e) {
          expect(e).toBeInstanceOf(NetlinkError);
        }
        expect(performance.now() - start).toBeLessThan(1000);
      }
    });
  });
});

describe("parsers on real, truncated, mutated and random frames", () => {
  /** Real dump datagrams from a namespace with links, addresses and (multipath) routes of both versions. */
  let seeds: Uint8Array[] = [];

  beforeAll(async () => {
    await withNetns(1, async (ns) => {
      await veth(ns, "eth0", "eth0p");
      await ip(ns, "addr add 198.51.100.1/24 dev eth0", "-6 addr add 2001:db8:1::1/64 dev eth0 nodad",
        "route add default nexthop via 198.51.100.252 dev eth0 weight 1 nexthop via 198.51.100.254 dev eth0 weight 5",
        "route add 10.50.0.0/16 via 198.51.100.254 src 198.51.100.1 mtu 1400",
        "-6 route add 2001:db8:60::/48 nexthop via 2001:db8:1::fc dev eth0 weight 2 nexthop via 2001:db8:1::fd dev eth0");
      await linkLocalOf(ns, "eth0");
      const dumps = await nl(ns, [
        { op: "rawDump", type: RTM.GETLINK, family: 0 },
        { op: "rawDump", type: RTM.GETADDR, family: 0 },
        { op: "rawDump", type: RTM.GETROUTE, family: 2 },
        { op: "rawDump", type: RTM.GETROUTE, family: 10 },
      ]);
      seeds = dumps.flatMap((d) => (d.ok as string[]).map((b) => new Uint8Array(Buffer.from(b, "base64"))));
    });
  }, NETNS_TEST_MS);

  /** Runs the parsers over bytes; anything thrown must be a NetlinkError. */
  function survives(bytes: Uint8Array): void {
    try {
      decodeAll(bytes);
    } catch (e) {
      if (!(e instanceof NetlinkError)) throw new Error(`${e} on ${Buffer.from(bytes).toString("hex")}`);
    }
  }

  test("real dumps decode completely", () => {
    expect(seeds.length).toBeGreaterThanOrEqual(4);
    for (const s of seeds) decodeAll(s);
  });

  test("every truncation of every datagram and of every message in it", () => {
    for (const s of seeds) {
      for (let cut = 0; cut <= s.length; cut++) survives(s.subarray(0, cut));
      forEachMessage(nlBuffer(s), s.length, (_t, _f, _s, off, len) => {
        const start = off - 16;
        for (let cut = 16; cut < len + 16; cut++) {
          const m = s.slice(start, start + cut);
          new DataView(m.buffer).setUint32(0, cut, true);
          survives(m);
        }
      });
    }
  });

  test("random byte mutations of real datagrams", () => {
    const prng = new Prng(0xc0ffee);
    for (let i = 0; i < 20_000; i++) {
      const s = seeds[prng.below(seeds.length)].slice();
      for (let k = 1 + prng.below(6); k > 0; k--) s[prng.below(s.length)] = prng.below(256);
      survives(s);
    }
  });

  test("random bytes behind a valid message header", () => {
    const prng = new Prng(42);
    const types = [RTM.NEWLINK, RTM.NEWADDR, RTM.NEWROUTE, NLMSG.ERROR, NLMSG.DONE];
    for (let i = 0; i < 3000; i++) {
      const family = [2, 10, prng.below(256)][prng.below(3)];
      const body = prng.bytes(prng.below(200));
      body[0] = family;
      survives(msg(types[prng.below(types.length)], prng.below(0x400), 1, body));
    }
  });

  test("pathological lengths: zero-length attributes and nexthops, wrong-size values", () => {
    const rtmsg = (family: number, dstLen = 0) => Uint8Array.from([family, dstLen, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
    const expectBad = (bytes: Uint8Array, detail: RegExp) => {
      let error: unknown;
      try {
        decodeAll(bytes);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(NetlinkError);
      expect((error as NetlinkError).code).toBe("EBADMSG");
      expect((error as Error).message).toMatch(detail);
    };
    expectBad(msg(RTM.NEWROUTE, 0, 1, rtmsg(2), new Uint8Array([0, 0, 1, 0])), /attribute length 0/);
    expectBad(msg(RTM.NEWROUTE, 0, 1, rtmsg(2), attr(9, new Uint8Array(8))), /nexthop length 0/);
    expectBad(msg(RTM.NEWROUTE, 0, 1, rtmsg(2), attr(4, new Uint8Array(2))), /2 bytes, expected 4/);
    expectBad(msg(RTM.NEWROUTE, 0, 1, rtmsg(2, 24), attr(1, new Uint8Array(5))), /IPv4 address of 5 bytes/);
    expectBad(msg(RTM.NEWROUTE, 0, 1, rtmsg(2, 33)), /IPv4 prefix length 33/);
    expectBad(msg(RTM.NEWLINK, 0, 1, ifinfomsg(2), attr(4, new Uint8Array(2))), /link without a name|expected 4/);
    expectBad(msg(RTM.NEWADDR, 0, 1, Uint8Array.from([10, 64, 0, 0, 2, 0, 0, 0]), attr(1, new Uint8Array(4))), /IPv6 address of 4 bytes/);
    expectBad(msg(NLMSG.ERROR, 0, 1, u32(5), new Uint8Array(16)), /error code 5/);
    expectBad(concat(msg(NLMSG.NOOP, 0, 1), new Uint8Array(7)), /7 stray bytes/);
  });
});

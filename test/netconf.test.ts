/** resolveNetConf: what the guest is given, from hand-made command lines, host addressing and resolv.conf. */
import { describe, expect, test } from "bun:test";
import { parseCommandLine, type Config } from "../src/cli/config.ts";
import {
  namespaceIfname,
  resolveNetConf,
  templateInterfaces,
  type HostAddressing,
  type NetConf,
} from "../src/netconf.ts";
import type { ResolvConf } from "../src/resolv.ts";
import { inanyToText } from "../src/wire/inany.ts";

/** The Config for `orzo ARGS` (pasta unless the first argument is passt). */
function config(args: string[]): Config {
  const invocation = parseCommandLine("orzo", args, { SHELL: "/bin/sh" });
  if (invocation.action !== "run") throw new Error(`expected a run, got ${invocation.action}`);
  return invocation.config;
}

// A dual-stack host: the usual IPv6 case with a link-local gateway.
const HOST: HostAddressing = {
  v4: { ifname: "eth0", ifindex: 2, address: "198.51.100.1", prefixLen: 24, gateway: "198.51.100.254" },
  v6: {
    ifname: "eth0",
    ifindex: 2,
    address: "2001:db8:1::1",
    prefixLen: 64,
    gateway: "fe80::fe",
    linkLocal: "fe80::1:1",
  },
};
const IPV4_ONLY_HOST: HostAddressing = { v4: HOST.v4 };
const NO_HOST: HostAddressing = {};
const RESOLV: ResolvConf = { nameservers: ["198.51.100.53", "2001:db8:1::53"], search: ["example.com"] };
const NO_RESOLV: ResolvConf = { nameservers: [], search: [] };

/** An address as text; "" when unset (all zeros). */
function text(a: Uint8Array): string {
  return a.every((b) => b === 0) ? "" : inanyToText(a, 0);
}

function mac(m: Uint8Array): string {
  return Array.from(m, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** A NetConf with every address as text, for readable expectations. */
function view(nc: NetConf) {
  const family = (f: NetConf["ip4"] | NetConf["ip6"]) => ({
    enabled: f.enabled,
    localMode: f.localMode,
    addr: text(f.addr),
    prefixLen: f.prefixLen,
    gateway: text(f.gateway),
    ours: text("ourTapAddr" in f ? f.ourTapAddr : f.ourTapLinkLocal),
    addrSeen: text(f.addrSeen),
    addrFixed: f.addrFixed,
    dns: f.dns.map(text),
    dnsMatch: text(f.dnsMatch),
    dnsHost: text(f.dnsHost),
    mapHostLoopback: text(f.mapHostLoopback),
    mapGuestAddr: text(f.mapGuestAddr),
  });
  return {
    ...nc,
    ourMac: mac(nc.ourMac),
    guestMac: mac(nc.guestMac),
    ip4: family(nc.ip4),
    ip6: { ...family(nc.ip6), addrLinkLocalSeen: text(nc.ip6.addrLinkLocalSeen) },
  };
}

function resolved(args: string[], host: HostAddressing = HOST, resolv: ResolvConf = RESOLV) {
  return view(resolveNetConf(config(args), host, resolv));
}

describe("resolveNetConf: addressing", () => {
  test("a dual-stack host: the guest gets the host's addresses and gateways", () => {
    expect(resolved(["passt"])).toEqual({
      mtu: 65520,
      ourMac: "9a:55:9a:55:9a:55",
      guestMac: "ff:ff:ff:ff:ff:ff",
      ip4: {
        enabled: true,
        localMode: false,
        addr: "198.51.100.1",
        prefixLen: 24,
        gateway: "198.51.100.254",
        ours: "198.51.100.254",
        addrSeen: "198.51.100.1",
        addrFixed: false,
        dns: ["198.51.100.53"],
        dnsMatch: "",
        dnsHost: "198.51.100.53",
        mapHostLoopback: "198.51.100.254",
        mapGuestAddr: "",
      },
      ip6: {
        enabled: true,
        localMode: false,
        addr: "2001:db8:1::1",
        prefixLen: 64,
        gateway: "fe80::fe",
        ours: "fe80::fe",
        addrSeen: "2001:db8:1::1",
        addrLinkLocalSeen: "",
        addrFixed: false,
        dns: ["2001:db8:1::53"],
        dnsMatch: "",
        dnsHost: "2001:db8:1::53",
        mapHostLoopback: "fe80::fe",
        mapGuestAddr: "",
      },
      searchDomains: ["example.com"],
      hostname: undefined,
      fqdn: undefined,
      dhcpDns: true,
      dhcpSearch: true,
      noDhcp: false,
      noDhcpv6: false,
      noNdp: false,
      noRa: false,
      noIcmp: false,
      noTcp: false,
      noUdp: false,
    });
  });

  test("a global IPv6 gateway: our link-local address is the host's own", () => {
    const host = { ...HOST, v6: { ...HOST.v6!, gateway: "2001:db8:1::fe" } };
    expect(resolved([], host).ip6).toMatchObject({ gateway: "2001:db8:1::fe", ours: "fe80::1:1", localMode: false });
    // Without a link-local address either, IPv6 falls back to local mode, which takes nothing from the host.
    const bare = { ...HOST, v6: { ...HOST.v6!, gateway: "2001:db8:1::fe", linkLocal: undefined } };
    expect(resolved([], bare).ip6).toMatchObject({ localMode: true, addr: "", gateway: "fe80::1", ours: "fe80::1" });
    // A global -g in local mode is the gateway; our link-local address stays fe80::1.
    expect(resolved(["-g", "2001:db8:1::fe"], bare).ip6).toMatchObject({ gateway: "2001:db8:1::fe", ours: "fe80::1" });
  });

  test("an IPv4-only host: IPv6 in local mode, no DHCPv6", () => {
    const nc = resolved(["passt"], IPV4_ONLY_HOST, { nameservers: ["198.51.100.53"], search: [] });
    expect(nc.ip4).toMatchObject({ localMode: false, addr: "198.51.100.1", gateway: "198.51.100.254" });
    expect(nc.ip6).toMatchObject({
      enabled: true,
      localMode: true,
      addr: "",
      prefixLen: 64,
      gateway: "fe80::1",
      ours: "fe80::1",
      dns: [],
      dnsHost: "",
      mapHostLoopback: "fe80::1",
    });
    expect(nc).toMatchObject({ noDhcp: false, noDhcpv6: true, noNdp: false });
  });

  test("no host addressing at all: local mode for both versions", () => {
    const nc = resolved(["passt"], NO_HOST, NO_RESOLV);
    expect(nc.ip4).toMatchObject({
      enabled: true,
      localMode: true,
      addr: "169.254.2.1",
      prefixLen: 16,
      gateway: "169.254.2.2",
      ours: "169.254.2.2",
      addrSeen: "169.254.2.1",
      mapHostLoopback: "169.254.2.2",
      dns: [],
    });
    expect(nc.ip6).toMatchObject({ localMode: true, addr: "", gateway: "fe80::1", ours: "fe80::1" });
    expect(nc).toMatchObject({ noDhcp: false, noDhcpv6: true, searchDomains: [] });
  });

  test("a host without an IPv4 gateway or address is local mode, taking nothing from it", () => {
    const noGateway = { v4: { ...HOST.v4!, gateway: undefined } };
    expect(resolved([], noGateway).ip4).toMatchObject({ localMode: true, addr: "169.254.2.1", gateway: "169.254.2.2" });
    const noAddress = { v4: { ...HOST.v4!, address: undefined, prefixLen: 0 } };
    expect(resolved([], noAddress).ip4).toMatchObject({ localMode: true, addr: "169.254.2.1", gateway: "169.254.2.2" });
    // -g supplies the missing gateway: the host's address is used.
    expect(resolved(["-g", "198.51.100.9"], noGateway).ip4).toMatchObject(
      { localMode: false, gateway: "198.51.100.9" },
    );
  });

  test("-a, -n and -g override the host's; -a without a prefix length takes the classful one", () => {
    expect(resolved(["-a", "10.0.2.15", "-g", "10.0.2.2"]).ip4).toMatchObject({
      addr: "10.0.2.15",
      prefixLen: 8,
      gateway: "10.0.2.2",
      ours: "10.0.2.2",
      addrSeen: "10.0.2.15",
      addrFixed: true,
      mapHostLoopback: "10.0.2.2",
    });
    expect(resolved(["-a", "172.16.5.5"]).ip4).toMatchObject({ prefixLen: 16, gateway: "198.51.100.254" });
    expect(resolved(["-a", "192.168.7.7"]).ip4.prefixLen).toBe(24);
    expect(resolved(["-a", "203.0.113.7/28"]).ip4.prefixLen).toBe(28);
    expect(resolved(["-a", "10.0.2.15", "-n", "255.255.255.0"]).ip4.prefixLen).toBe(24);
    // -n is for an -a address (pasta(1)): the host's address keeps its own length; local mode takes it.
    expect(resolved(["-n", "16"]).ip4).toMatchObject({ addr: "198.51.100.1", prefixLen: 24, addrFixed: false });
    expect(resolved(["-n", "20"], NO_HOST).ip4).toMatchObject({ addr: "169.254.2.1", prefixLen: 20, localMode: true });
    expect(resolved(["-a", "2001:db8::5", "-g", "2001:db8::ff"]).ip6).toMatchObject({
      addr: "2001:db8::5",
      prefixLen: 64,
      gateway: "2001:db8::ff",
      ours: "fe80::1:1",
      addrFixed: true,
    });
    expect(resolved(["-a", "2001:db8::5/56"]).ip6.prefixLen).toBe(56);
  });

  test("-a and -g in local mode replace the link-local defaults", () => {
    const nc = resolved(["-a", "10.0.0.5", "-a", "2001:db8::5", "-g", "fe80::9"], NO_HOST, NO_RESOLV);
    expect(nc.ip4).toMatchObject({ localMode: true, addr: "10.0.0.5", prefixLen: 8, gateway: "169.254.2.2" });
    expect(nc.ip6).toMatchObject({ localMode: true, addr: "2001:db8::5", gateway: "fe80::9", ours: "fe80::9" });
    expect(resolved(["-a", "10.0.0.5", "-g", "10.0.0.1"], NO_HOST).ip4).toMatchObject(
      { localMode: true, gateway: "10.0.0.1" },
    );
    expect(resolved([], NO_HOST).noDhcpv6).toBe(true);
    expect(resolved(["-a", "2001:db8::5"], NO_HOST).noDhcpv6).toBe(false);
  });

  test("-4 and -6 disable the other version", () => {
    const v4 = resolved(["-4"]);
    expect(v4.ip6).toMatchObject({ enabled: false, addr: "", gateway: "", ours: "", dns: [], mapHostLoopback: "" });
    expect(v4).toMatchObject({ noNdp: true, noDhcpv6: true, noDhcp: false });
    const v6 = resolved(["-6"]);
    expect(v6.ip4).toMatchObject({ enabled: false, addr: "", gateway: "", dns: [], mapHostLoopback: "" });
    expect(v6).toMatchObject({ noDhcp: true, noNdp: false, noDhcpv6: false });
  });

  test("MTU and MAC addresses", () => {
    expect(resolved(["-m", "1500", "-M", "02:00:00:00:00:01"])).toMatchObject(
      { mtu: 1500, ourMac: "02:00:00:00:00:01" },
    );
    expect(resolved(["-m", "0"]).mtu).toBe(0);
    expect(resolved(["--ns-mac-addr", "02:aa:bb:cc:dd:ee"]).guestMac).toBe("02:aa:bb:cc:dd:ee");
  });

  test("every address is its own buffer: learning the guest's address leaves the assigned one alone", () => {
    const nc = resolveNetConf(config([]), HOST, RESOLV);
    nc.ip4.addrSeen.fill(7);
    nc.ip6.addrSeen.fill(7);
    expect(text(nc.ip4.addr)).toBe("198.51.100.1");
    expect(text(nc.ip6.addr)).toBe("2001:db8:1::1");
    nc.ip4.ourTapAddr.fill(7);
    expect(text(nc.ip4.gateway)).toBe("198.51.100.254");
    expect(text(nc.ip4.mapHostLoopback)).toBe("198.51.100.254");
  });
});

describe("resolveNetConf: NAT", () => {
  test("map-host-loopback: the gateway by default; none with --no-map-gw; or as given", () => {
    expect(resolved(["--no-map-gw"])).toMatchObject({ ip4: { mapHostLoopback: "" }, ip6: { mapHostLoopback: "" } });
    expect(resolved(["--map-host-loopback", "none"]).ip4.mapHostLoopback).toBe("");
    const given = resolved(["--map-host-loopback", "198.51.100.9", "--no-map-gw"]);
    expect(given).toMatchObject({ ip4: { mapHostLoopback: "198.51.100.9" }, ip6: { mapHostLoopback: "" } });
  });

  test("map-guest-addr: none by default, or as given", () => {
    expect(resolved(["--map-guest-addr", "198.51.100.8", "--map-guest-addr", "fd00::8"])).toMatchObject({
      ip4: { mapGuestAddr: "198.51.100.8" },
      ip6: { mapGuestAddr: "fd00::8" },
    });
  });
});

describe("resolveNetConf: DNS", () => {
  test("-D replaces resolv.conf's nameservers for its IP version only", () => {
    const nc = resolved(["-D", "192.0.2.53", "-D", "192.0.2.54"]);
    expect(nc.ip4).toMatchObject({ dns: ["192.0.2.53", "192.0.2.54"], dnsHost: "198.51.100.53" });
    expect(nc.ip6.dns).toEqual(["2001:db8:1::53"]);
    const many = resolved(["-D", "192.0.2.1", "-D", "192.0.2.2", "-D", "192.0.2.3", "-D", "192.0.2.4"]);
    expect(many.ip4.dns).toEqual(["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
  });

  test("-D none: no nameservers at all", () => {
    const nc = resolved(["-D", "none"]);
    expect(nc.ip4).toMatchObject({ dns: [], dnsMatch: "" });
    expect(nc.ip6).toMatchObject({ dns: [], dnsMatch: "" });
  });

  test("a loopback resolver is advertised as the map-host-loopback address, which becomes the DNS match", () => {
    const resolv = { nameservers: ["127.0.0.53", "::1", "198.51.100.53"], search: [] };
    const nc = resolved([], HOST, resolv);
    expect(nc.ip4).toMatchObject({
      dns: ["198.51.100.254", "198.51.100.53"],
      dnsMatch: "198.51.100.254",
      dnsHost: "127.0.0.53",
    });
    expect(nc.ip6).toMatchObject({ dns: ["fe80::fe"], dnsMatch: "fe80::fe", dnsHost: "::1" });
    // Two loopback resolvers map to one address, advertised once.
    const twice = resolved([], HOST, { nameservers: ["127.0.0.53", "127.0.0.1", "0.0.0.0"], search: [] });
    expect(twice.ip4.dns).toEqual(["198.51.100.254"]);
  });

  test("a resolver at the map-host-loopback address itself also becomes the DNS match", () => {
    const nc = resolved([], HOST, { nameservers: ["198.51.100.254"], search: [] });
    expect(nc.ip4).toMatchObject({ dns: ["198.51.100.254"], dnsMatch: "198.51.100.254", dnsHost: "198.51.100.254" });
  });

  test("without a host-loopback mapping a loopback resolver is skipped", () => {
    const resolv = { nameservers: ["127.0.0.53", "198.51.100.53"], search: [] };
    expect(resolved(["--no-map-gw"], HOST, resolv).ip4).toMatchObject({ dns: ["198.51.100.53"], dnsMatch: "" });
  });

  test("--dns-forward: loopback resolvers are advertised as that address, which is the DNS match", () => {
    const resolv = { nameservers: ["127.0.0.53"], search: [] };
    expect(resolved(["--dns-forward", "10.0.2.3"], HOST, resolv).ip4).toMatchObject({
      dns: ["10.0.2.3"],
      dnsMatch: "10.0.2.3",
      dnsHost: "127.0.0.53",
    });
    expect(resolved(["--dns-forward", "169.254.0.1", "--no-map-gw"], HOST, resolv).ip4).toMatchObject({
      dns: ["169.254.0.1"],
      dnsMatch: "169.254.0.1",
      mapHostLoopback: "",
    });
    // Explicit -D addresses are advertised as given; the forward address still redirects.
    expect(resolved(["--dns-forward", "10.0.2.3", "-D", "10.0.2.3"], HOST, resolv).ip4).toMatchObject({
      dns: ["10.0.2.3"],
      dnsMatch: "10.0.2.3",
    });
  });

  test("--dns-host overrides the first resolv.conf nameserver", () => {
    expect(resolved(["--dns-host", "192.0.2.1"]).ip4.dnsHost).toBe("192.0.2.1");
    expect(resolved([], HOST, NO_RESOLV).ip4.dnsHost).toBe("");
  });

  test("at most three nameservers per IP version", () => {
    const resolv = { nameservers: ["192.0.2.1", "2001:db8::1", "192.0.2.2", "192.0.2.3", "192.0.2.4"], search: [] };
    const nc = resolved([], HOST, resolv);
    expect(nc.ip4.dns).toEqual(["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    expect(nc.ip6.dns).toEqual(["2001:db8::1"]);
  });

  test("search list: -S, or resolv.conf's (at most 5); -S none for none", () => {
    const resolv = { nameservers: [], search: ["a.example", "b.example", "c", "d", "e", "f", "g"] };
    expect(resolved([], HOST, resolv).searchDomains).toEqual(["a.example", "b.example", "c", "d", "e"]);
    expect(resolved(["-S", "corp.example"], HOST, resolv).searchDomains).toEqual(["corp.example"]);
    expect(resolved(["-S", "none"], HOST, resolv).searchDomains).toEqual([]);
  });

  test("passing DNS to the guest: passt by default, pasta with --dhcp-dns/--dhcp-search", () => {
    expect(resolved(["passt", "--no-dhcp-search"])).toMatchObject({ dhcpDns: true, dhcpSearch: false });
    expect(resolved([])).toMatchObject({ dhcpDns: false, dhcpSearch: false });
    expect(resolved(["--dhcp-dns", "--dhcp-search"])).toMatchObject({ dhcpDns: true, dhcpSearch: true });
  });

  test("-H and --fqdn are passed through", () => {
    expect(resolved(["-H", "guest", "--fqdn", "guest.example"])).toMatchObject(
      { hostname: "guest", fqdn: "guest.example" },
    );
  });
});

describe("resolveNetConf: services", () => {
  test("switches given on the command line", () => {
    expect(resolved(["--no-dhcp", "--no-dhcpv6", "--no-ndp", "--no-ra"])).toMatchObject({
      noDhcp: true,
      noDhcpv6: true,
      noNdp: true,
      noRa: true,
      noIcmp: false,
    });
  });

  test("--no-icmp implies --no-ndp; pasta --config-net implies --no-ra", () => {
    expect(resolved(["--no-icmp"])).toMatchObject({ noIcmp: true, noNdp: true, noRa: false });
    expect(resolved(["--config-net"])).toMatchObject({ noRa: true, noNdp: false });
  });
});

describe("template and namespace interfaces", () => {
  test("templateInterfaces: -i for both versions", () => {
    expect(templateInterfaces(config([]))).toEqual({ ifname4: undefined, ifname6: undefined });
    expect(templateInterfaces(config(["-i", "eth1"]))).toEqual({ ifname4: "eth1", ifname6: "eth1" });
  });

  test("namespaceIfname: -I, else the template interface in use, else tap0", () => {
    const name = (args: string[], host: HostAddressing) => {
      const cfg = config(args);
      return namespaceIfname(cfg, host, resolveNetConf(cfg, host, RESOLV));
    };
    expect(name(["-I", "ns0"], HOST)).toBe("ns0");
    expect(name([], HOST)).toBe("eth0");
    expect(name([], { v6: { ...HOST.v6!, ifname: "wlan0" } })).toBe("wlan0");
    expect(name(["-6"], { v4: HOST.v4, v6: { ...HOST.v6!, ifname: "wlan0" } })).toBe("wlan0");
    expect(name([], NO_HOST)).toBe("tap0");
    expect(name([], { v4: { ...HOST.v4!, gateway: undefined } })).toBe("tap0");
  });
});

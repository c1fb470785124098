/**
 * The protocol and service switches, observed from the guest's side: a command line goes through the parser and
 * resolveNetConf (for a fixed host) into a real tap ingress with its services and flows, genuine client frames
 * (fixtures/wire-frames.ts) go in, and what comes back to the guest, and what reaches real peers on the host's
 * loopback, is compared with and without each option. Everything runs in a private network namespace of the test
 * thread, so the host's side of the flows is that namespace's loopback.
 *
 * The fixed host has the address and gateway the captured frames use: the guest is 192.0.2.20 and
 * fe80::5eff:fe00:a, the gateway 192.0.2.1 and 2001:db8:5::1, which mean the host's loopback.
 */
import { describe, expect, test } from "bun:test";
import { parseCommandLine } from "../src/cli/config.ts";
import { flows, flowTableInit } from "../src/flows/epoll.ts";
import { EventLoop } from "../src/loop.ts";
import { resolveNetConf, type HostAddressing } from "../src/netconf.ts";
import type { ResolvConf } from "../src/resolv.ts";
import { AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM } from "../src/syscalls/constants.ts";
import { Errno } from "../src/syscalls/errno.ts";
import { close } from "../src/syscalls/io.ts";
import { Mem } from "../src/syscalls/mem.ts";
import { accept4, bind, listen, socket } from "../src/syscalls/socket.ts";
import { L2Ingress } from "../src/tap/ingress.ts";
import { rd16 } from "../src/wire/bytes.ts";
import { DHCP_OPT, DHCP_OPTIONS, dhcpFqdnDecode, dhcpOptionsParse } from "../src/wire/dhcp.ts";
import { DHCP6_OPT, dhcp6Options } from "../src/wire/dhcpv6.ts";
import { dnsNamesDecode } from "../src/wire/dnsname.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, formatMac } from "../src/wire/ethernet.ts";
import { NDP_RA, ndpMtuDecode, ndpOptionsParse, ndpRdnssDecode } from "../src/wire/icmpv6.ts";
import { formatIPv4, inanyToText } from "../src/wire/inany.ts";
import {
  ARP_REQUEST, DHCP6_SOLICIT, DHCP_DISCOVER, ICMP6_ECHO_REQUEST, ICMP_ECHO_REQUEST, NEIGHBOR_SOLICITATION,
  ROUTER_SOLICITATION, TCP4_SYN, TCP6_SYN, UDP4_DATAGRAM,
} from "./fixtures/wire-frames.ts";
import { inPrivateNetns } from "./helpers/private-netns.ts";
import { RecordingLink } from "./helpers/services.ts";
import { UdpPeer } from "./helpers/udp-peer.ts";

const HOST: HostAddressing = {
  v4: { ifname: "eth0", ifindex: 2, address: "192.0.2.20", prefixLen: 24, gateway: "192.0.2.1" },
  v6: { ifname: "eth0", ifindex: 2, address: "2001:db8:5::20", prefixLen: 64, gateway: "2001:db8:5::1", linkLocal: "fe80::1" },
};
const RESOLV: ResolvConf = { nameservers: ["192.0.2.53", "2001:db8:5::53"], search: ["example.org"] };
/** The ports the captured TCP SYNs and UDP datagram go to. */
const TCP4_PORT = 8080;
const TCP6_PORT = 8081;
const UDP4_PORT = 5353;

/** What one frame to the guest is: arp, dhcp, dhcpv6, tcp, udp, icmp-TYPE or icmp6-TYPE. */
function kind(f: Uint8Array): string {
  const type = rd16(f, 12);
  if (type === ETHERTYPE_ARP) return "arp";
  const v6 = type === ETHERTYPE_IPV6;
  if (!v6 && type !== ETHERTYPE_IPV4) return `ethertype-${type}`;
  const proto = v6 ? f[20] : f[23];
  const l4 = v6 ? 54 : 14 + (f[14] & 15) * 4;
  if (proto === 6) return "tcp";
  if (proto === 17) return rd16(f, l4) === (v6 ? 547 : 67) ? (v6 ? "dhcpv6" : "dhcp") : "udp";
  return `${v6 ? "icmp6" : "icmp"}-${f[l4]}`;
}

/** What the guest got back for some frames, and what the peers on the host's loopback saw. */
interface Observed {
  /** The kinds of frames to the guest, sorted. */
  replies: string[];
  frames: Uint8Array[];
  /** The ingress's drop counters that are not zero. */
  drops: Record<string, number>;
  /** Connections waiting on the TCP listeners (127.0.0.1:8080, [::1]:8081), datagrams at 127.0.0.1:5353. */
  tcpConnections: number;
  udpDatagrams: number;
  /** Flows open when the frames were handled. */
  flows: number;
}

/**
 * Runs `orzo ARGS` up to its NetConf, feeds the frames to a tap ingress over it and runs the loop until the
 * replies stop coming (bounded), with listeners for the captured TCP and UDP frames on the host's loopback.
 */
function observe(args: string[], frames: Uint8Array[]): Observed {
  return inPrivateNetns(() => {
    const invocation = parseCommandLine("orzo", args, { SHELL: "/bin/sh" });
    if (invocation.action !== "run") throw new Error(`expected a run, got ${invocation.action}`);
    const nc = resolveNetConf(invocation.config, HOST, RESOLV);
    const loop = new EventLoop({ timeoutMs: 10 });
    flowTableInit(256, loop.id);
    const link = new RecordingLink(1 << 20, 256);
    const ingress = new L2Ingress(nc);
    ingress.attach(loop, link, false);
    const tcp4 = tcpListener(AF_INET, "127.0.0.1", TCP4_PORT);
    const tcp6 = tcpListener(AF_INET6, "::1", TCP6_PORT);
    const udp4 = new UdpPeer("127.0.0.1", UDP4_PORT);
    try {
      for (const frame of frames) {
        const mem = new Mem(frame.length);
        mem.bytes.set(frame);
        ingress.frame(mem.bytes, mem.addr, 0, frame.length, performance.now());
        ingress.flushInput();
      }
      const got: Uint8Array[] = [];
      // Replies that involve the host (echo, a connect) take a few loop cycles; 300 ms without one ends the wait.
      let quietSince = performance.now();
      const deadline = quietSince + 3000;
      while (performance.now() - quietSince < 300 && performance.now() < deadline) {
        loop.runOnce(10);
        const more = link.take();
        if (more.length > 0) quietSince = performance.now();
        got.push(...more);
      }
      let udpDatagrams = 0;
      while (udp4.tryRecv() !== null) udpDatagrams++;
      const drops = Object.fromEntries(Object.entries(ingress.drops).filter(([, n]) => n > 0));
      return {
        replies: got.map(kind).sort(), frames: got, drops, udpDatagrams, flows: flows().count,
        tcpConnections: [tcp4, tcp6].filter((l) => acceptOne(l)).length,
      };
    } finally {
      flows().forEachActive((f) => flows().markFree(f));
      flows().defer(performance.now(), false);
      loop.close();
      close(tcp4);
      close(tcp6);
      udp4.close();
    }
  });
}

function tcpListener(family: number, address: string, port: number): number {
  const fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  bind(fd, family === AF_INET ? { family: "ipv4", address, port } : { family: "ipv6", address, port });
  listen(fd, 4);
  return fd;
}

/** True when a connection was waiting on the listener (it is closed again). */
function acceptOne(fd: number): boolean {
  const c = accept4(fd, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c === -Errno.EAGAIN) return false;
  if (c < 0) throw new Error(`accept failed: errno ${-c}`);
  close(c);
  return true;
}

/** The options of the first DHCP reply, RA and DHCPv6 reply among frames (DHCP by code, NDP as found, DHCPv6 in order). */
function repliesOf(frames: Uint8Array[]) {
  const dhcp = frames.find((f) => kind(f) === "dhcp");
  const ra = frames.find((f) => kind(f) === `icmp6-${NDP_RA}`);
  const dhcpv6 = frames.find((f) => kind(f) === "dhcpv6");
  return {
    dhcp: dhcp ? dhcpOptionsParse(dhcp, 14 + 20 + 8 + DHCP_OPTIONS, dhcp.length)! : null,
    ra: ra ? { frame: ra, options: ndpOptionsParse(ra, 54 + 16, ra.length)! } : null,
    dhcpv6: dhcpv6 ? { frame: dhcpv6, options: dhcp6Options(dhcpv6, 62 + 4, dhcpv6.length)! } : null,
  };
}

/** The option codes of those replies. */
function optionsOf(frames: Uint8Array[]) {
  const r = repliesOf(frames);
  return {
    dhcp: r.dhcp ? [...r.dhcp.keys()] : null,
    ra: r.ra ? r.ra.options.map((o) => o.type) : null,
    dhcpv6: r.dhcpv6 ? r.dhcpv6.options.map((o) => o.code) : null,
  };
}

const TCP_SYNS = [TCP4_SYN, TCP6_SYN];
const ECHOS = [ICMP_ECHO_REQUEST, ICMP6_ECHO_REQUEST];
const SERVICES = [ARP_REQUEST, DHCP_DISCOVER, ROUTER_SOLICITATION, NEIGHBOR_SOLICITATION, DHCP6_SOLICIT];

describe("protocol switches, from the guest's side", () => {
  test("--no-tcp: the guest's SYNs get no SYN-ACK and no connection reaches a listener; without it they do", () => {
    const on = observe([], TCP_SYNS);
    expect(on).toMatchObject({ replies: ["tcp", "tcp"], tcpConnections: 2, drops: {} });
    const off = observe(["--no-tcp", "-t", "none", "-T", "none"], TCP_SYNS);
    expect(off).toMatchObject({ replies: [], tcpConnections: 0, flows: 0, drops: { tcpOff: 2 } });
  });

  test("--no-udp: the guest's datagram reaches no socket; DHCP is still served", () => {
    expect(observe([], [UDP4_DATAGRAM])).toMatchObject({ udpDatagrams: 1, flows: 1, drops: {} });
    const off = observe(["--no-udp", "-u", "none", "-U", "none"], [UDP4_DATAGRAM, DHCP_DISCOVER]);
    expect(off).toMatchObject({ replies: ["dhcp"], udpDatagrams: 0, flows: 0, drops: { udpOff: 1 } });
  });

  test("--no-icmp: no echo replies, and (as it implies --no-ndp) no neighbor or router advertisements", () => {
    expect(observe([], [...ECHOS, NEIGHBOR_SOLICITATION]).replies).toEqual(["icmp-0", "icmp6-129", "icmp6-136"]);
    const off = observe(["--no-icmp"], [...ECHOS, NEIGHBOR_SOLICITATION, ROUTER_SOLICITATION]);
    expect(off).toMatchObject({ replies: [], flows: 0, drops: { icmpOff: 2 } });
  });

  test("each service switch silences its service only", () => {
    const all = ["arp", "dhcp", "icmp6-134", "icmp6-136", "dhcpv6"].sort();
    expect(observe([], SERVICES).replies).toEqual(all);
    const without = (...gone: string[]) => all.filter((k) => !gone.includes(k));
    expect(observe(["--no-dhcp"], SERVICES).replies).toEqual(without("dhcp"));
    expect(observe(["--no-dhcpv6"], SERVICES).replies).toEqual(without("dhcpv6"));
    expect(observe(["--no-ra"], SERVICES).replies).toEqual(without("icmp6-134"));
    expect(observe(["--no-ndp"], SERVICES).replies).toEqual(without("icmp6-134", "icmp6-136"));
  });

  test("passt --no-dhcp-dns and --no-dhcp-search take nameservers and search list out of DHCP, RAs and DHCPv6", () => {
    const dns = { dhcp: DHCP_OPT.DNS, ra: 25, dhcpv6: DHCP6_OPT.DNS_SERVERS };
    const search = { dhcp: DHCP_OPT.SEARCH, ra: 31, dhcpv6: DHCP6_OPT.DOMAIN_LIST };
    const has = (o: ReturnType<typeof optionsOf>, codes: { dhcp: number; ra: number; dhcpv6: number }) => [o.dhcp!.includes(codes.dhcp), o.ra!.includes(codes.ra), o.dhcpv6!.includes(codes.dhcpv6)];
    const passt = optionsOf(observe(["passt"], SERVICES).frames);
    expect([has(passt, dns), has(passt, search)]).toEqual([[true, true, true], [true, true, true]]);
    const noDns = optionsOf(observe(["passt", "--no-dhcp-dns"], SERVICES).frames);
    // RFC 8106: a search list in an RA goes with nameservers, so without them the RA has neither.
    expect([has(noDns, dns), has(noDns, search)]).toEqual([[false, false, false], [true, false, true]]);
    const noSearch = optionsOf(observe(["passt", "--no-dhcp-search"], SERVICES).frames);
    expect([has(noSearch, dns), has(noSearch, search)]).toEqual([[true, true, true], [false, false, false]]);
    // pasta passes neither unless asked: --dhcp-dns, --dhcp-search.
    const pasta = optionsOf(observe([], SERVICES).frames);
    expect([has(pasta, dns), has(pasta, search)]).toEqual([[false, false, false], [false, false, false]]);
    const asked = optionsOf(observe(["--dhcp-dns", "--dhcp-search"], SERVICES).frames);
    expect([has(asked, dns), has(asked, search)]).toEqual([[true, true, true], [true, true, true]]);
  });

  test("-M, -m, -H, --fqdn, -D and -S as the guest's ARP, DHCP, RA and DHCPv6 replies carry them", () => {
    const o = observe([
      "-M", "02:11:22:33:44:55", "-m", "1400", "-H", "guest7", "--fqdn", "guest7.example.net", "-D", "192.0.2.99",
      "-D", "2001:db8:5::99", "-S", "a.example b.example", "--dhcp-dns", "--dhcp-search",
    ], SERVICES);
    const arp = o.frames.find((f) => kind(f) === "arp")!;
    expect([formatMac(arp, 6), formatMac(arp, 22)]).toEqual(["02:11:22:33:44:55", "02:11:22:33:44:55"]);
    const { dhcp, ra, dhcpv6 } = repliesOf(o.frames);
    const opt = (code: number) => dhcp!.get(code)!;
    expect({
      mtu: rd16(opt(DHCP_OPT.MTU), 0), dns: formatIPv4(opt(DHCP_OPT.DNS), 0), host: new TextDecoder().decode(opt(DHCP_OPT.HOSTNAME)),
      fqdn: dhcpFqdnDecode(opt(DHCP_OPT.CLIENT_FQDN))!.name, search: dnsNamesDecode(opt(DHCP_OPT.SEARCH), 0, opt(DHCP_OPT.SEARCH).length, true),
    }).toEqual({ mtu: 1400, dns: "192.0.2.99", host: "guest7", fqdn: "guest7.example.net", search: ["a.example", "b.example"] });
    const raOpt = (type: number) => ra!.options.find((x) => x.type === type)!;
    expect([ndpMtuDecode(ra!.frame, raOpt(5).off), ndpRdnssDecode(ra!.frame, raOpt(25).off, raOpt(25).len).servers.map((a) => inanyToText(a, 0))])
      .toEqual([1400, ["2001:db8:5::99"]]);
    const dns6 = dhcpv6!.options.find((x) => x.code === DHCP6_OPT.DNS_SERVERS)!;
    expect(inanyToText(dhcpv6!.frame.subarray(dns6.off, dns6.off + 16), 0)).toBe("2001:db8:5::99");
  });

  test("--no-map-gw: the gateway no longer means the host's loopback", () => {
    expect(observe([], [UDP4_DATAGRAM, TCP4_SYN])).toMatchObject({ udpDatagrams: 1, tcpConnections: 1 });
    // Sent to 192.0.2.1 itself instead, which this host cannot reach: nothing arrives, nothing is answered.
    expect(observe(["--no-map-gw"], [UDP4_DATAGRAM, TCP4_SYN])).toMatchObject({ udpDatagrams: 0, tcpConnections: 0 });
  });

  test("-4 and -6: the other IP version is gone, services and flows alike; the last of the two wins", () => {
    const everything = [...SERVICES, ...ECHOS, ...TCP_SYNS, UDP4_DATAGRAM];
    const v4 = observe(["-4"], everything);
    expect(v4).toMatchObject({ replies: ["arp", "dhcp", "icmp-0", "tcp"], udpDatagrams: 1, tcpConnections: 1, drops: { ipv6Off: 5 } });
    const v6 = observe(["-6"], everything);
    expect(v6).toMatchObject({ replies: ["dhcpv6", "icmp6-129", "icmp6-134", "icmp6-136", "tcp"], udpDatagrams: 0, tcpConnections: 1, drops: { ipv4Off: 5 } });
    expect(observe(["-4", "-6"], everything).replies).toEqual(v6.replies);
    expect(observe(["-6", "-4"], everything).replies).toEqual(v4.replies);
  });
});

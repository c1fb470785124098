import { describe, expect, test } from "bun:test";
import type { NetConf } from "../src/netconf.ts";
import { rd16, rd32 } from "../src/wire/bytes.ts";
import { ARP_REPLY, ARP_REQUEST, arpParse } from "../src/wire/arp.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV6, ethEmit, ethParse, formatMac } from "../src/wire/ethernet.ts";
import {
  NA_FLAGS, NA_OVERRIDE, NA_ROUTER, NA_SOLICITED, ND_TARGET, NDP_NA, NDP_NS, NDP_OPT_DNSSL, NDP_OPT_LLADDR, NDP_OPT_MTU,
  NDP_OPT_PREFIX, NDP_OPT_RDNSS, NDP_OPT_SRC_LLADDR, NDP_OPT_TGT_LLADDR, NDP_RA, PREFIX_AUTONOMOUS, PREFIX_ONLINK,
  RA_CUR_HOPS, RA_FLAGS, RA_LIFETIME, RA_MANAGED, RA_REACHABLE, RA_RETRANS, icmp6SetChecksum, ndpDnsslDecode,
  ndpMtuDecode, ndpOptionsParse, ndpParse, ndpPrefixDecode, ndpRdnssDecode, ndpRsEmit,
} from "../src/wire/icmpv6.ts";
import { formatIPv4, formatIPv6 } from "../src/wire/inany.ts";
import { IPPROTO_ICMPV6 } from "../src/wire/ip.ts";
import { IP6_HOPS, ipv6Emit } from "../src/wire/ipv6.ts";
import * as F from "./fixtures/wire-frames.ts";
import {
  ARP_PROBE, CLIENT_MAC, NEIGHBOR_SOLICITATION_UNICAST, deliver, expectStatsBalanced, ip, parseIp6, setup,
} from "./helpers/services.ts";

/** An ARP reply or request orzo sent, decoded. */
function decodeArp(frame: Uint8Array) {
  expect(frame.length).toBe(60);
  expect(ethParse(frame, 0, frame.length)).toBe(ETHERTYPE_ARP);
  expect(frame.subarray(42).every((b) => b === 0)).toBe(true);
  return {
    op: arpParse(frame, 14, 46), dstMac: formatMac(frame, 0), srcMac: formatMac(frame, 6),
    sha: formatMac(frame, 22), spa: formatIPv4(frame, 28), tha: formatMac(frame, 32), tpa: formatIPv4(frame, 38),
  };
}

/** An ARP request from the client at 192.0.2.20 for the given sender and target addresses. */
function arpRequest(sender: string, target: string, op = ARP_REQUEST): Uint8Array {
  const f = F.ARP_REQUEST.slice();
  f.set(ip(sender).subarray(12), 28);
  f.set(ip(target).subarray(12), 38);
  f[21] = op;
  return f;
}

/** The frames sent for one delivered frame. */
function answers(frame: Uint8Array, tweak?: (nc: NetConf) => void) {
  const { link, svc } = setup(tweak);
  const ndp = deliver(svc, frame, 1);
  expectStatsBalanced(svc.stats);
  return { sent: link.take(), stats: svc.stats, ndp };
}

/** An NDP message's options by type, after checking the message is valid NDP. */
function ndpOptions(frame: Uint8Array, off: number, len: number) {
  const optOff = ndpParse(frame, off, len);
  expect(optOff).toBeGreaterThan(off);
  const list = ndpOptionsParse(frame, optOff, off + len)!;
  return { types: list.map((o) => o.type), get: (t: number) => list.find((o) => o.type === t) };
}

/** A router solicitation from src (no options): what a host without an address yet sends from ::. */
function routerSolicitation(src: string, hops = 255): Uint8Array {
  const f = new Uint8Array(14 + 40 + 8);
  ethEmit(f, 0, Uint8Array.of(0x33, 0x33, 0, 0, 0, 2), 0, CLIENT_MAC, 0, ETHERTYPE_IPV6);
  ipv6Emit(f, 14, ip(src), 0, ip("ff02::2"), 0, IPPROTO_ICMPV6, 8, 0, hops);
  ndpRsEmit(f, 54);
  icmp6SetChecksum(f, 14, 54, 8);
  return f;
}

/** Checks a router advertisement orzo sent: header, prefix, MTU, RDNSS, DNSSL, source link-layer address. */
function expectRa(frame: Uint8Array, dstMac: string, dst: string): ReturnType<typeof ndpOptions> {
  const s = parseIp6(frame, IPPROTO_ICMPV6);
  expect([s.srcMac, s.dstMac, s.src, s.dst]).toEqual(["9a:55:9a:55:9a:55", dstMac, "fe80::fe", dst]);
  const m = s.off;
  expect([frame[m], frame[m + 1], frame[m + RA_CUR_HOPS], frame[m + RA_FLAGS]]).toEqual([NDP_RA, 0, 255, RA_MANAGED]);
  expect([rd16(frame, m + RA_LIFETIME), rd32(frame, m + RA_REACHABLE), rd32(frame, m + RA_RETRANS)]).toEqual([65535, 0, 0]);
  const o = ndpOptions(frame, m, s.len);
  const lladdr = o.get(NDP_OPT_SRC_LLADDR)!;
  expect(formatMac(frame, lladdr.off + NDP_OPT_LLADDR)).toBe("9a:55:9a:55:9a:55");
  return o;
}

describe("ARP proxy", () => {
  test("a request for any other address is answered with our MAC, to the requester", () => {
    const { sent, stats } = answers(F.ARP_REQUEST);
    expect(sent.length).toBe(1);
    expect(decodeArp(sent[0])).toEqual({
      op: ARP_REPLY, dstMac: "02:00:5e:00:00:0a", srcMac: "9a:55:9a:55:9a:55",
      sha: "9a:55:9a:55:9a:55", spa: "192.0.2.1", tha: "02:00:5e:00:00:0a", tpa: "192.0.2.20",
    });
    expect([stats["arp.requests"], stats["arp.replies"]]).toEqual([1, 1]);
    expect(decodeArp(answers(arpRequest("198.51.100.1", "198.51.100.254")).sent[0]).spa).toBe("198.51.100.254");
  });

  test("a probe from 0.0.0.0 for another address is answered (the address is in use)", () => {
    const { sent } = answers(ARP_PROBE);
    expect(decodeArp(sent[0])).toMatchObject({ op: ARP_REPLY, spa: "192.0.2.77", tha: "02:00:5e:00:00:0a", tpa: "0.0.0.0" });
  });

  test("requests for the guest's own address, announcements and replies get no answer", () => {
    const seen = (nc: NetConf) => nc.ip4.addrSeen.set(ip("198.51.100.7"));
    for (const [frame, tweak] of [
      [arpRequest("0.0.0.0", "198.51.100.1"), undefined],
      [arpRequest("198.51.100.1", "198.51.100.1"), undefined],
      [arpRequest("192.0.2.20", "198.51.100.1"), undefined],
      [arpRequest("0.0.0.0", "198.51.100.7"), seen],
      [arpRequest("192.0.2.20", "192.0.2.20"), undefined],
      [F.ARP_REPLY, undefined],
    ] as const) {
      const { sent, stats } = answers(frame, tweak);
      expect(sent).toEqual([]);
      expect(stats["arp.ignored"]).toBe(1);
    }
  });

  test("malformed packets and a disabled IPv4 are counted", () => {
    const bad = [F.ARP_REQUEST.slice(0, 41), arpRequest("192.0.2.20", "192.0.2.1", 3)];
    const hlen = F.ARP_REQUEST.slice();
    hlen[18] = 8;
    bad.push(hlen);
    for (const frame of bad) expect(answers(frame).stats["arp.malformed"]).toBe(1);
    const off = answers(F.ARP_REQUEST, (nc) => void (nc.ip4.enabled = false));
    expect([off.sent.length, off.stats["arp.disabled"]]).toEqual([0, 1]);
  });
});

describe("NDP", () => {
  test("NS for an address of another host gets an NA with R, S and O from us, to the solicitor's MAC", () => {
    const { sent, stats, ndp } = answers(F.NEIGHBOR_SOLICITATION);
    expect(ndp).toBe(true);
    expect(sent.length).toBe(1);
    const s = parseIp6(sent[0], IPPROTO_ICMPV6);
    expect([s.srcMac, s.dstMac, s.src, s.dst]).toEqual(["9a:55:9a:55:9a:55", "02:00:5e:00:00:0a", "fe80::fe", "fe80::5eff:fe00:a"]);
    expect([sent[0][s.off], sent[0][s.off + 1], sent[0][s.off + NA_FLAGS]]).toEqual([NDP_NA, 0, NA_ROUTER | NA_SOLICITED | NA_OVERRIDE]);
    expect(formatIPv6(sent[0], s.off + ND_TARGET)).toBe("2001:db8:5::1");
    const o = ndpOptions(sent[0], s.off, s.len);
    expect(o.types).toEqual([NDP_OPT_TGT_LLADDR]);
    expect(formatMac(sent[0], o.get(NDP_OPT_TGT_LLADDR)!.off + NDP_OPT_LLADDR)).toBe("9a:55:9a:55:9a:55");
    expect(stats["ndp.replies"]).toBe(1);
  });

  test("a unicast reachability NS is answered too; without a link-layer option, to the guest's MAC", () => {
    const { sent } = answers(NEIGHBOR_SOLICITATION_UNICAST);
    expect(formatIPv6(sent[0], 54 + ND_TARGET)).toBe("fe80::5eff:fe00:b");
    const bare = F.NEIGHBOR_SOLICITATION.slice(0, 14 + 40 + 24);
    bare[19] = 24;
    icmp6SetChecksum(bare, 14, 54, 24);
    const r = answers(bare, (nc) => nc.guestMac.set([2, 0, 0, 0, 0, 0x77]));
    expect(parseIp6(r.sent[0], IPPROTO_ICMPV6).dstMac).toBe("02:00:00:00:00:77");
  });

  test("duplicate address detection probes (from ::) get no answer", () => {
    const { sent, stats, ndp } = answers(F.NEIGHBOR_SOLICITATION_DAD);
    expect([ndp, sent.length, stats["ndp.ignored"]]).toEqual([true, 0, 1]);
  });

  test("RS gets a unicast RA: Managed, /64 prefix of the guest's address, MTU, RDNSS, DNSSL, our MAC", () => {
    const { sent, ndp } = answers(F.ROUTER_SOLICITATION);
    expect([ndp, sent.length]).toEqual([true, 1]);
    const o = expectRa(sent[0], "02:00:5e:00:00:0a", "fe80::5eff:fe00:a");
    expect(o.types).toEqual([NDP_OPT_PREFIX, NDP_OPT_MTU, NDP_OPT_RDNSS, NDP_OPT_DNSSL, NDP_OPT_SRC_LLADDR]);
    const prefix = ndpPrefixDecode(sent[0], o.get(NDP_OPT_PREFIX)!.off);
    expect({ ...prefix, prefix: formatIPv6(prefix.prefix, 0) }).toEqual({
      prefixLen: 64, flags: PREFIX_ONLINK | PREFIX_AUTONOMOUS, valid: 0xffffffff, preferred: 0xffffffff, prefix: "2001:db8:1::",
    });
    expect(ndpMtuDecode(sent[0], o.get(NDP_OPT_MTU)!.off)).toBe(65520);
    const rdnss = o.get(NDP_OPT_RDNSS)!;
    const servers = ndpRdnssDecode(sent[0], rdnss.off, rdnss.len);
    expect([servers.lifetime, servers.servers.map((a) => formatIPv6(a, 0))]).toEqual([0xffffffff, ["2001:db8:1::fe"]]);
    const dnssl = o.get(NDP_OPT_DNSSL)!;
    expect(ndpDnsslDecode(sent[0], dnssl.off, dnssl.len)).toEqual({ lifetime: 0xffffffff, names: ["orzo.test"] });
  });

  test("RS from :: gets the RA on all nodes; the options follow the configuration", () => {
    expectRa(answers(routerSolicitation("::")).sent[0], "33:33:00:00:00:01", "ff02::1");
    const bare = (nc: NetConf) => {
      nc.mtu = 0;
      nc.dhcpDns = false;
    };
    expect(expectRa(answers(F.ROUTER_SOLICITATION, bare).sent[0], "02:00:5e:00:00:0a", "fe80::5eff:fe00:a").types).toEqual([
      NDP_OPT_PREFIX, NDP_OPT_SRC_LLADDR,
    ]);
    const noSearch = (nc: NetConf) => void (nc.dhcpSearch = false);
    expect(expectRa(answers(F.ROUTER_SOLICITATION, noSearch).sent[0], "02:00:5e:00:00:0a", "fe80::5eff:fe00:a").types).toEqual([
      NDP_OPT_PREFIX, NDP_OPT_MTU, NDP_OPT_RDNSS, NDP_OPT_SRC_LLADDR,
    ]);
    // No servers: no RDNSS, and so no DNSSL either. No address yet (local mode): no prefix.
    const none = (nc: NetConf) => {
      nc.ip6.dns.length = 0;
      nc.ip6.addr.fill(0);
    };
    expect(expectRa(answers(F.ROUTER_SOLICITATION, none).sent[0], "02:00:5e:00:00:0a", "fe80::5eff:fe00:a").types).toEqual([
      NDP_OPT_MTU, NDP_OPT_SRC_LLADDR,
    ]);
    const many = (nc: NetConf) => void nc.ip6.dns.push(ip("2001:db8::1"), ip("2001:db8::2"), ip("2001:db8::3"));
    const r = answers(F.ROUTER_SOLICITATION, many).sent[0];
    const rdnss = expectRa(r, "02:00:5e:00:00:0a", "fe80::5eff:fe00:a").get(NDP_OPT_RDNSS)!;
    expect(ndpRdnssDecode(r, rdnss.off, rdnss.len).servers.length).toBe(3);
  });

  test("--no-ra swallows RS but still answers NS; --no-ndp and a disabled IPv6 swallow everything", () => {
    const noRa = (nc: NetConf) => void (nc.noRa = true);
    expect(answers(F.ROUTER_SOLICITATION, noRa)).toMatchObject({ sent: [], ndp: true });
    expect(answers(F.NEIGHBOR_SOLICITATION, noRa).sent.length).toBe(1);
    for (const tweak of [(nc: NetConf) => void (nc.noNdp = true), (nc: NetConf) => void (nc.ip6.enabled = false)]) {
      for (const frame of [F.ROUTER_SOLICITATION, F.NEIGHBOR_SOLICITATION]) {
        const r = answers(frame, tweak);
        expect([r.ndp, r.sent.length, r.stats["ndp.disabled"]]).toEqual([true, 0, 1]);
      }
    }
  });

  test("advertisements from the guest are swallowed; other ICMPv6 is not NDP", () => {
    for (const frame of [F.ROUTER_ADVERTISEMENT, F.NEIGHBOR_ADVERTISEMENT]) {
      expect(answers(frame)).toMatchObject({ sent: [], ndp: true, stats: { "ndp.ignored": 1 } });
    }
    const echo = answers(F.ICMP6_ECHO_REQUEST);
    expect([echo.ndp, echo.sent.length, echo.stats["ndp.requests"]]).toEqual([false, 0, 0]);
  });

  test("invalid NDP (hop limit below 255, bad code or option, multicast target or source) is counted", () => {
    const lowHops = F.NEIGHBOR_SOLICITATION.slice();
    lowHops[14 + IP6_HOPS] = 64;
    const code = F.NEIGHBOR_SOLICITATION.slice();
    code[55] = 1;
    const zeroOption = F.NEIGHBOR_SOLICITATION.slice();
    zeroOption[54 + 24 + 1] = 0;
    const mcastTarget = F.NEIGHBOR_SOLICITATION.slice();
    mcastTarget[54 + ND_TARGET] = 0xff;
    const mcastSource = F.NEIGHBOR_SOLICITATION.slice();
    mcastSource[22] = 0xff;
    for (const frame of [lowHops, code, zeroOption, mcastTarget, mcastSource, routerSolicitation("fe80::1", 1)]) {
      expect(answers(frame)).toMatchObject({ sent: [], ndp: true, stats: { "ndp.malformed": 1 } });
    }
    const { link, svc } = setup();
    const f = F.NEIGHBOR_SOLICITATION;
    expect(svc.ndp(f, 14, 54, f.length, 0)).toBe(false);
    expect(svc.ndp(f, 20, 54, f.length - 54, 0)).toBe(true);
    expect(svc.ndp(f, 14, 54, 0, 0)).toBe(false);
    expect(link.take()).toEqual([]);
  });
});

describe("announcements and the router advertisement timer", () => {
  test("announce: broadcast ARP request for the guest's address, NS for its IPv6 address", () => {
    const { link, svc } = setup();
    svc.announce(0);
    const [arp, ns] = link.take();
    expect(decodeArp(arp)).toEqual({
      op: ARP_REQUEST, dstMac: "ff:ff:ff:ff:ff:ff", srcMac: "9a:55:9a:55:9a:55",
      sha: "9a:55:9a:55:9a:55", spa: "198.51.100.254", tha: "00:00:00:00:00:00", tpa: "198.51.100.1",
    });
    const s = parseIp6(ns, IPPROTO_ICMPV6);
    expect([s.srcMac, s.dstMac, s.src, s.dst]).toEqual(["9a:55:9a:55:9a:55", "02:00:5e:00:00:0a", "fe80::fe", "2001:db8:1::1"]);
    expect([ns[s.off], formatIPv6(ns, s.off + ND_TARGET)]).toEqual([NDP_NS, "2001:db8:1::1"]);
    const o = ndpOptions(ns, s.off, s.len);
    expect(formatMac(ns, o.get(NDP_OPT_SRC_LLADDR)!.off + NDP_OPT_LLADDR)).toBe("9a:55:9a:55:9a:55");
    expect([svc.stats["announce.arp"], svc.stats["announce.ns"]]).toEqual([1, 1]);
  });

  test("announce follows the enabled families and --no-ndp", () => {
    const count = (tweak: (nc: NetConf) => void) => {
      const { link, svc } = setup(tweak);
      svc.announce(0);
      return link.take().map((f) => ethParse(f, 0, f.length));
    };
    expect(count((nc) => void (nc.ip4.enabled = false))).toEqual([ETHERTYPE_IPV6]);
    expect(count((nc) => void (nc.ip6.enabled = false))).toEqual([ETHERTYPE_ARP]);
    expect(count((nc) => void (nc.noNdp = true))).toEqual([ETHERTYPE_ARP]);
    expect(count((nc) => nc.ip6.addr.fill(0))).toEqual([ETHERTYPE_ARP]);
  });

  test("unsolicited RAs: none before the tap is ready or at the first tick, then every 200-600 s", () => {
    const { link, svc } = setup();
    svc.timer(0);
    svc.timer(10_000_000);
    expect(link.take()).toEqual([]);
    svc.announce(10_000_000);
    link.take();
    const start = 10_000_000;
    svc.timer(start);
    const times: number[] = [];
    for (let t = start + 1000; t <= start + 20_000_000; t += 1000) {
      svc.timer(t);
      for (const f of link.take()) {
        expectRa(f, "33:33:00:00:00:01", "ff02::1");
        times.push(t);
      }
    }
    expect(times.length).toBeGreaterThan(20_000 / 600);
    expect(times.length).toBeLessThan(20_000 / 200 + 1);
    let last = start;
    for (const t of times) {
      expect(t - last).toBeGreaterThanOrEqual(200_000);
      expect(t - last).toBeLessThanOrEqual(601_000);
      last = t;
    }
    expect(svc.stats["announce.ra"]).toBe(times.length);
  });

  test("NDP from the guest also shows the tap is up (pasta without --config-net announces nothing)", () => {
    const { link, svc } = setup();
    deliver(svc, F.ROUTER_SOLICITATION);
    link.take();
    // Within the longest interval at least one RA goes out; two when the random intervals both came out short.
    for (let t = 0; t <= 601_000; t += 1000) svc.timer(t);
    const ras = link.take().length;
    expect(ras).toBeGreaterThanOrEqual(1);
    expect(ras).toBeLessThanOrEqual(2);
  });

  test("no unsolicited RAs with --no-ra, --no-ndp, without IPv6 or without a guest", () => {
    const tweaks = [
      (nc: NetConf) => void (nc.noRa = true), (nc: NetConf) => void (nc.noNdp = true),
      (nc: NetConf) => void (nc.ip6.enabled = false), undefined,
    ];
    for (const tweak of tweaks) {
      const { link, svc } = setup(tweak);
      link.up = tweak !== undefined;
      svc.announce(0);
      link.take();
      for (let t = 0; t <= 2_000_000; t += 1000) svc.timer(t);
      expect(link.take()).toEqual([]);
    }
  });
});

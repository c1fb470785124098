import { describe, expect, test } from "bun:test";
import { ETHERTYPE_IPV6, ethEmit, formatMac, parseMac } from "../src/wire/ethernet.ts";
import {
  NA_FLAGS, NA_OVERRIDE, NA_ROUTER, NA_SOLICITED, ND_TARGET, NDP_NA, NDP_NS, NDP_OPT_DNSSL, NDP_OPT_LLADDR,
  NDP_OPT_MTU, NDP_OPT_PREFIX, NDP_OPT_RDNSS, NDP_OPT_SRC_LLADDR, NDP_OPT_TGT_LLADDR, NDP_RA, NDP_RS, PREFIX_AUTONOMOUS,
  PREFIX_ONLINK, RA_FLAGS, RA_LIFETIME, RA_MANAGED, RA_OTHER, icmp6ChecksumOk, icmp6Parse, icmp6SetChecksum,
  ndpDnsslDecode, ndpMtuDecode, ndpNsNaEmit, ndpOptDnsslEmit, ndpOptLinkAddrEmit, ndpOptMtuEmit, ndpOptPrefixEmit,
  ndpOptRdnssEmit, ndpOptionFind, ndpOptionsParse, ndpParse, ndpPrefixDecode, ndpRaEmit, ndpRdnssDecode, ndpRsEmit,
} from "../src/wire/icmpv6.ts";
import { formatIPv6, inanyParse } from "../src/wire/inany.ts";
import { IPPROTO_ICMPV6, L3Info } from "../src/wire/ip.ts";
import { IP6_HOPS, ipv6Emit, ipv6Parse } from "../src/wire/ipv6.ts";
import * as F from "./fixtures/wire-frames.ts";

const MAC_A = parseMac("02:00:5e:00:00:0a")!;
const MAC_B = parseMac("02:00:5e:00:00:0b")!;
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
const addr = (t: string) => inanyParse(t)!;

/** Parses a captured NDP frame through IPv6; returns the ICMPv6 offset, length and options offset. */
function ndpOf(f: Uint8Array): { off: number; len: number; opts: number } {
  const info = new L3Info();
  expect(ipv6Parse(f, 14, f.length - 14, info)).toBe(40);
  expect(info.proto).toBe(IPPROTO_ICMPV6);
  expect(f[14 + IP6_HOPS]).toBe(255);
  expect(icmp6ChecksumOk(f, 14, info.l4Off, info.l4Len)).toBe(true);
  return { off: info.l4Off, len: info.l4Len, opts: ndpParse(f, info.l4Off, info.l4Len) };
}

/** Starts an NDP frame: Ethernet and IPv6 headers for an ICMPv6 payload of plen bytes (flow label 0, hop limit 255). */
function frameStart(out: Uint8Array, dstMac: Uint8Array, srcMac: Uint8Array, src: string, dst: string, plen: number): void {
  ethEmit(out, 0, dstMac, 0, srcMac, 0, ETHERTYPE_IPV6);
  ipv6Emit(out, 14, addr(src), 0, addr(dst), 0, IPPROTO_ICMPV6, plen);
}

describe("NDP messages", () => {
  test("router solicitation from the kernel", () => {
    const f = F.ROUTER_SOLICITATION;
    const m = ndpOf(f);
    expect(icmp6Parse(f, m.off, m.len)).toBe(NDP_RS);
    expect(m.opts).toBe(m.off + 8);
    const o = ndpOptionFind(f, m.opts, m.off + m.len, NDP_OPT_SRC_LLADDR);
    expect(formatMac(f, o + NDP_OPT_LLADDR)).toBe("02:00:5e:00:00:0a");
  });

  test("router advertisement from dnsmasq: every option decoded", () => {
    const f = F.ROUTER_ADVERTISEMENT;
    const m = ndpOf(f);
    expect(icmp6Parse(f, m.off, m.len)).toBe(NDP_RA);
    expect(f[m.off + 4]).toBe(64);
    expect(f[m.off + RA_FLAGS]).toBe(RA_MANAGED | RA_OTHER);
    expect((f[m.off + RA_LIFETIME] << 8) | f[m.off + RA_LIFETIME + 1]).toBe(4500);
    const opts = ndpOptionsParse(f, m.opts, m.off + m.len)!;
    expect(opts.map((o) => [o.type, o.len])).toEqual([[NDP_OPT_PREFIX, 32], [NDP_OPT_MTU, 8], [NDP_OPT_SRC_LLADDR, 8], [NDP_OPT_DNSSL, 24], [NDP_OPT_RDNSS, 24]]);
    const pi = ndpPrefixDecode(f, opts[0].off);
    expect([pi.prefixLen, pi.flags, pi.valid, pi.preferred, formatIPv6(pi.prefix, 0)]).toEqual([64, PREFIX_ONLINK, 4500, 4500, "2001:db8:5::"]);
    expect(ndpMtuDecode(f, opts[1].off)).toBe(1500);
    expect(formatMac(f, opts[2].off + NDP_OPT_LLADDR)).toBe("02:00:5e:00:00:0b");
    expect(ndpDnsslDecode(f, opts[3].off, opts[3].len)).toEqual({ lifetime: 4500, names: ["example.org"] });
    const rdnss = ndpRdnssDecode(f, opts[4].off, opts[4].len);
    expect(rdnss.lifetime).toBe(4500);
    expect(rdnss.servers.map((s) => formatIPv6(s, 0))).toEqual(["2001:db8:5::53"]);
  });

  test("DAD neighbor solicitation from :: with the kernel's nonce option", () => {
    const f = F.NEIGHBOR_SOLICITATION_DAD;
    const m = ndpOf(f);
    expect(icmp6Parse(f, m.off, m.len)).toBe(NDP_NS);
    expect(formatIPv6(f, 22)).toBe("::");
    expect(formatIPv6(f, m.off + ND_TARGET)).toBe("fe80::5eff:fe00:a");
    expect(ndpOptionsParse(f, m.opts, m.off + m.len)!.map((o) => o.type)).toEqual([14]);
    expect(ndpOptionFind(f, m.opts, m.off + m.len, NDP_OPT_SRC_LLADDR)).toBe(-1);
  });

  test("emitted RS, NS and NA frames are byte-identical to the kernel's", () => {
    const rs = new Uint8Array(70);
    frameStart(rs, parseMac("33:33:00:00:00:02")!, MAC_A, "fe80::5eff:fe00:a", "ff02::2", 16);
    expect(ndpRsEmit(rs, 54) + ndpOptLinkAddrEmit(rs, 62, NDP_OPT_SRC_LLADDR, MAC_A, 0)).toBe(16);
    icmp6SetChecksum(rs, 14, 54, 16);
    expect(hexOf(rs)).toBe(hexOf(F.ROUTER_SOLICITATION));

    const ns = new Uint8Array(86);
    frameStart(ns, parseMac("33:33:ff:00:00:01")!, MAC_A, "fe80::5eff:fe00:a", "ff02::1:ff00:1", 32);
    expect(ndpNsNaEmit(ns, 54, NDP_NS, 0, addr("2001:db8:5::1"), 0)).toBe(24);
    expect(ndpOptLinkAddrEmit(ns, 78, NDP_OPT_SRC_LLADDR, MAC_A, 0)).toBe(8);
    icmp6SetChecksum(ns, 14, 54, 32);
    expect(hexOf(ns)).toBe(hexOf(F.NEIGHBOR_SOLICITATION));

    const na = new Uint8Array(86);
    frameStart(na, MAC_A, MAC_B, "2001:db8:5::1", "fe80::5eff:fe00:a", 32);
    const req = F.NEIGHBOR_SOLICITATION;
    expect(ndpNsNaEmit(na, 54, NDP_NA, NA_ROUTER | NA_SOLICITED | NA_OVERRIDE, req, 54 + ND_TARGET)).toBe(24);
    expect(ndpOptLinkAddrEmit(na, 78, NDP_OPT_TGT_LLADDR, MAC_B, 0)).toBe(8);
    icmp6SetChecksum(na, 14, 54, 32);
    expect(hexOf(na)).toBe(hexOf(F.NEIGHBOR_ADVERTISEMENT));
    expect(na[54 + NA_FLAGS]).toBe(0xe0);
  });

  test("an RA emitted with dnsmasq's values reproduces its ICMPv6 part byte for byte", () => {
    const f = F.ROUTER_ADVERTISEMENT;
    const out = new Uint8Array(f.length);
    out.set(f.subarray(0, 54));
    let n = ndpRaEmit(out, 54, { curHopLimit: 64, flags: RA_MANAGED | RA_OTHER, routerLifetime: 4500, reachable: 0, retrans: 0 });
    n += ndpOptPrefixEmit(out, 54 + n, 64, PREFIX_ONLINK, 4500, 4500, addr("2001:db8:5::"), 0);
    n += ndpOptMtuEmit(out, 54 + n, 1500);
    n += ndpOptLinkAddrEmit(out, 54 + n, NDP_OPT_SRC_LLADDR, MAC_B, 0);
    n += ndpOptDnsslEmit(out, 54 + n, 4500, ["example.org"]);
    n += ndpOptRdnssEmit(out, 54 + n, 4500, [addr("2001:db8:5::53")]);
    expect(n).toBe(112);
    icmp6SetChecksum(out, 14, 54, n);
    expect(hexOf(out)).toBe(hexOf(f));
  });

  test("an orzo-style RA (M, 65535 s, L+A infinite prefix, MTU 65520, RDNSS, DNSSL) round-trips", () => {
    const out = new Uint8Array(14 + 40 + 200);
    let n = ndpRaEmit(out, 54, { curHopLimit: 255, flags: RA_MANAGED, routerLifetime: 65535, reachable: 0, retrans: 0 });
    n += ndpOptPrefixEmit(out, 54 + n, 64, PREFIX_ONLINK | PREFIX_AUTONOMOUS, 0xffffffff, 0xffffffff, addr("2001:db8:1::1"), 0);
    n += ndpOptLinkAddrEmit(out, 54 + n, NDP_OPT_SRC_LLADDR, parseMac("9a:55:9a:55:9a:55")!, 0);
    n += ndpOptMtuEmit(out, 54 + n, 65520);
    n += ndpOptRdnssEmit(out, 54 + n, 0xffffffff, [addr("2001:db8:1::fe"), addr("2001:db8::53"), addr("fd00::1")]);
    n += ndpOptDnsslEmit(out, 54 + n, 0xffffffff, ["orzo.test", "example.com"]);
    expect(n).toBe(16 + 32 + 8 + 8 + 56 + 32);
    frameStart(out, MAC_A, MAC_B, "fe80::1", "ff02::1", n);
    icmp6SetChecksum(out, 14, 54, n);
    const m = ndpOf(out.subarray(0, 54 + n));
    const opts = ndpOptionsParse(out, m.opts, 54 + n)!;
    expect(opts.map((o) => o.type)).toEqual([NDP_OPT_PREFIX, NDP_OPT_SRC_LLADDR, NDP_OPT_MTU, NDP_OPT_RDNSS, NDP_OPT_DNSSL]);
    expect(ndpPrefixDecode(out, opts[0].off).flags).toBe(0xc0);
    expect(ndpMtuDecode(out, opts[2].off)).toBe(65520);
    expect(ndpRdnssDecode(out, opts[3].off, opts[3].len).servers.length).toBe(3);
    expect(ndpDnsslDecode(out, opts[4].off, opts[4].len)!.names).toEqual(["orzo.test", "example.com"]);
    expect(hexOf(out.subarray(54 + 16 + 32 + 16 + 56, 54 + n))).toBe(
      "1f040000ffffffff" + "046f727a6f047465737400" + "076578616d706c6503636f6d00",
    );
    expect(ndpOptDnsslEmit(out, 0, 0, [])).toBe(0);
    expect(ndpOptDnsslEmit(out, 0, 0, ["bad..name"])).toBe(0);
    expect(ndpOptRdnssEmit(out, 0, 0, [])).toBe(0);
    expect(ndpOptMtuEmit(out, out.length - 7, 1)).toBe(0);
  });
});

describe("NDP validation", () => {
  const ra = () => F.ROUTER_ADVERTISEMENT.slice(54);

  test("zero-length, overrunning and undersized options make the message invalid", () => {
    const good = ra();
    expect(ndpParse(good, 0, good.length)).toBe(16);
    const zero = ra();
    zero[16 + 32 + 1] = 0;
    expect(ndpParse(zero, 0, zero.length)).toBe(-1);
    const over = ra();
    over[16 + 32 + 1] = 20;
    expect(ndpParse(over, 0, over.length)).toBe(-1);
    const shortPrefix = ra();
    shortPrefix[17] = 3;
    expect(ndpParse(shortPrefix, 0, shortPrefix.length)).toBe(-1);
    const evenRdnss = ra();
    evenRdnss[112 - 24 + 1] = 2;
    expect(ndpParse(evenRdnss, 0, 112 - 8)).toBe(-1);
    expect(ndpParse(good, 0, good.length - 1)).toBe(-1);
    expect(ndpParse(good, 0, 17)).toBe(-1);
    expect(ndpParse(good, 0, 15)).toBe(-1);
    expect(ndpOptionsParse(zero, 16, zero.length)).toBeNull();
  });

  test("code must be 0 and the type an NDP one", () => {
    const b = ra();
    b[1] = 1;
    expect(ndpParse(b, 0, b.length)).toBe(-1);
    const echo = F.ICMP6_ECHO_REQUEST;
    expect(ndpParse(echo, 54, 64)).toBe(-1);
  });

  test("emitters refuse buffers too small", () => {
    const b = new Uint8Array(20);
    expect(ndpRaEmit(b, 5, { curHopLimit: 0, flags: 0, routerLifetime: 0, reachable: 0, retrans: 0 })).toBe(0);
    expect(ndpNsNaEmit(b, 0, NDP_NA, 0, addr("::1"), 0)).toBe(0);
    expect(ndpOptPrefixEmit(b, 0, 64, 0, 0, 0, addr("::"), 0)).toBe(0);
    expect(ndpRsEmit(b, 13)).toBe(0);
    expect(ndpOptLinkAddrEmit(b, 13, 1, MAC_A, 0)).toBe(0);
  });
});

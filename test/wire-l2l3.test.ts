import { describe, expect, test } from "bun:test";
import { ARP_OP, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA, arpEmit, arpParse } from "../src/wire/arp.ts";
import {
  ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MAC_BROADCAST, ethEmit, ethPad, ethParse, formatMac,
  macEqual, macIsMulticast, parseMac,
} from "../src/wire/ethernet.ts";
import { formatIPv4, formatIPv6, inanyParse, inanyToText } from "../src/wire/inany.ts";
import { INANY_V4_OFF, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3Info } from "../src/wire/ip.ts";
import {
  IP4_CSUM, IP4_DST, IP4_SRC, ipv4ChecksumOk, ipv4DstToInany, ipv4Emit, ipv4HeaderChecksum, ipv4Parse,
  ipv4SetPayloadLen, ipv4SrcToInany,
} from "../src/wire/ipv4.ts";
import { IP6_DST, IP6_SRC, ipv6Emit, ipv6Parse } from "../src/wire/ipv6.ts";
import {
  ARP_REPLY as ARP_REPLY_FRAME, ARP_REQUEST as ARP_REQUEST_FRAME, DHCP_DISCOVER, ICMP_ECHO_REQUEST, ICMP6_ECHO_REPLY,
  ICMP6_ECHO_REQUEST, IPV4_FRAGMENT_FIRST, IPV4_FRAGMENT_LAST, IPV6_FRAGMENT_FIRST, IPV6_FRAGMENT_LAST, MLD_REPORT,
  TCP6_SYN, UDP4_DATAGRAM, hex,
} from "./fixtures/wire-frames.ts";

const MAC_A = parseMac("02:00:5e:00:00:0a")!;
const MAC_B = parseMac("02:00:5e:00:00:0b")!;

/** Builds an IPv6 packet: fixed header with next header nh, then the given payload bytes. */
function ipv6Packet(nh: number, payload: number[]): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  const a = inanyParse("2001:db8::1")!;
  ipv6Emit(p, 0, a, 0, a, 0, nh, payload.length);
  p.set(payload, 40);
  return p;
}

describe("Ethernet", () => {
  test("real frames: addresses and EtherTypes", () => {
    expect(ethParse(ARP_REQUEST_FRAME, 0, ARP_REQUEST_FRAME.length)).toBe(ETHERTYPE_ARP);
    expect(formatMac(ARP_REQUEST_FRAME, 0)).toBe("ff:ff:ff:ff:ff:ff");
    expect(formatMac(ARP_REQUEST_FRAME, 6)).toBe("02:00:5e:00:00:0a");
    expect(ethParse(ICMP_ECHO_REQUEST, 0, ICMP_ECHO_REQUEST.length)).toBe(ETHERTYPE_IPV4);
    expect(ethParse(TCP6_SYN, 0, TCP6_SYN.length)).toBe(ETHERTYPE_IPV6);
    expect(macIsMulticast(MLD_REPORT, 0)).toBe(true);
    expect(macIsMulticast(TCP6_SYN, 0)).toBe(false);
    expect(macEqual(TCP6_SYN, 0, MAC_B, 0)).toBe(true);
    expect(ethParse(TCP6_SYN, 0, 13)).toBe(-1);
    expect(ethParse(TCP6_SYN, 90, 14)).toBe(-1);
  });

  test("MAC text", () => {
    expect(Array.from(parseMac("9a:55:9a:55:9a:55")!)).toEqual([0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55]);
    expect(formatMac(parseMac("0:1:A:b:c:FF")!, 0)).toBe("00:01:0a:0b:0c:ff");
    for (const bad of ["", "9a:55:9a:55:9a", "9a:55:9a:55:9a:55:01", "9a:55:9a:55:9a:5g", "9a-55-9a-55-9a-55", "9a:55:9a:55:9a:555", "9a::9a:55:9a:55"]) {
      expect(parseMac(bad)).toBeNull();
    }
  });

  test("emit and pad", () => {
    const buf = new Uint8Array(64).fill(0xaa);
    expect(ethEmit(buf, 2, MAC_BROADCAST, 0, MAC_A, 0, ETHERTYPE_ARP)).toBe(ETH_HLEN);
    expect(Array.from(buf.subarray(2, 16))).toEqual(Array.from(ARP_REQUEST_FRAME.subarray(0, 14)));
    expect(ethEmit(buf, 51, MAC_A, 0, MAC_B, 0, ETHERTYPE_ARP)).toBe(0);
    const frame = new Uint8Array(70).fill(0xaa);
    expect(ethPad(frame, 0, 42)).toBe(60);
    expect(frame.subarray(42, 60).every((b) => b === 0)).toBe(true);
    expect(frame[60]).toBe(0xaa);
    expect(ethPad(frame, 0, 61)).toBe(61);
  });
});

describe("ARP", () => {
  test("real request and reply decode", () => {
    expect(arpParse(ARP_REQUEST_FRAME, 14, 28)).toBe(ARP_REQUEST);
    expect(formatMac(ARP_REQUEST_FRAME, 14 + ARP_SHA)).toBe("02:00:5e:00:00:0a");
    expect(formatIPv4(ARP_REQUEST_FRAME, 14 + ARP_SPA)).toBe("192.0.2.20");
    expect(formatIPv4(ARP_REQUEST_FRAME, 14 + ARP_TPA)).toBe("192.0.2.1");
    expect(arpParse(ARP_REPLY_FRAME, 14, 28)).toBe(ARP_REPLY);
    expect(formatMac(ARP_REPLY_FRAME, 14 + ARP_SHA)).toBe("02:00:5e:00:00:0b");
    expect(formatMac(ARP_REPLY_FRAME, 14 + ARP_THA)).toBe("02:00:5e:00:00:0a");
    expect(arpParse(ARP_REQUEST_FRAME, 14, 27)).toBe(-1);
  });

  test("an emitted reply to the real request is byte-identical to the kernel's reply", () => {
    const req = ARP_REQUEST_FRAME;
    const out = new Uint8Array(42);
    let n = ethEmit(out, 0, req, 6, MAC_B, 0, ETHERTYPE_ARP);
    n += arpEmit(out, n, ARP_REPLY, MAC_B, 0, req, 14 + ARP_TPA, req, 14 + ARP_SHA, req, 14 + ARP_SPA);
    expect(n).toBe(42);
    expect(Buffer.from(out).toString("hex")).toBe(Buffer.from(ARP_REPLY_FRAME).toString("hex"));
  });

  test("wrong hardware, protocol, lengths or opcode are refused", () => {
    const mutate = (at: number, v: number) => {
      const b = ARP_REQUEST_FRAME.slice(14, 42);
      b[at] = v;
      return arpParse(b, 0, 28);
    };
    expect(mutate(1, 6)).toBe(-1);
    expect(mutate(2, 0x86)).toBe(-1);
    expect(mutate(4, 8)).toBe(-1);
    expect(mutate(5, 16)).toBe(-1);
    expect(mutate(ARP_OP + 1, 3)).toBe(-1);
    expect(mutate(ARP_OP + 1, 0)).toBe(-1);
  });
});

describe("IPv4", () => {
  const info = new L3Info();

  test("real echo request: header, addresses, checksum", () => {
    const f = ICMP_ECHO_REQUEST;
    expect(ipv4Parse(f, 14, f.length - 14, info)).toBe(20);
    expect(info.proto).toBe(IPPROTO_ICMP);
    expect(info.l4Off).toBe(34);
    expect(info.l4Len).toBe(64);
    expect(info.fragment).toBe(false);
    expect(ipv4ChecksumOk(f, 14, 20)).toBe(true);
    expect(ipv4HeaderChecksum(f, 14, 20)).toBe((f[14 + IP4_CSUM] << 8) | f[15 + IP4_CSUM]);
    const a = new Uint8Array(32);
    ipv4SrcToInany(f, 14, a, 0);
    ipv4DstToInany(f, 14, a, 16);
    expect(inanyToText(a, 0)).toBe("192.0.2.20");
    expect(inanyToText(a, 16)).toBe("192.0.2.1");
  });

  test("real DHCP DISCOVER from 0.0.0.0 to broadcast", () => {
    expect(ipv4Parse(DHCP_DISCOVER, 14, DHCP_DISCOVER.length - 14, info)).toBe(20);
    expect(info.proto).toBe(IPPROTO_UDP);
    expect(formatIPv4(DHCP_DISCOVER, 14 + IP4_SRC)).toBe("0.0.0.0");
    expect(formatIPv4(DHCP_DISCOVER, 14 + IP4_DST)).toBe("255.255.255.255");
    expect(ipv4ChecksumOk(DHCP_DISCOVER, 14, 20)).toBe(true);
  });

  test("real fragments are flagged (MF on the first, an offset on the last)", () => {
    expect(ipv4Parse(IPV4_FRAGMENT_FIRST, 14, IPV4_FRAGMENT_FIRST.length - 14, info)).toBe(20);
    expect(info.fragment).toBe(true);
    expect(info.l4Len).toBe(1480);
    expect(ipv4Parse(IPV4_FRAGMENT_LAST, 14, IPV4_FRAGMENT_LAST.length - 14, info)).toBe(20);
    expect(info.fragment).toBe(true);
    expect(info.l4Len).toBe(528);
  });

  test("Ethernet padding is trimmed by the total length", () => {
    const padded = new Uint8Array(60);
    padded.set(UDP4_DATAGRAM);
    expect(ipv4Parse(padded, 14, 46, info)).toBe(20);
    expect(info.l4Len).toBe(18);
  });

  test("options (IHL > 5) and malformed headers", () => {
    const withOpts = new Uint8Array(32);
    ipv4Emit(withOpts, 0, hex("c0000201"), 0, hex("c0000202"), 0, IPPROTO_UDP, 8);
    withOpts.copyWithin(24, 20, 28);
    withOpts[0] = 0x46;
    withOpts.fill(1, 20, 24);
    withOpts[3] = 32;
    expect(ipv4Parse(withOpts, 0, 32, info)).toBe(24);
    expect(info.l4Off).toBe(24);
    expect(info.l4Len).toBe(8);
    const bad = (patch: (b: Uint8Array) => void, len = 64) => {
      const b = ICMP_ECHO_REQUEST.slice(14);
      patch(b);
      return ipv4Parse(b, 0, Math.min(len, b.length), info);
    };
    expect(bad(() => {})).toBe(-1);
    expect(bad(() => {}, 84)).toBe(20);
    expect(bad((b) => (b[0] = 0x44), 84)).toBe(-1);
    expect(bad((b) => (b[0] = 0x65), 84)).toBe(-1);
    expect(bad((b) => (b[0] = 0x4f), 84)).toBe(60);
    expect(bad((b) => { b[0] = 0x4f; b[3] = 40; }, 84)).toBe(-1);
    expect(bad((b) => (b[3] = 19), 84)).toBe(-1);
    expect(bad((b) => (b[3] = 85), 84)).toBe(-1);
    expect(bad(() => {}, 19)).toBe(-1);
  });

  test("emit: byte-exact header with DF, TTL 255 and checksum; addresses from 4-byte or inany", () => {
    const buf = new Uint8Array(28);
    const src = inanyParse("192.0.2.1")!;
    expect(ipv4Emit(buf, 0, src, INANY_V4_OFF, hex("c0000214"), 0, IPPROTO_UDP, 8)).toBe(20);
    expect(Buffer.from(buf.subarray(0, 20)).toString("hex")).toBe("4500001c00004000ff11f7bac0000201c0000214");
    expect(ipv4ChecksumOk(buf, 0, 20)).toBe(true);
    expect(ipv4Parse(buf, 0, 28, info)).toBe(20);
    ipv4SetPayloadLen(buf, 0, 4);
    expect(ipv4ChecksumOk(buf, 0, 20)).toBe(true);
    expect(ipv4Parse(buf, 0, 24, info)).toBe(20);
    expect(info.l4Len).toBe(4);
    expect(ipv4Emit(buf, 10, src, 12, src, 12, 6, 0)).toBe(0);
    expect(ipv4Emit(buf, 0, src, 12, src, 12, 6, 65516)).toBe(0);
  });
});

describe("IPv6", () => {
  const info = new L3Info();

  test("real echo request: no extension headers", () => {
    const f = ICMP6_ECHO_REQUEST;
    expect(ipv6Parse(f, 14, f.length - 14, info)).toBe(40);
    expect(info.proto).toBe(IPPROTO_ICMPV6);
    expect(info.l4Off).toBe(54);
    expect(info.l4Len).toBe(64);
    expect(info.fragment).toBe(false);
    expect(formatIPv6(f, 14 + IP6_SRC)).toBe("fe80::5eff:fe00:a");
    expect(formatIPv6(f, 14 + IP6_DST)).toBe("2001:db8:5::1");
  });

  test("real MLDv2 report: the Hop-by-Hop header is walked", () => {
    expect(ipv6Parse(MLD_REPORT, 14, MLD_REPORT.length - 14, info)).toBe(48);
    expect(info.proto).toBe(IPPROTO_ICMPV6);
    expect(info.l4Len).toBe(28);
    expect(MLD_REPORT[info.l4Off]).toBe(143);
  });

  test("real fragments: Fragment header walked and flagged", () => {
    expect(ipv6Parse(IPV6_FRAGMENT_FIRST, 14, IPV6_FRAGMENT_FIRST.length - 14, info)).toBe(48);
    expect(info.fragment).toBe(true);
    expect(info.proto).toBe(IPPROTO_ICMPV6);
    expect(IPV6_FRAGMENT_FIRST[info.l4Off]).toBe(128);
    expect(ipv6Parse(IPV6_FRAGMENT_LAST, 14, IPV6_FRAGMENT_LAST.length - 14, info)).toBe(48);
    expect(info.fragment).toBe(true);
    expect(info.l4Len).toBe(560);
  });

  test("real TCP SYN", () => {
    expect(ipv6Parse(TCP6_SYN, 14, TCP6_SYN.length - 14, info)).toBe(40);
    expect(info.proto).toBe(IPPROTO_TCP);
  });

  test("extension header chains and units", () => {
    const udp = [0, 1, 0, 2, 0, 8, 0, 0];
    const hbh = [43, 0, 1, 4, 0, 0, 0, 0];
    const routing = [60, 1, 0, 0, 0, 0, 0, 0, ...new Array(8).fill(0)];
    const dest = [51, 0, 1, 4, 0, 0, 0, 0];
    const ah = [17, 2, 0, 0, ...new Array(12).fill(0)];
    const chain = ipv6Packet(0, [...hbh, ...routing, ...dest, ...ah, ...udp]);
    expect(ipv6Parse(chain, 0, chain.length, info)).toBe(40 + 8 + 16 + 8 + 16);
    expect(info.proto).toBe(IPPROTO_UDP);
    expect(info.l4Len).toBe(8);
    for (const nh of [135, 139, 140, 253, 254]) {
      const p = ipv6Packet(nh, [17, 0, 0, 0, 0, 0, 0, 0, ...udp]);
      expect(ipv6Parse(p, 0, p.length, info)).toBe(48);
      expect(info.proto).toBe(IPPROTO_UDP);
    }
    const atomic = ipv6Packet(44, [17, 0, 0, 0, 0, 0, 0, 1, ...udp].map((v, i) => (i === 7 ? 0 : v)));
    expect(ipv6Parse(atomic, 0, atomic.length, info)).toBe(48);
    expect(info.fragment).toBe(false);
    const esp = ipv6Packet(50, [0, 0, 0, 1, 0, 0, 0, 1]);
    expect(ipv6Parse(esp, 0, esp.length, info)).toBe(40);
    expect(info.proto).toBe(50);
  });

  test("no next header, overruns, bad lengths and versions are refused", () => {
    const none = ipv6Packet(59, [0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Parse(none, 0, none.length, info)).toBe(-1);
    const viaHbh = ipv6Packet(0, [59, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Parse(viaHbh, 0, viaHbh.length, info)).toBe(-1);
    const overrun = ipv6Packet(0, [17, 1, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Parse(overrun, 0, overrun.length, info)).toBe(-1);
    const ahOverrun = ipv6Packet(51, [17, 2, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Parse(ahOverrun, 0, ahOverrun.length, info)).toBe(-1);
    const shortFrag = ipv6Packet(44, [17, 0, 0, 0]);
    expect(ipv6Parse(shortFrag, 0, shortFrag.length, info)).toBe(-1);
    const f = ICMP6_ECHO_REQUEST.slice(14);
    expect(ipv6Parse(f, 0, f.length - 1, info)).toBe(-1);
    const longer = new Uint8Array(f.length + 4);
    longer.set(f);
    expect(ipv6Parse(longer, 0, longer.length, info)).toBe(-1);
    f[0] = 0x40;
    expect(ipv6Parse(f, 0, f.length, info)).toBe(-1);
  });

  test("a tiny packet padded to the Ethernet minimum is accepted and trimmed", () => {
    const p = ipv6Packet(17, [0, 1, 0, 2]);
    const padded = new Uint8Array(46);
    padded.set(p);
    expect(ipv6Parse(padded, 0, 46, info)).toBe(40);
    expect(info.l4Len).toBe(4);
  });

  test("emit reproduces the kernel's echo reply header given its flow label and hop limit", () => {
    const f = ICMP6_ECHO_REPLY;
    const out = new Uint8Array(40);
    expect(ipv6Emit(out, 0, f, 14 + IP6_SRC, f, 14 + IP6_DST, IPPROTO_ICMPV6, 64, 0x55f26, 64)).toBe(40);
    expect(Buffer.from(out).toString("hex")).toBe(Buffer.from(f.subarray(14, 54)).toString("hex"));
    const d = new Uint8Array(40);
    ipv6Emit(d, 0, f, 22, f, 38, IPPROTO_UDP, 8);
    expect(Buffer.from(d.subarray(0, 8)).toString("hex")).toBe("600000000008" + "11ff");
    expect(ipv6Emit(d, 1, f, 22, f, 38, IPPROTO_UDP, 8)).toBe(0);
  });
});

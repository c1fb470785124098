import { describe, expect, test } from "bun:test";
import { ETHERTYPE_IPV4, ethEmit } from "../src/wire/ethernet.ts";
import {
  ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, icmpChecksumOk, icmpEchoEmit, icmpEchoId,
  icmpEchoSeq, icmpErrorEmit, icmpParse,
} from "../src/wire/icmp.ts";
import {
  ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP6_PKT_TOO_BIG, icmp6ChecksumOk, icmp6EchoEmit, icmp6EchoId, icmp6EchoSeq,
  icmp6ErrorEmit, icmp6Parse, icmp6SetChecksum,
} from "../src/wire/icmpv6.ts";
import { inanyParse } from "../src/wire/inany.ts";
import { INANY_V4_OFF, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3Info } from "../src/wire/ip.ts";
import { ipv4ChecksumOk, ipv4Emit, ipv4Parse } from "../src/wire/ipv4.ts";
import { IP6_DST, IP6_SRC, ipv6Emit, ipv6Parse } from "../src/wire/ipv6.ts";
import {
  TCP_ACK, TCP_PSH, TCP_SYN, TcpOptions, tcpAckSeq, tcpChecksumOk4, tcpChecksumOk6, tcpEmit, tcpFlags, tcpParse,
  tcpParseOptions, tcpSeq, tcpSetChecksum4, tcpSetChecksum6, tcpWindow,
} from "../src/wire/tcp.ts";
import { UDP_CSUM, udpChecksumOk4, udpChecksumOk6, udpEmit, udpParse, udpSetChecksum4, udpSetChecksum6 } from "../src/wire/udp.ts";
import * as F from "./fixtures/wire-frames.ts";

/**
 * Kernel-independent reference: byte-loop Internet checksum over byte arrays laid end to end. The literal
 * checksums in the byte-exact expectations below were computed separately with a Python byte loop.
 */
function referenceChecksum(...parts: Uint8Array[]): number {
  const all = Buffer.concat(parts);
  let s = 0;
  for (let i = 0; i < all.length; i++) s += i & 1 ? all[i] : all[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** The IPv4 pseudo-header as bytes, from an IPv4 header at buf[ipOff]. */
function pseudo4(buf: Uint8Array, ipOff: number, proto: number, len: number): Uint8Array {
  return Uint8Array.of(...buf.subarray(ipOff + 12, ipOff + 20), 0, proto, len >> 8, len & 0xff);
}

/** The IPv6 pseudo-header as bytes, from an IPv6 header at buf[ipOff]. */
function pseudo6(buf: Uint8Array, ipOff: number, proto: number, len: number): Uint8Array {
  return Uint8Array.of(...buf.subarray(ipOff + 8, ipOff + 40), 0, 0, len >> 8, len & 0xff, 0, 0, 0, proto);
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("UDP", () => {
  test("real datagram and DHCP frames: ports, length, checksums over IPv4 and IPv6", () => {
    const f = F.UDP4_DATAGRAM;
    expect(udpParse(f, 34, f.length - 34)).toBe(18);
    expect((f[34] << 8) | f[35]).toBe(32800);
    expect((f[36] << 8) | f[37]).toBe(5353);
    expect(text(f.subarray(42, 52))).toBe("hello-udp\n");
    expect(udpChecksumOk4(f, 14, 34, 18)).toBe(true);
    expect(udpChecksumOk4(F.DHCP_DISCOVER, 14, 34, F.DHCP_DISCOVER.length - 34)).toBe(true);
    expect(udpChecksumOk6(F.DHCP6_SOLICIT, 14, 54, F.DHCP6_SOLICIT.length - 54)).toBe(true);
    expect(udpChecksumOk6(F.DHCP6_ADVERTISE, 14, 54, F.DHCP6_ADVERTISE.length - 54)).toBe(true);
    const flipped = f.slice();
    flipped[45] ^= 0x20;
    expect(udpChecksumOk4(flipped, 14, 34, 18)).toBe(false);
  });

  test("length field must be within 8..available", () => {
    const f = F.UDP4_DATAGRAM;
    expect(udpParse(f, 34, 17)).toBe(-1);
    expect(udpParse(f, 34, 7)).toBe(-1);
    const b = f.slice(34);
    b[5] = 7;
    expect(udpParse(b, 0, 18)).toBe(-1);
    b[5] = 12;
    expect(udpParse(b, 0, 18)).toBe(12);
  });

  test("zero checksum: 'none' over IPv4, invalid over IPv6; a computed 0 is sent as 0xffff", () => {
    const f = F.UDP4_DATAGRAM.slice();
    f[34 + UDP_CSUM] = 0;
    f[35 + UDP_CSUM] = 0;
    expect(udpChecksumOk4(f, 14, 34, 18)).toBe(true);
    const s = F.DHCP6_SOLICIT.slice();
    s[54 + UDP_CSUM] = 0;
    s[55 + UDP_CSUM] = 0;
    expect(udpChecksumOk6(s, 14, 54, s.length - 54)).toBe(false);
    const buf = new Uint8Array(20 + 8 + 2);
    ipv4Emit(buf, 0, Uint8Array.of(0, 0, 0, 0), 0, Uint8Array.of(0, 0, 0, 0), 0, IPPROTO_UDP, 10);
    udpEmit(buf, 20, 0, 0, 2);
    const partial = 0x11 + 10 + 10;
    buf[28] = (0xffff - partial) >> 8;
    buf[29] = (0xffff - partial) & 0xff;
    udpSetChecksum4(buf, 0, 20, 10);
    expect(buf[26]).toBe(0xff);
    expect(buf[27]).toBe(0xff);
    expect(udpChecksumOk4(buf, 0, 20, 10)).toBe(true);
  });

  test("emit: the UDP part equals socat's datagram; whole IPv4+UDP frame byte-exact with reference checksums", () => {
    const f = F.UDP4_DATAGRAM;
    const out = new Uint8Array(52);
    ethEmit(out, 0, f, 0, f, 6, ETHERTYPE_IPV4);
    out.set(f.subarray(42, 52), 42);
    const src = inanyParse("192.0.2.20")!;
    const dst = inanyParse("192.0.2.1")!;
    expect(ipv4Emit(out, 14, src, INANY_V4_OFF, dst, INANY_V4_OFF, IPPROTO_UDP, 18)).toBe(20);
    expect(udpEmit(out, 34, 32800, 5353, 10)).toBe(8);
    udpSetChecksum4(out, 14, 34, 18);
    expect(hexOf(out.subarray(34))).toBe(hexOf(f.subarray(34)));
    expect(hexOf(out)).toBe(
      "02005e00000b02005e00000a0800" + "4500002600004000ff11f7b0c0000214c0000201" + "802014e90012bd3c" + "68656c6c6f2d7564700a",
    );
    expect(referenceChecksum(out.subarray(14, 34))).toBe(0);
    expect(referenceChecksum(pseudo4(out, 14, IPPROTO_UDP, 18), out.subarray(34, 52))).toBe(0);
    const info = new L3Info();
    expect(ipv4Parse(out, 14, 38, info)).toBe(20);
    expect(udpParse(out, info.l4Off, info.l4Len)).toBe(18);
  });

  test("emit over IPv6 round-trips and verifies", () => {
    const out = new Uint8Array(40 + 8 + 3);
    const a = inanyParse("fe80::1")!;
    const b = inanyParse("ff02::1:2")!;
    ipv6Emit(out, 0, a, 0, b, 0, IPPROTO_UDP, 11);
    udpEmit(out, 40, 546, 547, 3);
    out.set([1, 2, 3], 48);
    udpSetChecksum6(out, 0, 40, 11);
    expect(referenceChecksum(pseudo6(out, 0, IPPROTO_UDP, 11), out.subarray(40))).toBe(0);
    expect(udpChecksumOk6(out, 0, 40, 11)).toBe(true);
    expect(udpEmit(out, 45, 1, 2, 0)).toBe(0);
    expect(udpEmit(out, 0, 1, 2, 65528)).toBe(0);
  });
});

describe("ICMP", () => {
  test("real echo request and reply decode and verify", () => {
    const q = F.ICMP_ECHO_REQUEST;
    expect(icmpParse(q, 34, 64)).toBe(ICMP_ECHO_REQUEST);
    expect(icmpEchoId(q, 34)).toBe(24421);
    expect(icmpEchoSeq(q, 34)).toBe(1);
    expect(icmpChecksumOk(q, 34, 64)).toBe(true);
    expect(icmpParse(F.ICMP_ECHO_REPLY, 34, 64)).toBe(ICMP_ECHO_REPLY);
    expect(icmpChecksumOk(F.ICMP_ECHO_REPLY, 34, 64)).toBe(true);
    expect(icmpParse(q, 34, 7)).toBe(-1);
  });

  test("an echo reply emitted for the real request equals the kernel's", () => {
    const q = F.ICMP_ECHO_REQUEST;
    const out = new Uint8Array(64);
    out.set(q.subarray(42, 98), 8);
    expect(icmpEchoEmit(out, 0, ICMP_ECHO_REPLY, icmpEchoId(q, 34), icmpEchoSeq(q, 34), 56)).toBe(8);
    expect(hexOf(out)).toBe(hexOf(F.ICMP_ECHO_REPLY.subarray(34, 98)));
    expect(icmpEchoEmit(out, 0, 0, 1, 1, 57)).toBe(0);
  });

  test("error header: fragmentation needed with the next-hop MTU", () => {
    const out = new Uint8Array(8 + 28);
    out.set(F.UDP4_DATAGRAM.subarray(14, 42), 8);
    expect(icmpErrorEmit(out, 0, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1400, 28)).toBe(8);
    expect(hexOf(out.subarray(0, 2)) + hexOf(out.subarray(4, 8))).toBe("0304" + "00000578");
    expect(icmpChecksumOk(out, 0, 36)).toBe(true);
    expect(referenceChecksum(out)).toBe(0);
  });
});

describe("ICMPv6 echo", () => {
  test("real echo request and reply decode and verify", () => {
    const q = F.ICMP6_ECHO_REQUEST;
    expect(icmp6Parse(q, 54, 64)).toBe(ICMP6_ECHO_REQUEST);
    expect(icmp6EchoId(q, 54)).toBe(24422);
    expect(icmp6EchoSeq(q, 54)).toBe(1);
    expect(icmp6ChecksumOk(q, 14, 54, 64)).toBe(true);
    expect(icmp6ChecksumOk(F.ICMP6_ECHO_REPLY, 14, 54, 64)).toBe(true);
    expect(icmp6Parse(q, 54, 7)).toBe(-1);
  });

  test("a whole reply frame built for the real request equals the kernel's reply frame", () => {
    const q = F.ICMP6_ECHO_REQUEST;
    const out = new Uint8Array(q.length);
    ethEmit(out, 0, q, 6, q, 0, 0x86dd);
    ipv6Emit(out, 14, q, 14 + IP6_DST, q, 14 + IP6_SRC, IPPROTO_ICMPV6, 64, 0x55f26, 64);
    out.set(q.subarray(62), 62);
    expect(icmp6EchoEmit(out, 54, ICMP6_ECHO_REPLY, icmp6EchoId(q, 54), icmp6EchoSeq(q, 54))).toBe(8);
    icmp6SetChecksum(out, 14, 54, 64);
    expect(hexOf(out)).toBe(hexOf(F.ICMP6_ECHO_REPLY));
    expect(referenceChecksum(pseudo6(out, 14, IPPROTO_ICMPV6, 64), out.subarray(54))).toBe(0);
  });

  test("error header: packet too big with its MTU", () => {
    const out = new Uint8Array(48);
    expect(icmp6ErrorEmit(out, 0, ICMP6_PKT_TOO_BIG, 0, 1280)).toBe(8);
    expect(hexOf(out.subarray(0, 8))).toBe("0200000000000500");
    expect(icmp6ErrorEmit(out, 41, ICMP6_PKT_TOO_BIG, 0, 1280)).toBe(0);
  });
});

describe("TCP", () => {
  const opts = new TcpOptions();
  const info = new L3Info();

  test("real SYN from socat: fields and options", () => {
    const f = F.TCP4_SYN;
    expect(tcpParse(f, 34, f.length - 34)).toBe(40);
    expect((f[34] << 8) | f[35]).toBe(40722);
    expect((f[36] << 8) | f[37]).toBe(8080);
    expect(tcpSeq(f, 34)).toBe(3105572821);
    expect(tcpFlags(f, 34)).toBe(TCP_SYN);
    expect(tcpWindow(f, 34)).toBe(64240);
    expect(tcpParseOptions(f, 34, 40, opts)).toBe(true);
    expect(opts).toEqual(Object.assign(new TcpOptions(), { mss: 1460, wscale: 10, sackOk: true, hasTimestamps: true, tsVal: 267993635, tsEcr: 0 }));
    expect(tcpChecksumOk4(f, 14, 34, 40)).toBe(true);
  });

  test("real SYN-ACK and data segment", () => {
    const s = F.TCP4_SYN_ACK;
    expect(tcpParse(s, 34, 40)).toBe(40);
    expect(tcpFlags(s, 34)).toBe(TCP_SYN | TCP_ACK);
    expect(tcpSeq(s, 34)).toBe(3264713955);
    expect(tcpAckSeq(s, 34)).toBe(3105572822);
    expect(tcpParseOptions(s, 34, 40, opts)).toBe(true);
    expect(opts.tsVal).toBe(4278837499);
    expect(opts.tsEcr).toBe(267993635);
    const d = F.TCP4_DATA;
    expect(ipv4Parse(d, 14, d.length - 14, info)).toBe(20);
    const hlen = tcpParse(d, info.l4Off, info.l4Len);
    expect(hlen).toBe(32);
    expect(tcpFlags(d, 34)).toBe(TCP_PSH | TCP_ACK);
    expect(text(d.subarray(info.l4Off + hlen, info.l4Off + info.l4Len))).toBe("hello-orzo\n");
    expect(tcpParseOptions(d, 34, 32, opts)).toBe(true);
    expect(opts.mss).toBe(0);
    expect(opts.wscale).toBe(-1);
    expect(opts.tsVal).toBe(267993636);
    expect(tcpChecksumOk4(d, 14, 34, info.l4Len)).toBe(true);
  });

  test("real IPv6 SYN", () => {
    const f = F.TCP6_SYN;
    expect(ipv6Parse(f, 14, f.length - 14, info)).toBe(40);
    expect(tcpParse(f, info.l4Off, info.l4Len)).toBe(40);
    expect(tcpSeq(f, 54)).toBe(1981845849);
    expect(tcpParseOptions(f, 54, 40, opts)).toBe(true);
    expect(opts.mss).toBe(1440);
    expect(tcpChecksumOk6(f, 14, 54, 40)).toBe(true);
    expect(tcpChecksumOk6(F.TCP6_SYN_ACK, 14, 54, 40)).toBe(true);
  });

  test("malformed headers and options", () => {
    const seg = (options: number[]) => {
      const b = new Uint8Array(20 + options.length);
      tcpEmit(b, 0, 1, 2, 0, 0, TCP_SYN, 0);
      b[12] = ((20 + options.length) / 4) << 4;
      b.set(options, 20);
      return b;
    };
    const parse = (options: number[]) => {
      const b = seg(options);
      return tcpParse(b, 0, b.length) < 0 ? "bad header" : tcpParseOptions(b, 0, b.length, opts);
    };
    expect(parse([2, 4, 5, 0xb4])).toBe(true);
    expect(opts.mss).toBe(1460);
    expect(parse([2, 3, 5, 1])).toBe(false);
    expect(parse([1, 1, 3, 3, 15, 0, 0, 0])).toBe(true);
    expect(opts.wscale).toBe(14);
    expect(parse([4, 2, 1, 1])).toBe(true);
    expect(opts.sackOk).toBe(true);
    expect(parse([8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).toBe(false);
    expect(parse([5, 3, 0, 0])).toBe(false);
    expect(parse([5, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])).toBe(true);
    expect(parse([30, 0, 0, 0])).toBe(false);
    expect(parse([30, 1, 0, 0])).toBe(false);
    expect(parse([30, 8, 0, 0])).toBe(false);
    expect(parse([30, 4, 0, 0])).toBe(true);
    expect(parse([1, 1, 1, 2])).toBe(false);
    expect(parse([0, 2, 1, 5])).toBe(true);
    expect(opts.mss).toBe(0);
    const b = seg([]);
    b[12] = 0x40;
    expect(tcpParse(b, 0, 20)).toBe(-1);
    b[12] = 0x60;
    expect(tcpParse(b, 0, 20)).toBe(-1);
    expect(tcpParse(b, 0, 19)).toBe(-1);
  });

  test("emit: SYN with MSS, NOP, window scale, byte-exact, reference checksum over IPv4 and IPv6", () => {
    const out = new Uint8Array(20 + 28);
    const src = inanyParse("192.0.2.1")!;
    const dst = inanyParse("192.0.2.20")!;
    ipv4Emit(out, 0, src, INANY_V4_OFF, dst, INANY_V4_OFF, IPPROTO_TCP, 28);
    expect(tcpEmit(out, 20, 8080, 40722, 0x01020304, 0xfffffffe, TCP_SYN | TCP_ACK, 65535, 65480, 7)).toBe(28);
    tcpSetChecksum4(out, 0, 20, 28);
    expect(hexOf(out.subarray(20))).toBe("1f909f1201020304fffffffe7012ffff43360000" + "0204ffc8" + "01030307");
    expect(referenceChecksum(pseudo4(out, 0, IPPROTO_TCP, 28), out.subarray(20))).toBe(0);
    expect(ipv4ChecksumOk(out, 0, 20)).toBe(true);
    expect(tcpParseOptions(out, 20, 28, opts)).toBe(true);
    expect([opts.mss, opts.wscale, opts.sackOk]).toEqual([65480, 7, false]);
    expect(tcpAckSeq(out, 20)).toBe(0xfffffffe);
    expect(tcpEmit(out, 20, 1, 2, 3, 4, TCP_ACK, 5)).toBe(20);
    expect(out[32]).toBe(0x50);
    expect(tcpEmit(out, 20, 1, 2, 3, 4, TCP_SYN, 5, 1460)).toBe(24);
    expect(tcpEmit(out, 30, 1, 2, 3, 4, TCP_SYN, 5, 1460, 7)).toBe(0);
    const v6 = new Uint8Array(40 + 20 + 5);
    ipv6Emit(v6, 0, inanyParse("2001:db8::1")!, 0, inanyParse("2001:db8::2")!, 0, IPPROTO_TCP, 25);
    tcpEmit(v6, 40, 1, 2, 3, 4, TCP_PSH | TCP_ACK, 100);
    v6.set([104, 101, 108, 108, 111], 60);
    tcpSetChecksum6(v6, 0, 40, 25);
    expect(referenceChecksum(pseudo6(v6, 0, IPPROTO_TCP, 25), v6.subarray(40))).toBe(0);
    expect(tcpChecksumOk6(v6, 0, 40, 25)).toBe(true);
  });
});

/**
 * Fuzz-style tests: every parser gets real frames truncated at every length, real frames with random bytes
 * flipped, and random buffers. None may throw; truncated frames must be reported invalid; and every result must
 * depend only on the bytes in [off, off + len): the same input placed at other offsets, surrounded by different
 * garbage, must decode identically.
 */
import { describe, expect, test } from "bun:test";
import { arpParse } from "../src/wire/arp.ts";
import { csumPartial } from "../src/wire/checksum.ts";
import { dhcpFqdnDecode, dhcpHeaderDecode, dhcpOptionsParse, dhcpParse } from "../src/wire/dhcp.ts";
import { dhcp6ClientFqdnDecode, dhcp6IaDecode, dhcp6Options, dhcp6Parse, dhcp6Xid } from "../src/wire/dhcpv6.ts";
import { dnsNameDecode, dnsNamesDecode } from "../src/wire/dnsname.ts";
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethParse } from "../src/wire/ethernet.ts";
import { icmpChecksumOk, icmpEchoId, icmpEchoSeq, icmpParse } from "../src/wire/icmp.ts";
import {
  NDP_OPT_DNSSL, NDP_OPT_MTU, NDP_OPT_PREFIX, NDP_OPT_RDNSS, icmp6ChecksumOk, icmp6Parse, ndpDnsslDecode, ndpMtuDecode,
  ndpOptionsParse, ndpParse, ndpPrefixDecode, ndpRdnssDecode,
} from "../src/wire/icmpv6.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3Info } from "../src/wire/ip.ts";
import { ipv4ChecksumOk, ipv4Parse } from "../src/wire/ipv4.ts";
import { ipv6Parse } from "../src/wire/ipv6.ts";
import { TcpOptions, tcpChecksumOk4, tcpChecksumOk6, tcpParse, tcpParseOptions } from "../src/wire/tcp.ts";
import { udpChecksumOk4, udpChecksumOk6, udpParse } from "../src/wire/udp.ts";
import { ALL_FRAMES, rng } from "./fixtures/wire-frames.ts";

const info = new L3Info();
/** Checksum verdicts as words that a validity check can look for. */
const csum = (ok: boolean) => (ok ? "csum-ok" : "csum-bad");
const tcpOpts = new TcpOptions();

/** Hex of len bytes at buf[off] (the parsers' outputs are compared as text). */
function hexAt(buf: Uint8Array, off: number, len: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + off, len).toString("hex");
}

/** Decodes a DHCPv4 message completely into text. */
function decodeDhcp(buf: Uint8Array, off: number, len: number): string {
  const opts = dhcpParse(buf, off, len);
  if (opts < 0) return "invalid:dhcp";
  const h = dhcpHeaderDecode(buf, off);
  const map = dhcpOptionsParse(buf, opts, off + len);
  if (map === null) return "invalid:dhcp-options";
  const fqdn = map.get(81);
  return JSON.stringify([h.op, h.xid, Array.from(h.chaddr), Array.from(h.yiaddr), [...map].map(([k, v]) => [k, Buffer.from(v).toString("hex")]), fqdn && dhcpFqdnDecode(fqdn)]);
}

/** Decodes a DHCPv6 message completely into text, offsets made relative to the message. */
function decodeDhcp6(buf: Uint8Array, off: number, len: number): string {
  const type = dhcp6Parse(buf, off, len);
  if (type < 0) return "invalid:dhcp6";
  const opts = dhcp6Options(buf, off + 4, off + len)!;
  const parts: unknown[] = [type, dhcp6Xid(buf, off)];
  for (const o of opts) {
    parts.push([o.code, o.off - off, hexAt(buf, o.off, o.len)]);
    if (o.code === 3 || o.code === 4) {
      const ia = dhcp6IaDecode(buf, o)!;
      parts.push([ia.iaid, ia.t1, ia.t2, ia.addresses.map((a) => [Array.from(a.addr), a.preferred, a.valid, a.options.length])]);
    }
    if (o.code === 24) parts.push(dnsNamesDecode(buf, o.off, o.len, false));
    if (o.code === 39) parts.push(dhcp6ClientFqdnDecode(buf, o));
  }
  return JSON.stringify(parts);
}

/** Decodes an ICMPv6 message (NDP included) into text. */
function decodeIcmp6(buf: Uint8Array, ipOff: number, off: number, len: number): string {
  const type = icmp6Parse(buf, off, len);
  if (type < 0) return "invalid:icmp6";
  const parts: unknown[] = [type, csum(icmp6ChecksumOk(buf, ipOff, off, len))];
  if (type >= 133 && type <= 136) {
    const opts = ndpParse(buf, off, len);
    if (opts < 0) return "invalid:ndp";
    for (const o of ndpOptionsParse(buf, opts, off + len)!) {
      parts.push([o.type, o.off - off, o.len]);
      if (o.type === NDP_OPT_PREFIX) parts.push(JSON.stringify(ndpPrefixDecode(buf, o.off)));
      if (o.type === NDP_OPT_MTU) parts.push(ndpMtuDecode(buf, o.off));
      if (o.type === NDP_OPT_RDNSS) parts.push(JSON.stringify(ndpRdnssDecode(buf, o.off, o.len)));
      if (o.type === NDP_OPT_DNSSL) parts.push(JSON.stringify(ndpDnsslDecode(buf, o.off, o.len)));
    }
  }
  return JSON.stringify(parts);
}

/** Decodes the L4 part described by info into text. */
function decodeL4(buf: Uint8Array, ipOff: number, v6: boolean): string {
  const { proto, l4Len } = info;
  const l4 = info.l4Off;
  const head = `${proto} ${l4 - ipOff} ${l4Len} ${info.fragment}`;
  if (info.fragment) return `${head} fragment`;
  if (proto === IPPROTO_UDP) {
    const ulen = udpParse(buf, l4, l4Len);
    if (ulen < 0) return `${head} invalid:udp`;
    const ok = v6 ? udpChecksumOk6(buf, ipOff, l4, ulen) : udpChecksumOk4(buf, ipOff, l4, ulen);
    const dport = (buf[l4 + 2] << 8) | buf[l4 + 3];
    const sport = (buf[l4] << 8) | buf[l4 + 1];
    let app = "";
    if (!v6 && (dport === 67 || dport === 68)) app = decodeDhcp(buf, l4 + 8, ulen - 8);
    if (v6 && (dport === 546 || dport === 547)) app = decodeDhcp6(buf, l4 + 8, ulen - 8);
    return `${head} udp ${sport} ${dport} ${ulen} ${csum(ok)} ${app}`;
  }
  if (proto === IPPROTO_TCP) {
    const hlen = tcpParse(buf, l4, l4Len);
    if (hlen < 0) return `${head} invalid:tcp`;
    if (!tcpParseOptions(buf, l4, hlen, tcpOpts)) return `${head} invalid:tcp-options`;
    const ok = v6 ? tcpChecksumOk6(buf, ipOff, l4, l4Len) : tcpChecksumOk4(buf, ipOff, l4, l4Len);
    return `${head} tcp ${hexAt(buf, l4, 20)} ${JSON.stringify(tcpOpts)} ${csum(ok)}`;
  }
  if (proto === IPPROTO_ICMP && !v6) {
    const type = icmpParse(buf, l4, l4Len);
    if (type < 0) return `${head} invalid:icmp`;
    return `${head} icmp ${type} ${icmpEchoId(buf, l4)} ${icmpEchoSeq(buf, l4)} ${csum(icmpChecksumOk(buf, l4, l4Len))}`;
  }
  if (proto === IPPROTO_ICMPV6 && v6) return `${head} ${decodeIcmp6(buf, ipOff, l4, l4Len)}`;
  return `${head} other`;
}

/** Runs every parser that applies to the frame in len bytes at buf[off]; the text names what was found. */
function decodeFrame(buf: Uint8Array, off: number, len: number): string {
  const type = ethParse(buf, off, len);
  if (type < 0) return "invalid:eth";
  const l3 = off + ETH_HLEN;
  const l3len = len - ETH_HLEN;
  if (type === ETHERTYPE_ARP) {
    const op = arpParse(buf, l3, l3len);
    return op < 0 ? "invalid:arp" : `arp ${op} ${hexAt(buf, l3, 28)}`;
  }
  if (type === ETHERTYPE_IPV4) {
    const hlen = ipv4Parse(buf, l3, l3len, info);
    if (hlen < 0) return "invalid:ipv4";
    return `ipv4 ${hlen} ${csum(ipv4ChecksumOk(buf, l3, hlen))} ${decodeL4(buf, l3, false)}`;
  }
  if (type === ETHERTYPE_IPV6) {
    const hlen = ipv6Parse(buf, l3, l3len, info);
    if (hlen < 0) return "invalid:ipv6";
    return `ipv6 ${hlen} ${decodeL4(buf, l3, true)}`;
  }
  return `ethertype ${type}`;
}

/** Copies bytes to offset off of a larger buffer whose other bytes are random garbage. */
function placed(bytes: Uint8Array, off: number, rand: () => number): Uint8Array {
  const b = new Uint8Array(off + bytes.length + 1 + Math.floor(rand() * 100));
  for (let i = 0; i < b.length; i++) b[i] = rand() * 256;
  b.set(bytes, off);
  return b;
}

/** Asserts decode(bytes) is the same at offset 0 and at random offsets amid different garbage; returns it. */
function stable(bytes: Uint8Array, decode: (buf: Uint8Array, off: number, len: number) => string, rand: () => number): string {
  const base = decode(bytes, 0, bytes.length);
  for (let k = 0; k < 2; k++) {
    const off = 1 + Math.floor(rand() * 40);
    expect(decode(placed(bytes, off, rand), off, bytes.length)).toBe(base);
  }
  return base;
}

const frames = Object.entries(ALL_FRAMES);

describe("wire fuzz", () => {
  test("every real frame decodes fully valid, identically at any offset amid garbage", () => {
    const rand = rng(1);
    for (const [name, f] of frames) {
      const d = stable(f, decodeFrame, rand);
      expect({ name, d, valid: !d.includes("invalid") && !d.includes("csum-bad") }).toEqual({ name, d, valid: true });
    }
  });

  test("every truncation of every real frame is invalid, and never reads past the cut", () => {
    const rand = rng(2);
    for (const [name, f] of frames) {
      for (let len = 0; len < f.length; len++) {
        const cut = f.slice(0, len);
        const d = decodeFrame(cut, 0, len);
        if (!d.includes("invalid")) throw new Error(`${name} truncated to ${len} decoded as ${d}`);
        const off = 1 + Math.floor(rand() * 16);
        expect(decodeFrame(placed(cut, off, rand), off, len)).toBe(d);
      }
    }
  });

  test("real frames with random bytes flipped never throw and stay within bounds", () => {
    const rand = rng(3);
    for (let t = 0; t < 4000; t++) {
      const [, f] = frames[t % frames.length];
      const b = f.slice();
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) b[Math.floor(rand() * b.length)] ^= 1 + Math.floor(rand() * 255);
      stable(b, decodeFrame, rand);
    }
  });

  test("random buffers, with and without plausible headers, never throw and stay within bounds", () => {
    const rand = rng(4);
    const types = [ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6];
    for (let t = 0; t < 4000; t++) {
      const b = new Uint8Array(Math.floor(rand() * 400));
      for (let i = 0; i < b.length; i++) b[i] = rand() * 256;
      if (b.length >= 15 && t % 4 !== 0) {
        const type = types[t % 3];
        b[12] = type >> 8;
        b[13] = type & 0xff;
        if (type === ETHERTYPE_IPV4) b[14] = 0x45;
        if (type === ETHERTYPE_IPV6) b[14] = 0x60;
        if (b.length >= 60 && type !== ETHERTYPE_ARP) {
          const l3 = b.length - 14;
          if (type === ETHERTYPE_IPV4) b.set([l3 >> 8, l3 & 0xff], 16);
          else b.set([(l3 - 40) >> 8, (l3 - 40) & 0xff, [6, 17, 58, 0, 44][t % 5]], 18);
          if (type === ETHERTYPE_IPV4) b[23] = [1, 6, 17][t % 3];
        }
      }
      stable(b, decodeFrame, rand);
    }
  });

  test("option and name decoders alone: random input, every truncation, bounded reads", () => {
    const rand = rng(5);
    const decoders: [string, (buf: Uint8Array, off: number, len: number) => string][] = [
      ["tcp options", (b, o, l) => (l < 20 ? "short" : `${tcpParseOptions(b, o, l - (l % 4), tcpOpts)} ${JSON.stringify(tcpOpts)}`)],
      ["dhcp options", (b, o, l) => JSON.stringify(dhcpOptionsParse(b, o, o + l) && [...dhcpOptionsParse(b, o, o + l)!])],
      ["dhcp", decodeDhcp],
      ["dhcp6", decodeDhcp6],
      ["ndp options", (b, o, l) => JSON.stringify(ndpOptionsParse(b, o, o + l)?.map((x) => [x.type, x.off - o, x.len]) ?? null)],
      ["ndp", (b, o, l) => `${Math.max(-1, ndpParse(b, o, l) - o)}`],
      ["names", (b, o, l) => JSON.stringify([dnsNamesDecode(b, o, l, true), dnsNamesDecode(b, o, l, false), dnsNameDecode(b, o, l)])],
      ["fqdn", (b, o, l) => JSON.stringify(dhcpFqdnDecode(b.slice(o, o + l)))],
      ["checksum", (b, o, l) => `${csumPartial(b, o, l, 0)}`],
    ];
    const seeds = Object.values(ALL_FRAMES).map((f) => f.subarray(14));
    for (const [name, decode] of decoders) {
      for (let t = 0; t < 600; t++) {
        let b: Uint8Array;
        if (t % 2 === 0) {
          const s = seeds[t % seeds.length];
          const start = Math.floor(rand() * Math.min(s.length, 64));
          b = s.slice(start, start + Math.floor(rand() * (s.length - start + 1)));
        } else {
          b = new Uint8Array(Math.floor(rand() * 300));
          for (let i = 0; i < b.length; i++) b[i] = rand() < 0.3 ? 0 : rand() < 0.5 ? Math.floor(rand() * 8) : rand() * 256;
        }
        try {
          stable(b, decode, rand);
        } catch (e) {
          throw new Error(`${name}: ${Buffer.from(b).toString("hex")}: ${e}`);
        }
      }
    }
  });
});

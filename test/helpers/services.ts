/**
 * What the L2 service tests share (no tests of its own): a recording Link, the NetConf orzo resolves for the test
 * host, a stand-in for the tap ingress that hands frames to the services, parsers that check every reply frame
 * layer by layer (checksums included), and more genuine client frames next to those in fixtures/wire-frames.ts.
 *
 * The extra frames were captured like the wire-layer ones: two throwaway namespaces joined by a veth pair
 * (client 02:00:5e:00:00:0a, server 02:00:5e:00:00:0b with 192.0.2.1/24 and 2001:db8:5::1/64), checksum offload
 * off, tcpdump on the server side, dnsmasq 2.90 serving; busybox 1.35.0 udhcpc and arping, ISC dhclient
 * 4.4.3-P1 (with `-sf /bin/true`, so nothing was configured). The namespaces were deleted afterwards.
 */
import { expect } from "bun:test";
import type { NetConf } from "../../src/netconf.ts";
import { L2Services } from "../../src/services/l2.ts";
import { Link } from "../../src/tap/link.ts";
import { rd16 } from "../../src/wire/bytes.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit, ethParse, formatMac, parseMac } from "../../src/wire/ethernet.ts";
import { icmp6ChecksumOk } from "../../src/wire/icmpv6.ts";
import { formatIPv4, formatIPv6, inanyParse } from "../../src/wire/inany.ts";
import { IPPROTO_ICMPV6, IPPROTO_UDP, L3Info } from "../../src/wire/ip.ts";
import { IP4_TTL, ipv4ChecksumOk, ipv4Emit, ipv4Parse } from "../../src/wire/ipv4.ts";
import { IP6_HOPS, ipv6Emit, ipv6Parse } from "../../src/wire/ipv6.ts";
import { udpChecksumOk4, udpChecksumOk6, udpEmit, udpParse, udpSetChecksum4, udpSetChecksum6 } from "../../src/wire/udp.ts";
import { hex } from "../fixtures/wire-frames.ts";

/** busybox udhcpc -B DISCOVER: broadcast flag set, parameter list 1 3 6 12 15 26 28 42 121, xid 0x1408f373. */
export const UDHCPC_DISCOVER_BROADCAST = hex(`
  ffffffffffff02005e00000a08004500014800000000401179a600000000ffffffff0044004301345d39010106001408f373
  000080000000000000000000000000000000000002005e00000a000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  00000000000000000000000000000000000000000000000000000000638253633501013902024037090103060c0f1a1c2a79
  0c096f727a6f67756573743c0c756468637020312e33352e303d070102005e00000aff00000000000000
`);

/** busybox udhcpc -B REQUEST for 192.0.2.16 from server 192.0.2.1. */
export const UDHCPC_REQUEST_BROADCAST = hex(`
  ffffffffffff02005e00000a08004500014d00000000401179a100000000ffffffff0044004301394040010106001408f373
  000380000000000000000000000000000000000002005e00000a000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  00000000000000000000000000000000000000000000000000000000638253633501033204c00002103604c0000201390202
  4037090103060c0f1a1c2a790c096f727a6f67756573743c0c756468637020312e33352e303d070102005e00000aff
`);

/**
 * ISC dhclient DISCOVER: TTL 128, host name "vm", parameter list 1 28 2 3 15 6 119 12 44 47 26 121 42, the
 * message padded to 300 bytes after END; xid 0x29b28e43.
 */
export const DHCLIENT_DISCOVER = hex(`
  ffffffffffff02005e00000a080045100148000000008011399600000000ffffffff0044004301349b630101060029b28e43
  000000000000000000000000000000000000000002005e00000a000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  00000000000000000000000000000000000000000000000000000000638253633501010c02766d370d011c02030f06770c2c
  2f1a792aff00000000000000000000000000000000000000000000000000000000000000000000000000
`);

/** ISC dhclient REQUEST for 192.0.2.16 (options 53, 54, 50, 12, 55). */
export const DHCLIENT_REQUEST = hex(`
  ffffffffffff02005e00000a080045100148000000008011399600000000ffffffff0044004301347e770101060029b28e43
  000000000000000000000000000000000000000002005e00000a000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
  00000000000000000000000000000000000000000000000000000000638253633501033604c00002013204c00002100c0276
  6d370d011c02030f06770c2c2f1a792aff00000000000000000000000000000000000000000000000000
`);

/** ISC dhclient -6 CONFIRM on restart with a lease for 2001:db8:5::10 (IA_NA, IAID 0x5e00000a); xid 0x80457f. */
export const DHCLIENT6_CONFIRM = hex(`
  33330001000202005e00000a86dd6006eb4e005c1101fe8000000000000000005efffe00000aff0200000000000000000000
  0001000202220223005cc1cb0480457f0001000e000100013299753302005e00000a00060008001700180027001f00080002
  0000000300285e00000a00000000000000000005001820010db80005000000000000000000100000000000000000
`);

/** ISC dhclient -6 -S INFORMATION-REQUEST: DUID-LL client id, ORO, elapsed time, no IA; xid 0x7b23c6. */
export const DHCLIENT6_INFO_REQUEST = hex(`
  33330001000202005e00000a86dd6006eb4e002c1101fe8000000000000000005efffe00000aff0200000000000000000000
  0001000202220223002c10d90b7b23c60001000a0003000102005e00000a00060008001700180027001f000800020000
`);

/** busybox arping -D probe: who-has 192.0.2.77 tell 0.0.0.0 (target MAC ff:ff:ff:ff:ff:ff). */
export const ARP_PROBE = hex(`
  ffffffffffff02005e00000a0806000108000604000102005e00000a00000000ffffffffffffc000024d
`);

/** Linux unicast NS (reachability check): fe80::5eff:fe00:a asks fe80::5eff:fe00:b, source link-layer option. */
export const NEIGHBOR_SOLICITATION_UNICAST = hex(`
  02005e00000b02005e00000a86dd6000000000203afffe8000000000000000005efffe00000afe8000000000000000005eff
  fe00000b870004f600000000fe8000000000000000005efffe00000b010102005e00000a
`);

/** The client MAC of every captured frame. */
export const CLIENT_MAC = parseMac("02:00:5e:00:00:0a")!;
/** Our MAC (orzo's default). */
export const OUR_MAC = parseMac("9a:55:9a:55:9a:55")!;

/** An inany from address text. */
export const ip = (text: string): Uint8Array => inanyParse(text)!;
/** Hex text of bytes. */
export const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** A Link that keeps what it is asked to write. */
export class RecordingLink extends Link {
  /** Frames written, in order. */
  readonly frames: Uint8Array[] = [];
  /** Whether a guest is there (passt: a client connected). */
  up = true;

  /** arenaBytes: room for queued frames (the default fits one 64 KiB frame; the largest UDP datagram needs more). */
  constructor(arenaBytes = 1 << 16, maxFrames = 64) {
    super(arenaBytes, maxFrames, 0);
  }

  get connected(): boolean {
    return this.up;
  }

  /** Flushes and returns the frames written since the last call. */
  take(): Uint8Array[] {
    this.flush();
    return this.frames.splice(0);
  }

  protected writeQueued(): void {
    for (let i = 0; i < this.queued; i++) this.frames.push(this.out.bytes.slice(this.queuedOff[i], this.queuedOff[i] + this.queuedLen[i]));
  }
}

/**
 * The NetConf orzo resolves on the test host (198.51.100.1/24 via 198.51.100.254, 2001:db8:1::1/64 via fe80::fe,
 * resolv.conf naming the router, search orzo.test), with DNS and search passing on and a host name and FQDN set.
 */
export function testNetConf(): NetConf {
  const guest4 = ip("198.51.100.1");
  const guest6 = ip("2001:db8:1::1");
  return {
    mtu: 65520,
    ourMac: OUR_MAC.slice(),
    guestMac: CLIENT_MAC.slice(),
    ip4: {
      enabled: true, localMode: false, addr: guest4, prefixLen: 24, gateway: ip("198.51.100.254"),
      ourTapAddr: ip("198.51.100.254"), addrSeen: guest4.slice(), addrFixed: false, dns: [ip("198.51.100.254")],
      dnsMatch: new Uint8Array(16), dnsHost: ip("198.51.100.254"), mapHostLoopback: ip("198.51.100.254"),
      mapGuestAddr: new Uint8Array(16), outboundAddr: new Uint8Array(16),
    },
    ip6: {
      enabled: true, localMode: false, addr: guest6, prefixLen: 64, gateway: ip("fe80::fe"), ourTapLinkLocal: ip("fe80::fe"),
      addrSeen: guest6.slice(), addrLinkLocalSeen: new Uint8Array(16), addrFixed: false, dns: [ip("2001:db8:1::fe")],
      dnsMatch: new Uint8Array(16), dnsHost: ip("2001:db8:1::fe"), mapHostLoopback: ip("fe80::fe"), mapGuestAddr: new Uint8Array(16),
      outboundAddr: new Uint8Array(16),
    },
    searchDomains: ["orzo.test"],
    hostname: "guest",
    fqdn: "guest.orzo.test",
    dhcpDns: true, dhcpSearch: true,
    noDhcp: false, noDhcpv6: false, noNdp: false, noRa: false, noIcmp: false, noTcp: false, noUdp: false,
  };
}

/** Services over a fresh recording link and NetConf (changed by tweak first, if given). */
export function setup(tweak?: (nc: NetConf) => void): { nc: NetConf; link: RecordingLink; svc: L2Services } {
  const nc = testNetConf();
  tweak?.(nc);
  const link = new RecordingLink();
  return { nc, link, svc: new L2Services(nc, link) };
}

/**
 * Hands a frame to the services as the tap ingress does, from offset `at` of a larger buffer (so no service may
 * assume the frame starts at 0). Returns ndp()'s answer for ICMPv6, else undefined.
 */
export function deliver(svc: L2Services, frame: Uint8Array, at = 0): boolean | undefined {
  const buf = new Uint8Array(at + frame.length + 7);
  buf.set(frame, at);
  const type = ethParse(buf, at, frame.length);
  const info = new L3Info();
  const l3 = at + 14;
  if (type === ETHERTYPE_ARP) svc.arp(buf, l3, frame.length - 14);
  else if (type === ETHERTYPE_IPV4 && ipv4Parse(buf, l3, frame.length - 14, info) > 0 && info.proto === IPPROTO_UDP) {
    if (rd16(buf, info.l4Off + 2) === 67) svc.dhcp(buf, at, l3, info.l4Off, info.l4Len);
  } else if (type === ETHERTYPE_IPV6 && ipv6Parse(buf, l3, frame.length - 14, info) > 0) {
    if (info.proto === IPPROTO_ICMPV6) return svc.ndp(buf, l3, info.l4Off, info.l4Len, 0);
    if (info.proto === IPPROTO_UDP && rd16(buf, info.l4Off + 2) === 547) svc.dhcpv6(buf, at, l3, info.l4Off, info.l4Len);
  }
  return undefined;
}

/** The layers of a frame orzo sent, checked on the way (lengths, checksums, TTL / hop limit 255). */
export interface SentFrame {
  frame: Uint8Array;
  dstMac: string;
  srcMac: string;
  /** Source and destination address as text. */
  src: string;
  dst: string;
  /** Offset and length of the payload: UDP payload or ICMPv6 message. */
  off: number;
  len: number;
  sport: number;
  dport: number;
  /** IPv6 flow label. */
  flowLabel: number;
}

/** Parses a frame orzo sent over IPv4/UDP, checking the header and UDP checksums, DF and TTL 255. */
export function parseUdp4(frame: Uint8Array): SentFrame {
  expect(frame.length).toBeGreaterThanOrEqual(60);
  expect(ethParse(frame, 0, frame.length)).toBe(ETHERTYPE_IPV4);
  const info = new L3Info();
  expect(ipv4Parse(frame, 14, frame.length - 14, info)).toBe(20);
  expect(ipv4ChecksumOk(frame, 14, 20)).toBe(true);
  expect(frame[14 + IP4_TTL]).toBe(255);
  expect(rd16(frame, 14 + 6)).toBe(0x4000);
  expect(info.proto).toBe(IPPROTO_UDP);
  const ulen = udpParse(frame, info.l4Off, info.l4Len);
  expect(ulen).toBe(info.l4Len);
  expect(rd16(frame, info.l4Off + 6)).not.toBe(0);
  expect(udpChecksumOk4(frame, 14, info.l4Off, ulen)).toBe(true);
  return {
    frame, dstMac: formatMac(frame, 0), srcMac: formatMac(frame, 6), src: formatIPv4(frame, 26), dst: formatIPv4(frame, 30),
    off: info.l4Off + 8, len: ulen - 8, sport: rd16(frame, info.l4Off), dport: rd16(frame, info.l4Off + 2), flowLabel: 0,
  };
}

/** Parses a frame orzo sent over IPv6 (UDP or ICMPv6), checking lengths, the checksum and hop limit 255. */
export function parseIp6(frame: Uint8Array, proto: number): SentFrame {
  expect(frame.length).toBeGreaterThanOrEqual(60);
  expect(ethParse(frame, 0, frame.length)).toBe(ETHERTYPE_IPV6);
  const info = new L3Info();
  expect(ipv6Parse(frame, 14, frame.length - 14, info)).toBe(40);
  expect(info.proto).toBe(proto);
  expect(frame[14 + IP6_HOPS]).toBe(255);
  const base = {
    frame, dstMac: formatMac(frame, 0), srcMac: formatMac(frame, 6), src: formatIPv6(frame, 22), dst: formatIPv6(frame, 38),
    flowLabel: ((frame[15] & 0xf) << 16) | rd16(frame, 16),
  };
  if (proto === IPPROTO_ICMPV6) {
    expect(icmp6ChecksumOk(frame, 14, info.l4Off, info.l4Len)).toBe(true);
    return { ...base, off: info.l4Off, len: info.l4Len, sport: 0, dport: 0 };
  }
  const ulen = udpParse(frame, info.l4Off, info.l4Len);
  expect(ulen).toBe(info.l4Len);
  expect(udpChecksumOk6(frame, 14, info.l4Off, ulen)).toBe(true);
  return { ...base, off: info.l4Off + 8, len: ulen - 8, sport: rd16(frame, info.l4Off), dport: rd16(frame, info.l4Off + 2) };
}

/** Builds a client frame: Ethernet, IPv4 (TTL 64) and UDP 68 → 67 around a DHCP message, with valid checksums. */
export function dhcpFrame(msg: Uint8Array, srcMac = CLIENT_MAC): Uint8Array {
  const f = new Uint8Array(42 + msg.length);
  ethEmit(f, 0, Uint8Array.of(255, 255, 255, 255, 255, 255), 0, srcMac, 0, ETHERTYPE_IPV4);
  ipv4Emit(f, 14, new Uint8Array(4), 0, Uint8Array.of(255, 255, 255, 255), 0, IPPROTO_UDP, 8 + msg.length, 64);
  udpEmit(f, 34, 68, 67, msg.length);
  f.set(msg, 42);
  udpSetChecksum4(f, 14, 34, 8 + msg.length);
  return f;
}

/** Builds a client frame: Ethernet, IPv6 (hop limit 1) and UDP 546 → 547 around a DHCPv6 message. */
export function dhcp6Frame(msg: Uint8Array, src = "fe80::5eff:fe00:a", dst = "ff02::1:2"): Uint8Array {
  const f = new Uint8Array(62 + msg.length);
  ethEmit(f, 0, Uint8Array.of(0x33, 0x33, 0, 1, 0, 2), 0, CLIENT_MAC, 0, ETHERTYPE_IPV6);
  ipv6Emit(f, 14, ip(src), 0, ip(dst), 0, IPPROTO_UDP, 8 + msg.length, 0, 1);
  udpEmit(f, 54, 546, 547, msg.length);
  f.set(msg, 62);
  udpSetChecksum6(f, 14, 54, 8 + msg.length);
  return f;
}

/** The DHCP (or DHCPv6) message inside a captured client frame: the UDP payload. */
export function payloadOf(frame: Uint8Array): Uint8Array {
  const v6 = ethParse(frame, 0, frame.length) === ETHERTYPE_IPV6;
  const l4 = v6 ? 54 : 14 + ((frame[14] & 0xf) << 2);
  return frame.slice(l4 + 8, l4 + rd16(frame, l4 + 4));
}

/** requests = replies + disabled + malformed + ignored, for each protocol. */
export function expectStatsBalanced(stats: Record<string, number>): void {
  for (const p of ["arp", "ndp", "dhcp", "dhcpv6"]) {
    expect(stats[`${p}.requests`]).toBe(stats[`${p}.replies`] + stats[`${p}.disabled`] + stats[`${p}.malformed`] + stats[`${p}.ignored`]);
  }
}

/**
 * The tap ingress on hostile input: genuine frames truncated at every length and with random bytes changed, fully
 * random frames, and valid Ethernet + IPv4/IPv6 headers around random ICMP, ICMPv6, TCP and UDP, all handed to a
 * real L2Ingress attached to a real EventLoop, flow table, L2 services and ping sockets. The test thread runs in a
 * private network namespace meanwhile (only lo), so echo requests to fuzzed addresses cannot leave the machine.
 *
 * Checked for every frame: nothing throws; it is counted exactly once at the ingress (a drop reason, or ARP,
 * IPv4 or IPv6 accepted); an accepted IP frame is then counted exactly once more (an L4 drop reason, or taken by
 * DHCP, DHCPv6, NDP or one of the ingress's L4 handlers: ping flows, TCP...); every frame orzo sends back is well
 * formed, checksums included. At the end every flow is freed and no fd is left open. The seed is fixed
 * (ORZO_FUZZ_SEED overrides it) and appears in every failure.
 *
 * The ingress counts nothing for frames it hands to an L4 handler, so the test counts the calls itself: every
 * object on the ingress with a fromTap method is wrapped. Fragments (IPv4 and IPv6) are dropped before acceptance.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { flowTableInit } from "../src/flows/epoll.ts";
import type { FlowTable } from "../src/flows/flow.ts";
import type { PingFlows } from "../src/flows/ping.ts";
import { EventLoop } from "../src/loop.ts";
import type { L2Services } from "../src/services/l2.ts";
import { Mem } from "../src/syscalls/mem.ts";
import { L2Ingress } from "../src/tap/ingress.ts";
import { arpParse } from "../src/wire/arp.ts";
import { rd16, wr16 } from "../src/wire/bytes.ts";
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit, macEqual } from "../src/wire/ethernet.ts";
import { icmpChecksumOk, icmpSetChecksum } from "../src/wire/icmp.ts";
import { icmp6ChecksumOk, icmp6SetChecksum } from "../src/wire/icmpv6.ts";
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, L3Info } from "../src/wire/ip.ts";
import { ipv4ChecksumOk, ipv4HeaderChecksum, ipv4Parse } from "../src/wire/ipv4.ts";
import { ipv6Parse } from "../src/wire/ipv6.ts";
import { tcpChecksumOk4, tcpChecksumOk6, tcpParse, tcpSetChecksum4, tcpSetChecksum6 } from "../src/wire/tcp.ts";
import { udpChecksumOk4, udpChecksumOk6, udpParse, udpSetChecksum4, udpSetChecksum6 } from "../src/wire/udp.ts";
import * as F from "./fixtures/wire-frames.ts";
import { inPrivateNetns } from "./helpers/private-netns.ts";
import * as S from "./helpers/services.ts";

const SEED = Number(process.env.ORZO_FUZZ_SEED ?? 0x1e9e55) >>> 0;
/**
 * Flows at most: caps the sockets (ping, UDP, TCP) a test can open; fuzzed frames ask for many more, so the
 * table-full paths are exercised too.
 */
const FLOW_CAPACITY = 64;
/** Echo identifiers of the structured frames: few, so their flows fit the table. */
const ECHO_IDS = [1, 2, 3];
/** The echo identifier of the final clean requests, used by no fuzzed frame. */
const CLEAN_ID = 0x7e57;
const MAX_RANDOM_LEN = 1600;
/** Longer than any flow timeout: every flow expires. */
const EXPIRE_ALL_MS = 24 * 3600 * 1000;

/** Every genuine frame: the captured ones and the service clients'. */
const GENUINE: Uint8Array[] = [
  ...Object.values(F.ALL_FRAMES), S.ARP_PROBE, S.NEIGHBOR_SOLICITATION_UNICAST, S.UDHCPC_DISCOVER_BROADCAST,
  S.UDHCPC_REQUEST_BROADCAST, S.DHCLIENT_DISCOVER, S.DHCLIENT_REQUEST, S.DHCLIENT6_CONFIRM, S.DHCLIENT6_INFO_REQUEST,
];
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const fdCount = (): number => readdirSync("/proc/self/fd").length;

/** A real ingress on a recording link, with counters of everything the accounting needs. */
class Harness {
  readonly loop = new EventLoop({ timeoutMs: 50 });
  readonly flows: FlowTable = flowTableInit(FLOW_CAPACITY, this.loop.id);
  readonly nc = S.testNetConf();
  readonly link = new S.RecordingLink();
  readonly ingress = new L2Ingress(this.nc);
  readonly services: L2Services;
  readonly ping: PingFlows;
  /** Frames handed to the ingress. */
  fed = 0;
  /** Calls into each L4 handler of the ingress, by its property name ("ping", "tcpInput"...). */
  readonly handled: Record<string, number> = {};
  /** What went wrong, each with the seed and the frame, for one readable failure at the end. */
  readonly problems: string[] = [];
  /** Frames sent to the guest, by kind. */
  readonly sent: Record<string, number> = {};
  /** Echo replies sent to the guest: family, identifier and sequence number. */
  readonly echoReplies: string[] = [];
  private readonly mem = new Mem(4096);
  private readonly info = new L3Info();

  constructor(readonly seed: number, private readonly random: () => number) {
    this.ingress.attach(this.loop, this.link, false);
    this.loop.onFlush((now) => {
      this.flows.defer(now, false);
      this.link.flush();
    });
    // The ingress owns its services and handlers; the test reads their counters and counts calls into handlers.
    this.services = this.ingress["services"]!;
    this.ping = this.ingress["ping"]!;
    const ingress = this.ingress as unknown as Record<string, { fromTap?: (...args: unknown[]) => void } | undefined>;
    for (const name of Object.keys(ingress)) {
      const handler = ingress[name];
      if (typeof handler?.fromTap !== "function") continue;
      const fromTap = handler.fromTap.bind(handler);
      this.handled[name] = 0;
      handler.fromTap = (...args: unknown[]) => {
        this.handled[name]++;
        fromTap(...args);
      };
    }
  }

  /** Frames accounted at the ingress: every drop reason before acceptance, and the accepted kinds. */
  ingressTotal(): number {
    const d = this.ingress.drops;
    const c = this.ingress.counts;
    return d.runt + d.ethertype + d.ipv4Malformed + d.ipv6Malformed + d.fragment + d.loopback + c.arp + c.ipv4 + c.ipv6;
  }

  /** Accepted IPv4/IPv6 frames accounted after acceptance: L4 drop reasons, and what took them. */
  l4Total(): number {
    const d = this.ingress.drops;
    const s = this.services.stats;
    let handled = 0;
    for (const name in this.handled) handled += this.handled[name];
    return d.icmpOff + d.udpMalformed + d.protocol + s["dhcp.requests"] + s["dhcpv6.requests"] + s["ndp.requests"] + handled;
  }

  /** Hands len bytes of frame to the ingress at a varying offset, random bytes behind, and checks the counting. */
  feed(frame: Uint8Array, len = frame.length): void {
    const b = this.mem.bytes;
    const at = this.fed % 13;
    b.set(frame.subarray(0, len), at);
    for (let i = at + len; i < at + len + 64; i++) b[i] = this.random() * 256;
    const total = this.ingressTotal();
    const ip = this.ingress.counts.ipv4 + this.ingress.counts.ipv6;
    const l4 = this.l4Total();
    const arp = this.ingress.counts.arp - this.services.stats["arp.requests"];
    this.fed++;
    try {
      this.ingress.frame(b, this.mem.addr, at, len, performance.now());
      this.ingress.flushInput();
    } catch (e) {
      this.problem(`threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, frame, len);
    }
    const accepted = this.ingress.counts.ipv4 + this.ingress.counts.ipv6 - ip;
    if (this.ingressTotal() - total !== 1) this.problem(`counted ${this.ingressTotal() - total} times at the ingress`, frame, len);
    if (this.l4Total() - l4 !== accepted) this.problem(`accepted ${accepted} times, counted ${this.l4Total() - l4} times after`, frame, len);
    if (this.ingress.counts.arp - this.services.stats["arp.requests"] !== arp) this.problem("ARP count and ARP service disagree", frame, len);
    if (this.fed % 32 === 0) this.loop.runOnce(0);
    this.checkSent();
  }

  /** Runs the loop until a condition holds (bounded), checking what is sent. */
  runUntil(done: () => boolean, timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.loop.runOnce(10);
      this.checkSent();
      if (done()) return true;
      if (performance.now() > deadline) return false;
    }
  }

  /** Runs the loop until a cycle has nothing to dispatch (pending replies in, closed flows freed). */
  settle(): void {
    this.runUntil(() => this.loop.runOnce(0) === 0, 2000);
    this.checkSent();
  }

  /** Frees every flow as if a day had passed (each closing its sockets, TCP resetting the guest's side). */
  expireAll(): void {
    this.flows.defer(performance.now() + EXPIRE_ALL_MS, true);
    this.link.flush();
    this.checkSent();
  }

  /** Settles, then frees every flow and the loop. */
  close(): void {
    try {
      this.settle();
    } finally {
      this.expireAll();
      this.loop.close();
    }
  }

  private problem(what: string, frame: Uint8Array, len: number): void {
    if (this.problems.length < 20) this.problems.push(`seed ${this.seed}, frame ${this.fed} (${len} bytes: ${hexOf(frame.subarray(0, Math.min(len, 120)))}): ${what}`);
  }

  private checkSent(): void {
    for (const f of this.link.take()) {
      const kind = this.sentKind(f);
      if (kind.startsWith("bad")) {
        if (this.problems.length < 20) this.problems.push(`seed ${this.seed}, after frame ${this.fed}: sent ${kind}: ${hexOf(f.subarray(0, 120))}`);
      } else {
        this.sent[kind] = (this.sent[kind] ?? 0) + 1;
      }
    }
  }

  /** What a frame sent to the guest is ("arp", "udp4", "icmp6-129"...), or "bad: why". */
  private sentKind(f: Uint8Array): string {
    const info = this.info;
    if (f.length < 60) return "bad: shorter than 60 bytes";
    if (!macEqual(f, 6, this.nc.ourMac, 0)) return "bad: not from our MAC";
    const type = rd16(f, 12);
    if (type === ETHERTYPE_ARP) return arpParse(f, ETH_HLEN, f.length - ETH_HLEN) > 0 ? "arp" : "bad: ARP";
    if (type === ETHERTYPE_IPV4) {
      if (ipv4Parse(f, ETH_HLEN, f.length - ETH_HLEN, info) !== 20 || info.fragment) return "bad: IPv4 header";
      if (!ipv4ChecksumOk(f, ETH_HLEN, 20)) return "bad: IPv4 header checksum";
      if (info.proto === IPPROTO_UDP) {
        const ok = udpParse(f, info.l4Off, info.l4Len) === info.l4Len && udpChecksumOk4(f, ETH_HLEN, info.l4Off, info.l4Len);
        return ok ? "udp4" : "bad: UDP over IPv4";
      }
      if (info.proto === IPPROTO_TCP) {
        const ok = tcpParse(f, info.l4Off, info.l4Len) >= 20 && tcpChecksumOk4(f, ETH_HLEN, info.l4Off, info.l4Len);
        return ok ? "tcp4" : "bad: TCP over IPv4";
      }
      if (info.proto !== IPPROTO_ICMP || info.l4Len < 8) return "bad: IPv4 protocol";
      if (!icmpChecksumOk(f, info.l4Off, info.l4Len)) return "bad: ICMP checksum";
      if (f[info.l4Off] === 0) this.echoReplies.push(`4 ${rd16(f, info.l4Off + 4)} ${rd16(f, info.l4Off + 6)}`);
      return `icmp4-${f[info.l4Off]}`;
    }
    if (type !== ETHERTYPE_IPV6) return "bad: ethertype";
    if (ipv6Parse(f, ETH_HLEN, f.length - ETH_HLEN, info) !== 40) return "bad: IPv6 header";
    if (info.proto === IPPROTO_UDP) {
      const ok = udpParse(f, info.l4Off, info.l4Len) === info.l4Len && udpChecksumOk6(f, ETH_HLEN, info.l4Off, info.l4Len);
      return ok ? "udp6" : "bad: UDP over IPv6";
    }
    if (info.proto === IPPROTO_TCP) {
      const ok = tcpParse(f, info.l4Off, info.l4Len) >= 20 && tcpChecksumOk6(f, ETH_HLEN, info.l4Off, info.l4Len);
      return ok ? "tcp6" : "bad: TCP over IPv6";
    }
    if (info.proto !== IPPROTO_ICMPV6 || info.l4Len < 8) return "bad: IPv6 protocol";
    if (!icmp6ChecksumOk(f, ETH_HLEN, info.l4Off, info.l4Len)) return "bad: ICMPv6 checksum";
    if (f[info.l4Off] === 129) this.echoReplies.push(`6 ${rd16(f, info.l4Off + 4)} ${rd16(f, info.l4Off + 6)}`);
    return `icmp6-${f[info.l4Off]}`;
  }
}

/**
 * Runs body on a fresh harness in a private network namespace, closes everything, and checks what every test
 * checks: no problem recorded, every frame counted, the services' own counters balanced, every flow freed and
 * no fd left open. Returns the harness for the test's own expectations.
 */
function fuzz(seedOffset: number, body: (h: Harness, random: () => number) => void): Harness {
  const seed = (SEED + seedOffset) >>> 0;
  const random = F.rng(seed);
  const fds = fdCount();
  const h = inPrivateNetns(() => {
    const h = new Harness(seed, random);
    try {
      body(h, random);
    } finally {
      h.close();
    }
    return h;
  });
  expect({ seed, problems: h.problems }).toEqual({ seed, problems: [] });
  expect({ seed, frames: h.ingress.counts.frames, ingressTotal: h.ingressTotal() }).toEqual({ seed, frames: h.fed, ingressTotal: h.fed });
  const c = h.ingress.counts;
  expect({ seed, l4: h.l4Total() }).toEqual({ seed, l4: c.ipv4 + c.ipv6 });
  S.expectStatsBalanced(h.services.stats);
  // Each call into the ping flows is counted as a request, or dropped before being one.
  const p = h.ping.stats;
  expect(h.handled.ping).toBeGreaterThanOrEqual(p.requests);
  expect(h.handled.ping).toBeLessThanOrEqual(p.requests + p.dropped);
  expect(p.socketRefused).toBe(0);
  expect({ seed, flows: h.flows.count, fds: fdCount() }).toEqual({ seed, flows: 0, fds });
  expect(h.loop.handlerErrors).toBe(0);
  return h;
}

/** Every L4 handler the ingress has (at least the ping flows) took some frames. */
function expectEveryHandlerUsed(h: Harness): void {
  expect(Object.keys(h.handled)).toContain("ping");
  for (const [name, calls] of Object.entries(h.handled)) expect({ seed: h.seed, name, used: calls > 0 }).toEqual({ seed: h.seed, name, used: true });
}

/** Random bytes. */
function randomBytes(random: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = random() * 256;
  return b;
}

/** A random integer in [lo, hi]. */
function between(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

/** A random item. */
function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

const v4 = (text: string): number[] => text.split(".").map(Number);
const v6 = (text: string): Uint8Array => S.ip(text);
const GUEST_SRC4 = [v4("198.51.100.1"), v4("198.51.100.7")];
/** 198.51.100.254 is the map-host-loopback address (pings the namespace's lo); the others are unreachable. */
const ECHO_DST4 = [v4("198.51.100.254"), v4("198.51.100.254"), v4("198.51.100.1"), v4("192.0.2.1"), v4("255.255.255.255")];
const OTHER_DST4 = [v4("198.51.100.254"), v4("255.255.255.255"), v4("127.0.0.2"), v4("0.0.0.0"), v4("224.0.0.1")];
const GUEST_SRC6 = [v6("fe80::5eff:fe00:a"), v6("2001:db8:1::1")];
/** fe80::fe is the map-host-loopback address (pings ::1); the others are unreachable. */
const ECHO_DST6 = [v6("fe80::fe"), v6("fe80::fe"), v6("2001:db8:1::fe"), v6("ff02::1"), v6("2001:db8:5::1")];
const OTHER_DST6 = [v6("fe80::fe"), v6("ff02::2"), v6("ff02::1:2"), v6("::1"), v6("2001:db8:1::fe")];
const DHCP_PAYLOADS = [F.DHCP_DISCOVER, F.DHCP_REQUEST, S.UDHCPC_DISCOVER_BROADCAST, S.DHCLIENT_REQUEST].map(S.payloadOf);
const DHCP6_PAYLOADS = [F.DHCP6_SOLICIT, F.DHCP6_REQUEST, S.DHCLIENT6_CONFIRM, S.DHCLIENT6_INFO_REQUEST].map(S.payloadOf);
/** Extension headers the IPv6 walk skips (44 and 51 have their own layouts). */
const EXT_HEADERS = [0, 43, 60, 44, 51, 135, 139, 140, 253, 254];

/**
 * Writes an L4 message of protocol proto at b[l4] (IP header at b[ip], already holding the addresses) and returns
 * its length. Checksums are usually right; ICMP is mostly echo requests (identifiers from ECHO_IDS) or, over
 * IPv6, NDP types; UDP goes to the DHCP/DHCPv6 port half the time, often with a genuine client message.
 */
function l4Random(random: () => number, b: Uint8Array, ip: number, l4: number, proto: number, v6: boolean): number {
  let len: number;
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const echo = random() < 0.6;
    const ndp = v6 && !echo && random() < 0.6;
    len = 8 + between(random, 0, ndp ? 64 : 200);
    b.set(randomBytes(random, len), l4);
    if (echo) {
      b[l4] = v6 ? 128 : 8;
      b[l4 + 1] = 0;
      wr16(b, l4 + 4, pick(random, ECHO_IDS));
    } else if (ndp) {
      // Half of them without options or target: an RS like that is one orzo answers.
      if (random() < 0.5) b.fill(0, l4, l4 + len);
      b[l4] = between(random, 133, 137);
      b[l4 + 1] = random() < 0.9 ? 0 : b[l4 + 1];
    } else if (b[l4] === (v6 ? 128 : 8)) {
      // A random type that came out as an echo request would carry a random identifier: a flow of its own.
      b[l4] ^= 1;
    }
    if (random() < 0.85) {
      if (v6) icmp6SetChecksum(b, ip, l4, len);
      else icmpSetChecksum(b, l4, len);
    }
  } else if (proto === IPPROTO_UDP) {
    const service = random() < 0.5;
    const payload = service && random() < 0.6 ? pick(random, v6 ? DHCP6_PAYLOADS : DHCP_PAYLOADS) : randomBytes(random, between(random, 0, 300));
    len = 8 + payload.length;
    wr16(b, l4, service ? (v6 ? 546 : 68) : between(random, 0, 0xffff));
    wr16(b, l4 + 2, service ? (v6 ? 547 : 67) : pick(random, [53, 123, between(random, 0, 0xffff)]));
    wr16(b, l4 + 4, random() < 0.8 ? len : between(random, 0, len + 16));
    b.set(payload, l4 + 8);
    if (random() < 0.8) {
      if (v6) udpSetChecksum6(b, ip, l4, len);
      else udpSetChecksum4(b, ip, l4, len);
    } else {
      wr16(b, l4 + 6, between(random, 0, 0xffff));
    }
  } else {
    len = between(random, 0, 120);
    b.set(randomBytes(random, len), l4);
    if (proto === IPPROTO_TCP && len >= 20) {
      b[l4 + 12] = (between(random, 5, 15) << 4) | (b[l4 + 12] & 0xf);
      if (v6) tcpSetChecksum6(b, ip, l4, len);
      else tcpSetChecksum4(b, ip, l4, len);
    }
  }
  return len;
}

/** An Ethernet + IPv4 frame around a random L4 message, its header fields sometimes wrong. Returns its length. */
function frame4(random: () => number, b: Uint8Array): number {
  const r = random();
  const proto = r < 0.35 ? IPPROTO_ICMP : r < 0.7 ? IPPROTO_UDP : r < 0.9 ? IPPROTO_TCP : between(random, 0, 255);
  ethEmit(b, 0, pick(random, [S.OUR_MAC, Uint8Array.of(255, 255, 255, 255, 255, 255)]), 0, S.CLIENT_MAC, 0, ETHERTYPE_IPV4);
  const ip = ETH_HLEN;
  const ihlRoll = random();
  const ihl = ihlRoll < 0.8 ? 5 : ihlRoll < 0.92 ? between(random, 6, 15) : between(random, 0, 4);
  const hlen = Math.max(ihl, 5) * 4;
  b.set(randomBytes(random, hlen), ip);
  b[ip] = ((random() < 0.97 ? 4 : between(random, 0, 15)) << 4) | ihl;
  const frag = random();
  wr16(b, ip + 6, frag < 0.8 ? 0x4000 : frag < 0.88 ? 0 : frag < 0.94 ? 0x2000 : between(random, 0, 0xffff));
  b[ip + 8] = 64;
  b[ip + 9] = proto;
  const icmp = proto === IPPROTO_ICMP;
  const loop = random() < 0.03;
  b.set(loop ? v4("127.0.0.1") : icmp || random() < 0.7 ? pick(random, GUEST_SRC4) : randomBytes(random, 4), ip + 12);
  b.set(icmp ? pick(random, ECHO_DST4) : random() < 0.7 ? pick(random, OTHER_DST4) : randomBytes(random, 4), ip + 16);
  if (proto === IPPROTO_UDP && random() < 0.3) b.set([0, 0, 0, 0], ip + 12);
  const l4 = ip + hlen;
  const l4Len = l4Random(random, b, ip, l4, proto, false);
  const total = hlen + l4Len;
  const lenRoll = random();
  // Wrong total lengths: beyond the frame, shorter than the header, or cutting into the UDP header.
  wr16(b, ip + 2, lenRoll < 0.8 ? total : lenRoll < 0.9 ? between(random, 0, total + 40) : hlen + between(random, 0, 7));
  if (random() < 0.9) wr16(b, ip + 10, ipv4HeaderChecksum(b, ip, hlen));
  // L4 checksums were computed over the true length; a changed total length leaves them wrong, as it should.
  return padded(random, b, ETH_HLEN + total);
}

/** An Ethernet + IPv6 frame: an extension header chain (sometimes running off the end) and a random L4 message. */
function frame6(random: () => number, b: Uint8Array): number {
  const r = random();
  const proto = r < 0.4 ? IPPROTO_ICMPV6 : r < 0.7 ? IPPROTO_UDP : r < 0.9 ? IPPROTO_TCP : pick(random, [59, between(random, 0, 255)]);
  ethEmit(b, 0, pick(random, [S.OUR_MAC, Uint8Array.of(0x33, 0x33, 0, 0, 0, 2)]), 0, S.CLIENT_MAC, 0, ETHERTYPE_IPV6);
  const ip = ETH_HLEN;
  b.set(randomBytes(random, 4), ip);
  b[ip] = ((random() < 0.97 ? 6 : between(random, 0, 15)) << 4) | (b[ip] & 0xf);
  b[ip + 7] = pick(random, [1, 64, 255]);
  const echo = proto === IPPROTO_ICMPV6;
  b.set(random() < 0.03 ? v6("::1") : echo || random() < 0.7 ? pick(random, GUEST_SRC6) : randomBytes(random, 16), ip + 8);
  b.set(echo ? pick(random, ECHO_DST6) : random() < 0.7 ? pick(random, OTHER_DST6) : randomBytes(random, 16), ip + 24);
  // The chain: each header's first byte names the next one.
  let p = ip + 40;
  let nextAt = ip + 6;
  /** Offsets of the headers with a length byte (all but Fragment). */
  const sized: number[] = [];
  const chain = random() < 0.5 ? 0 : between(random, 1, 4);
  for (let i = 0; i < chain; i++) {
    const type = pick(random, EXT_HEADERS);
    b[nextAt] = type;
    const hl = type === 44 ? 8 : type === 51 ? (between(random, 1, 4) + 2) * 4 : (between(random, 0, 3) + 1) * 8;
    b.set(randomBytes(random, hl), p);
    if (type === 44) {
      wr16(b, p + 2, random() < 0.6 ? 0 : between(random, 0, 0xffff));
    } else {
      b[p + 1] = type === 51 ? hl / 4 - 2 : hl / 8 - 1;
      sized.push(p);
    }
    nextAt = p;
    p += hl;
  }
  b[nextAt] = proto;
  const l4Len = proto === 59 ? 0 : l4Random(random, b, ip, p, proto, true);
  let plen = p + l4Len - (ip + 40);
  // An extension header claiming more than is there: the walk must stop at the payload's end.
  if (sized.length > 0 && random() < 0.2) b[pick(random, sized) + 1] = 255;
  const lenRoll = random();
  if (lenRoll > 0.8) plen = lenRoll < 0.9 ? between(random, 0, plen + 40) : between(random, 0, p - ip - 40);
  wr16(b, ip + 4, plen);
  return padded(random, b, p + l4Len);
}

/** Sometimes adds Ethernet padding (to 60 bytes) or stray bytes behind a frame of len bytes. */
function padded(random: () => number, b: Uint8Array, len: number): number {
  const roll = random();
  let out = len;
  if (roll < 0.3 && len < 60) out = 60;
  else if (roll > 0.95) out = len + between(random, 1, 16);
  if (out > len) b.fill(0, len, out);
  return Math.min(out, b.length);
}

describe("tap ingress on hostile input", () => {
  test("every truncation of every genuine frame", () => {
    let fed = 0;
    const h = fuzz(0, (h) => {
      for (const frame of GENUINE) {
        for (let len = 0; len <= frame.length; len++) {
          h.feed(frame, len);
          fed++;
        }
      }
    });
    expect(fed).toBeGreaterThan(8000);
    expect(h.fed).toBe(fed);
    const d = h.ingress.drops;
    const arpLengths = GENUINE.filter((f) => rd16(f, 12) === ETHERTYPE_ARP).reduce((n, f) => n + f.length - ETH_HLEN + 1, 0);
    expect({ runt: d.runt, ethertype: d.ethertype, loopback: d.loopback, arp: h.ingress.counts.arp }).toEqual({
      runt: ETH_HLEN * GENUINE.length, ethertype: 0, loopback: 0, arp: arpLengths,
    });
    for (const reason of ["ipv4Malformed", "ipv6Malformed", "fragment"] as const) expect(d[reason]).toBeGreaterThan(0);
    expectEveryHandlerUsed(h);
    for (const kind of ["arp", "udp4", "udp6", "icmp6-134", "icmp6-136"]) expect(h.sent[kind] ?? 0).toBeGreaterThan(0);
  });

  test("genuine frames with random bytes changed, cut short or extended", () => {
    const h = fuzz(1, (h, random) => {
      for (let i = 0; i < 6000; i++) {
        const frame = pick(random, GENUINE);
        const buf = new Uint8Array(frame.length + (random() < 0.2 ? between(random, 1, 64) : 0));
        buf.set(frame);
        buf.set(randomBytes(random, buf.length - frame.length), frame.length);
        const flips = between(random, 1, 6);
        for (let k = 0; k < flips; k++) {
          // Mostly in the first 90 bytes: the headers and length fields.
          const pos = random() < 0.7 ? Math.floor(random() * Math.min(90, buf.length)) : Math.floor(random() * buf.length);
          buf[pos] = random() < 0.5 ? random() * 256 : buf[pos] ^ (1 << Math.floor(random() * 8));
        }
        h.feed(buf, random() < 0.2 ? Math.floor(random() * (buf.length + 1)) : buf.length);
      }
    });
    const d = h.ingress.drops;
    for (const reason of ["ethertype", "ipv4Malformed", "ipv6Malformed", "fragment", "protocol"] as const) expect(d[reason]).toBeGreaterThan(0);
    expectEveryHandlerUsed(h);
    expect(h.ping.stats.requests).toBeGreaterThan(0);
    // Changed addresses, ports and identifiers ask for more flows than the table holds: the cap is reached.
    expect(h.flows.refusedFull).toBeGreaterThan(0);
    for (const kind of ["arp", "udp4", "udp6"]) expect(h.sent[kind] ?? 0).toBeGreaterThan(0);
  });

  test("random frames of random lengths", () => {
    const h = fuzz(2, (h, random) => {
      for (let i = 0; i < 5000; i++) {
        const frame = randomBytes(random, between(random, 0, MAX_RANDOM_LEN));
        // Half of them get a known ethertype and IP version, so the random bytes reach the IP parsers.
        if (i % 2 === 1 && frame.length >= ETH_HLEN + 1) {
          const type = pick(random, [ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6]);
          wr16(frame, 12, type);
          if (type !== ETHERTYPE_ARP) frame[ETH_HLEN] = (type === ETHERTYPE_IPV4 ? 0x40 : 0x60) | (frame[ETH_HLEN] & 0xf);
        }
        h.feed(frame);
      }
    });
    const d = h.ingress.drops;
    for (const reason of ["runt", "ethertype", "ipv4Malformed", "ipv6Malformed"] as const) expect(d[reason]).toBeGreaterThan(0);
    expect(h.ingress.counts.arp).toBeGreaterThan(0);
  });

  test("valid Ethernet and IP headers around random ICMP, ICMPv6, TCP and UDP; then clean echoes get replies", () => {
    const h = fuzz(3, (h, random) => {
      const buf = new Uint8Array(MAX_RANDOM_LEN + 200);
      for (let i = 0; i < 6000; i++) {
        buf.fill(0);
        const len = random() < 0.5 ? frame4(random, buf) : frame6(random, buf);
        // Now and then with ICMP switched off (--no-icmp), read by the ingress frame by frame.
        h.nc.noIcmp = random() < 0.1;
        h.feed(buf, len);
        // Time passes now and then: every flow expires, so new ones find room in the table again.
        if (i % 500 === 499) h.expireAll();
      }
      h.nc.noIcmp = false;
      h.settle();
      h.expireAll();
      expect(h.flows.count).toBe(0);
      // Echo requests of an identifier no fuzzed frame used, to the map-host-loopback addresses: each gets its reply.
      for (let seq = 1; seq <= 3; seq++) {
        for (const v of [4, 6]) {
          buf.fill(0);
          const len = v === 4 ? cleanEcho4(buf, seq) : cleanEcho6(buf, seq);
          h.feed(buf, len);
        }
      }
      const want = ["4", "6"].flatMap((v) => [1, 2, 3].map((seq) => `${v} ${CLEAN_ID} ${seq}`));
      h.runUntil(() => want.every((w) => h.echoReplies.includes(w)), 3000);
      expect(h.echoReplies.filter((r) => r.split(" ")[1] === String(CLEAN_ID)).sort()).toEqual(want);
    });
    const d = h.ingress.drops;
    for (const reason of ["ipv4Malformed", "ipv6Malformed", "fragment", "loopback", "protocol", "udpMalformed", "icmpOff"] as const) {
      expect(d[reason]).toBeGreaterThan(0);
    }
    expectEveryHandlerUsed(h);
    const s = h.services.stats;
    for (const name of ["dhcp.requests", "dhcpv6.requests", "ndp.requests", "dhcp.replies", "dhcpv6.replies"]) expect(s[name]).toBeGreaterThan(0);
    expect(h.ping.stats.requests).toBeGreaterThan(0);
    expect(h.ping.stats.replies).toBeGreaterThan(6);
    for (const kind of ["udp4", "udp6", "icmp4-0", "icmp6-129"]) expect(h.sent[kind] ?? 0).toBeGreaterThan(0);
  });
});

/** A well-formed echo request from the guest to the IPv4 map-host-loopback address, identifier CLEAN_ID. */
function cleanEcho4(b: Uint8Array, seq: number): number {
  ethEmit(b, 0, S.OUR_MAC, 0, S.CLIENT_MAC, 0, ETHERTYPE_IPV4);
  const ip = ETH_HLEN;
  const l4 = ip + 20;
  b.set([0x45, 0, 0, 20 + 8 + 32, 0, 0, 0x40, 0, 64, IPPROTO_ICMP], ip);
  b.set(v4("198.51.100.1"), ip + 12);
  b.set(v4("198.51.100.254"), ip + 16);
  wr16(b, ip + 10, ipv4HeaderChecksum(b, ip, 20));
  b.set([8, 0, 0, 0], l4);
  wr16(b, l4 + 4, CLEAN_ID);
  wr16(b, l4 + 6, seq);
  for (let i = 0; i < 32; i++) b[l4 + 8 + i] = i;
  icmpSetChecksum(b, l4, 40);
  return l4 + 40;
}

/** A well-formed echo request from the guest's link-local address to fe80::fe, identifier CLEAN_ID. */
function cleanEcho6(b: Uint8Array, seq: number): number {
  ethEmit(b, 0, S.OUR_MAC, 0, S.CLIENT_MAC, 0, ETHERTYPE_IPV6);
  const ip = ETH_HLEN;
  const l4 = ip + 40;
  b.set([0x60, 0, 0, 0, 0, 40, IPPROTO_ICMPV6, 64], ip);
  b.set(v6("fe80::5eff:fe00:a"), ip + 8);
  b.set(v6("fe80::fe"), ip + 24);
  b.set([128, 0, 0, 0], l4);
  wr16(b, l4 + 4, CLEAN_ID);
  wr16(b, l4 + 6, seq);
  for (let i = 0; i < 32; i++) b[l4 + 8 + i] = i;
  icmp6SetChecksum(b, ip, l4, 40);
  return l4 + 40;
}

import { describe, expect, test } from "bun:test";
import type { L2Services } from "../src/services/l2.ts";
import { arpParse } from "../src/wire/arp.ts";
import { dhcp6Option, DHCP6_OPT } from "../src/wire/dhcpv6.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethParse } from "../src/wire/ethernet.ts";
import { IPPROTO_ICMPV6, IPPROTO_UDP } from "../src/wire/ip.ts";
import * as F from "./fixtures/wire-frames.ts";
import * as S from "./helpers/services.ts";

/** A client REQUEST naming the Server ID of svc (so mutations reach the deepest DHCPv6 paths), if it has one. */
function requestWithOurServerId(svc: L2Services, link: S.RecordingLink): Uint8Array {
  S.deliver(svc, F.DHCP6_SOLICIT);
  const sent = link.take();
  if (sent.length === 0) return F.DHCP6_REQUEST;
  const adv = S.parseIp6(sent[0], IPPROTO_UDP);
  const sid = adv.frame.slice(adv.off + 8, adv.off + 8 + 14);
  const msg = S.payloadOf(F.DHCP6_REQUEST);
  // The captured REQUEST's Server ID option (code 2, 10 bytes) sits right after the Client ID option (18 bytes).
  const at = 4 + 18;
  const rebuilt = Uint8Array.from([...msg.subarray(0, at), ...dhcp6Option(DHCP6_OPT.SERVERID, sid), ...msg.subarray(at + 14)]);
  return S.dhcp6Frame(rebuilt);
}

/** Every genuine client frame the services take, and one request naming us. */
function seeds(svc: L2Services, link: S.RecordingLink): Uint8Array[] {
  return [
    F.ARP_REQUEST, F.ARP_REPLY, S.ARP_PROBE, F.ROUTER_SOLICITATION, F.NEIGHBOR_SOLICITATION, F.NEIGHBOR_SOLICITATION_DAD,
    S.NEIGHBOR_SOLICITATION_UNICAST, F.ROUTER_ADVERTISEMENT, F.NEIGHBOR_ADVERTISEMENT, F.DHCP_DISCOVER, F.DHCP_REQUEST,
    S.UDHCPC_DISCOVER_BROADCAST, S.DHCLIENT_DISCOVER, S.DHCLIENT_REQUEST, F.DHCP6_SOLICIT, F.DHCP6_REQUEST,
    S.DHCLIENT6_CONFIRM, S.DHCLIENT6_INFO_REQUEST, requestWithOurServerId(svc, link),
  ];
}

/** Checks that a frame orzo sent is well formed all the way down, checksums included. */
function expectValidOutput(frame: Uint8Array): void {
  const type = ethParse(frame, 0, frame.length);
  if (type === ETHERTYPE_ARP) expect(arpParse(frame, 14, frame.length - 14)).toBeGreaterThan(0);
  else if (type === ETHERTYPE_IPV4) S.parseUdp4(frame);
  else {
    expect(type).toBe(ETHERTYPE_IPV6);
    S.parseIp6(frame, frame[14 + 6] === IPPROTO_ICMPV6 ? IPPROTO_ICMPV6 : IPPROTO_UDP);
  }
}

/**
 * Hands buf[0, len) to every service entry point, both through the ingress stand-in and directly with the offsets
 * a frame of its type would have, and checks: nothing thrown, the input untouched, every reply valid.
 */
function hammer(svc: L2Services, link: S.RecordingLink, buf: Uint8Array, len: number, l4Off: number): void {
  const before = buf.slice();
  S.deliver(svc, buf.subarray(0, len));
  svc.arp(buf, 14, len - 14);
  svc.dhcp(buf, 0, 14, l4Off, len - l4Off);
  svc.dhcpv6(buf, 0, 14, 54, len - 54);
  svc.ndp(buf, 14, 54, len - 54, 0);
  expect(buf).toEqual(before);
  for (const f of link.take()) expectValidOutput(f);
}

describe("L2 services on hostile input", () => {
  test("every truncation of every genuine frame", () => {
    const { link, svc } = S.setup();
    let cases = 0;
    for (const seed of seeds(svc, link)) {
      for (let len = 0; len <= seed.length; len++) {
        const buf = seed.slice(0, len);
        hammer(svc, link, buf, len, 34);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(3000);
    S.expectStatsBalanced(svc.stats);
    expect(svc.stats["dhcp.malformed"]).toBeGreaterThan(1000);
    expect(svc.stats["dhcpv6.malformed"]).toBeGreaterThan(1000);
    expect(svc.stats["ndp.malformed"]).toBeGreaterThan(100);
    expect(svc.stats["arp.malformed"]).toBeGreaterThan(100);
  });

  test("random byte changes, truncations and extensions of genuine frames", () => {
    const random = F.rng(0x0a2f);
    const { link, svc } = S.setup();
    const all = seeds(svc, link);
    for (let i = 0; i < 20_000; i++) {
      const seed = all[Math.floor(random() * all.length)];
      const grow = random() < 0.2 ? Math.floor(random() * 64) : 0;
      const buf = new Uint8Array(seed.length + grow);
      buf.set(seed);
      for (let k = seed.length; k < buf.length; k++) buf[k] = random() * 256;
      const flips = 1 + Math.floor(random() * 6);
      for (let k = 0; k < flips; k++) {
        // Mostly in the first 90 bytes: the headers and lengths, where mistakes hurt most.
        const pos = random() < 0.7 ? Math.floor(random() * Math.min(90, buf.length)) : Math.floor(random() * buf.length);
        buf[pos] = random() < 0.5 ? random() * 256 : buf[pos] ^ (1 << Math.floor(random() * 8));
      }
      const len = random() < 0.3 ? Math.floor(random() * (buf.length + 1)) : buf.length;
      hammer(svc, link, buf, len, 34);
    }
    S.expectStatsBalanced(svc.stats);
    for (const p of ["arp", "ndp", "dhcp", "dhcpv6"]) {
      expect(svc.stats[`${p}.replies`]).toBeGreaterThan(0);
      expect(svc.stats[`${p}.malformed`] + svc.stats[`${p}.ignored`]).toBeGreaterThan(0);
    }
  });

  test("random bytes behind each frame type, and offsets and lengths that make no sense", () => {
    const random = F.rng(77);
    const { link, svc } = S.setup();
    const headers = [F.ARP_REQUEST, F.DHCP_DISCOVER, F.DHCP6_SOLICIT, F.ROUTER_SOLICITATION].map((f) => f.subarray(0, 14 + 40 + 8));
    for (let i = 0; i < 5000; i++) {
      const head = headers[i % headers.length];
      const buf = new Uint8Array(Math.floor(random() * 700));
      for (let k = 0; k < buf.length; k++) buf[k] = random() * 256;
      buf.set(head.subarray(0, Math.min(buf.length, 14 + Math.floor(random() * (head.length - 13)))));
      hammer(svc, link, buf, buf.length, 14 + Math.floor(random() * 60));
      const n = () => Math.floor(random() * 2 * buf.length) - Math.floor(buf.length / 2);
      svc.arp(buf, n(), n());
      svc.dhcp(buf, n(), n(), n(), n());
      svc.dhcpv6(buf, n(), n(), n(), n());
      svc.ndp(buf, n(), n(), n(), 0);
      for (const f of link.take()) expectValidOutput(f);
    }
    S.expectStatsBalanced(svc.stats);
  });

  test("services with everything switched off or odd configurations survive the same input", () => {
    const random = F.rng(5);
    const configs = [
      S.setup((nc) => {
        nc.ip4.enabled = false;
        nc.ip6.enabled = false;
      }),
      S.setup((nc) => {
        nc.mtu = 0;
        nc.ip4.prefixLen = 0;
        nc.ip6.addr.fill(0);
        nc.searchDomains.splice(0, 1, "", ".", "x".repeat(300), "ok.test");
        nc.hostname = "h".repeat(400);
        nc.fqdn = "bad..fqdn";
      }),
      S.setup((nc) => {
        nc.ip4.prefixLen = 32;
        nc.ip4.gateway.set(S.ip("10.0.0.1"));
      }),
    ];
    for (const { link, svc } of configs) {
      const all = seeds(svc, link);
      for (let i = 0; i < 2000; i++) {
        const seed = all[i % all.length].slice();
        seed[Math.floor(random() * seed.length)] ^= 1 << Math.floor(random() * 8);
        hammer(svc, link, seed, seed.length, 34);
      }
      S.expectStatsBalanced(svc.stats);
    }
  });
});

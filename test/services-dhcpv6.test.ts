import { describe, expect, test } from "bun:test";
import type { NetConf } from "../src/netconf.ts";
import { rd16, rd32 } from "../src/wire/bytes.ts";
import {
  DHCP6_FQDN, DHCP6_MSG, DHCP6_OPT, DHCP6_STATUS, DUID_LLT, dhcp6ClientFqdn, dhcp6ClientFqdnDecode, dhcp6Emit, dhcp6Find,
  dhcp6IaAddr, dhcp6IaDecode, dhcp6IaNa, dhcp6Option, dhcp6Options, dhcp6Parse, dhcp6Xid, type Dhcp6Option,
} from "../src/wire/dhcpv6.ts";
import { dnsNamesDecode } from "../src/wire/dnsname.ts";
import { formatIPv6 } from "../src/wire/inany.ts";
import { IPPROTO_UDP } from "../src/wire/ip.ts";
import * as F from "./fixtures/wire-frames.ts";
import {
  DHCLIENT6_CONFIRM, DHCLIENT6_INFO_REQUEST, deliver, dhcp6Frame, expectStatsBalanced, hexOf, ip, parseIp6, payloadOf,
  setup,
} from "./helpers/services.ts";

/** A reply decoded: its frame's layers, type, transaction id, top-level options and their codes. */
function decodeReply(frame: Uint8Array) {
  const s = parseIp6(frame, IPPROTO_UDP);
  expect([s.srcMac, s.src, s.sport, s.dport]).toEqual(["9a:55:9a:55:9a:55", "fe80::fe", 547, 546]);
  const type = dhcp6Parse(frame, s.off, s.len);
  const options = dhcp6Options(frame, s.off + 4, s.off + s.len)!;
  const xid = dhcp6Xid(frame, s.off);
  expect(s.flowLabel).toBe(xid & 0xfffff);
  const data = (code: number) => {
    const o = dhcp6Find(options, code);
    return o === undefined ? undefined : frame.slice(o.off, o.off + o.len);
  };
  return { ...s, type, xid, options, codes: options.map((o) => o.code), data };
}

type Setup = ReturnType<typeof setup>;

/** The one reply the services (fresh ones, or those of ctx) sent for a frame, and the services. */
function exchange(frame: Uint8Array, tweak?: (nc: NetConf) => void, ctx: Setup = setup(tweak)) {
  deliver(ctx.svc, frame, 3);
  const sent = ctx.link.take();
  expect(sent.length).toBe(1);
  expectStatsBalanced(ctx.svc.stats);
  return { ...ctx, reply: decodeReply(sent[0]) };
}

/** Messages the services must not answer: nothing sent, the drop counted under reason. */
function expectDropped(frame: Uint8Array, reason: string, tweak?: (nc: NetConf) => void, ctx: Setup = setup(tweak)): void {
  const { link, svc } = ctx;
  const before = svc.stats[`dhcpv6.${reason}`];
  deliver(svc, frame);
  expect(link.take()).toEqual([]);
  expect(svc.stats[`dhcpv6.${reason}`]).toBe(before + 1);
  expectStatsBalanced(svc.stats);
}

/** The whole top-level options of a captured client frame's message, and its type and xid. */
function clientMessage(frame: Uint8Array) {
  const msg = payloadOf(frame);
  const options = dhcp6Options(msg, 4, msg.length)!;
  const whole = (o: Dhcp6Option) => msg.slice(o.off - 4, o.off + o.len);
  return { type: msg[0], xid: dhcp6Xid(msg, 0), options: options.map((o) => ({ code: o.code, bytes: whole(o) })) };
}

/** A client frame with this message. */
function message(type: number, xid: number, options: Uint8Array[], src?: string, dst?: string): Uint8Array {
  const buf = new Uint8Array(4 + options.reduce((n, o) => n + o.length, 0));
  dhcp6Emit(buf, 0, type, xid, options);
  return dhcp6Frame(buf, src, dst);
}

/** dhclient's REQUEST rebuilt as a client following our ADVERTISE would send it: our Server ID and address. */
function requestFor(serverId: Uint8Array, address = "2001:db8:1::1", type: number = DHCP6_MSG.REQUEST): Uint8Array {
  const req = clientMessage(F.DHCP6_REQUEST);
  const options = req.options.map((o) => {
    if (o.code === DHCP6_OPT.SERVERID) return serverId;
    if (o.code === DHCP6_OPT.IA_NA) return dhcp6IaNa(0x5e00000a, 3600, 5400, [dhcp6IaAddr(ip(address), 0, 7200, 7500)]);
    return o.bytes;
  });
  return message(type, req.xid, options);
}

/** The Server ID option of the services of ctx, as their ADVERTISE carries it. */
function ourServerId(ctx: Setup): Uint8Array {
  const { reply } = exchange(F.DHCP6_SOLICIT, undefined, ctx);
  return dhcp6Option(DHCP6_OPT.SERVERID, reply.data(DHCP6_OPT.SERVERID)!);
}

/** Checks the IA_NA of a reply: the client's IAID, infinite times, the assigned address forever. */
function expectGrant(reply: ReturnType<typeof decodeReply>): void {
  const ia = dhcp6IaDecode(reply.frame, dhcp6Find(reply.options, DHCP6_OPT.IA_NA)!)!;
  expect([ia.iaid, ia.t1, ia.t2]).toEqual([0x5e00000a, 0xffffffff, 0xffffffff]);
  expect(ia.addresses.map((a) => [formatIPv6(a.addr, 0), a.preferred, a.valid])).toEqual([["2001:db8:1::1", 0xffffffff, 0xffffffff]]);
}

describe("DHCPv6 on real client frames", () => {
  test("dhclient SOLICIT gets an ADVERTISE: Server ID, IA_NA, Client ID, preference, DNS, domains, FQDN", () => {
    const { reply } = exchange(F.DHCP6_SOLICIT);
    expect([reply.type, reply.xid]).toEqual([DHCP6_MSG.ADVERTISE, 0x66c67e]);
    expect([reply.dstMac, reply.dst]).toEqual(["02:00:5e:00:00:0a", "fe80::5eff:fe00:a"]);
    expect(reply.codes).toEqual([
      DHCP6_OPT.SERVERID, DHCP6_OPT.IA_NA, DHCP6_OPT.CLIENTID, DHCP6_OPT.PREFERENCE, DHCP6_OPT.DNS_SERVERS,
      DHCP6_OPT.DOMAIN_LIST, DHCP6_OPT.CLIENT_FQDN,
    ]);
    const duid = reply.data(DHCP6_OPT.SERVERID)!;
    expect([rd16(duid, 0), rd16(duid, 2), duid.length]).toEqual([DUID_LLT, 1, 14]);
    expect(hexOf(duid.subarray(8))).toBe("9a559a559a55");
    // DUID-LLT time: seconds since 2000-01-01, about now.
    expect(Math.abs(rd32(duid, 4) - (Math.floor(Date.now() / 1000) - 946684800))).toBeLessThan(5);
    expectGrant(reply);
    expect(hexOf(reply.data(DHCP6_OPT.CLIENTID)!)).toBe("00010001329970d702005e00000a");
    expect([...reply.data(DHCP6_OPT.PREFERENCE)!]).toEqual([255]);
    expect(formatIPv6(reply.data(DHCP6_OPT.DNS_SERVERS)!, 0)).toBe("2001:db8:1::fe");
    const domains = reply.data(DHCP6_OPT.DOMAIN_LIST)!;
    expect(dnsNamesDecode(domains, 0, domains.length, false)).toEqual(["orzo.test"]);
    const fqdn = dhcp6Find(reply.options, DHCP6_OPT.CLIENT_FQDN)!;
    expect(dhcp6ClientFqdnDecode(reply.frame, fqdn)).toEqual({ flags: 0, name: "guest.orzo.test" });
  });

  test("REQUEST and RENEW naming our Server ID get a REPLY granting the address", () => {
    for (const type of [DHCP6_MSG.REQUEST, DHCP6_MSG.RENEW]) {
      const ctx = setup();
      const serverId = ourServerId(ctx);
      ctx.nc.ip6.addrSeen.fill(0);
      const { nc, reply, svc } = exchange(requestFor(serverId, "2001:db8:1::1", type), undefined, ctx);
      expect([reply.type, reply.xid]).toEqual([DHCP6_MSG.REPLY, 0xa0f57e]);
      expect(reply.codes.slice(0, 3)).toEqual([DHCP6_OPT.SERVERID, DHCP6_OPT.IA_NA, DHCP6_OPT.CLIENTID]);
      expect(reply.codes).not.toContain(DHCP6_OPT.PREFERENCE);
      expectGrant(reply);
      expect(formatIPv6(nc.ip6.addrSeen, 0)).toBe("2001:db8:1::1");
      expect(svc.stats["dhcpv6.replies"]).toBe(2);
    }
  });

  test("REQUEST, RENEW and REBIND naming another server are not for us", () => {
    expectDropped(F.DHCP6_REQUEST, "ignored");
    const foreign = clientMessage(F.DHCP6_REQUEST).options.find((o) => o.code === DHCP6_OPT.SERVERID)!.bytes;
    expectDropped(requestFor(foreign, "2001:db8:1::1", DHCP6_MSG.RENEW), "ignored");
    expectDropped(requestFor(foreign, "2001:db8:1::1", DHCP6_MSG.REBIND), "ignored");
    const noServer = clientMessage(F.DHCP6_REQUEST).options.filter((o) => o.code !== DHCP6_OPT.SERVERID).map((o) => o.bytes);
    expectDropped(message(DHCP6_MSG.REQUEST, 1, noServer), "ignored");
  });

  test("REBIND (which names no server, RFC 8415 §18.2.5) gets a REPLY", () => {
    const req = clientMessage(F.DHCP6_REQUEST);
    const options = req.options.filter((o) => o.code !== DHCP6_OPT.SERVERID).map((o) =>
      o.code === DHCP6_OPT.IA_NA ? dhcp6IaNa(0x5e00000a, 0, 0, [dhcp6IaAddr(ip("2001:db8:1::1"), 0, 0, 0)]) : o.bytes);
    const { reply } = exchange(message(DHCP6_MSG.REBIND, 0x123456, options));
    expect(reply.type).toBe(DHCP6_MSG.REPLY);
    expectGrant(reply);
  });

  test("a REQUEST for another address is told NotOnLink inside its IA", () => {
    const ctx = setup();
    const { reply, svc } = exchange(requestFor(ourServerId(ctx), "2001:db8:5::19"), undefined, ctx);
    expect(reply.type).toBe(DHCP6_MSG.REPLY);
    expect(reply.codes).toEqual([DHCP6_OPT.SERVERID, DHCP6_OPT.IA_NA, DHCP6_OPT.CLIENTID]);
    const ia = dhcp6IaDecode(reply.frame, dhcp6Find(reply.options, DHCP6_OPT.IA_NA)!)!;
    expect([ia.iaid, ia.t1, ia.t2, ia.addresses.length]).toEqual([0x5e00000a, 3600, 5400, 0]);
    const status = ia.options.find((o) => o.code === DHCP6_OPT.STATUS_CODE)!;
    expect(rd16(reply.frame, status.off)).toBe(DHCP6_STATUS.NOT_ON_LINK);
    expect(new TextDecoder().decode(reply.frame.subarray(status.off + 2, status.off + status.len))).toBe("Prefix not appropriate for link.");
    expect(svc.stats["dhcpv6.notOnLink"]).toBe(1);
  });

  test("dhclient CONFIRM of a lease from another network: NotOnLink in the IA and at the top level", () => {
    const { reply } = exchange(DHCLIENT6_CONFIRM);
    expect([reply.type, reply.xid]).toEqual([DHCP6_MSG.REPLY, 0x80457f]);
    expect(reply.codes).toEqual([DHCP6_OPT.SERVERID, DHCP6_OPT.IA_NA, DHCP6_OPT.STATUS_CODE, DHCP6_OPT.CLIENTID]);
    expect(rd16(reply.data(DHCP6_OPT.STATUS_CODE)!, 0)).toBe(DHCP6_STATUS.NOT_ON_LINK);
    expect(hexOf(reply.data(DHCP6_OPT.CLIENTID)!)).toBe("000100013299753302005e00000a");
  });

  test("CONFIRM of the assigned address gets a REPLY granting it; with a Server ID it is dropped", () => {
    const confirm = clientMessage(DHCLIENT6_CONFIRM);
    const ours = confirm.options.map((o) =>
      o.code === DHCP6_OPT.IA_NA ? dhcp6IaNa(0x5e00000a, 0, 0, [dhcp6IaAddr(ip("2001:db8:1::1"), 0, 0, 0)]) : o.bytes);
    const { reply } = exchange(message(DHCP6_MSG.CONFIRM, confirm.xid, ours));
    expect(reply.type).toBe(DHCP6_MSG.REPLY);
    expectGrant(reply);
    const ctx = setup();
    expectDropped(message(DHCP6_MSG.CONFIRM, confirm.xid, [...ours, ourServerId(ctx)]), "ignored", undefined, ctx);
  });

  test("dhclient INFORMATION-REQUEST gets configuration only", () => {
    const { reply } = exchange(DHCLIENT6_INFO_REQUEST);
    expect([reply.type, reply.xid]).toEqual([DHCP6_MSG.REPLY, 0x7b23c6]);
    expect(reply.codes).toEqual([DHCP6_OPT.SERVERID, DHCP6_OPT.CLIENTID, DHCP6_OPT.DNS_SERVERS, DHCP6_OPT.DOMAIN_LIST, DHCP6_OPT.CLIENT_FQDN]);
    expect(hexOf(reply.data(DHCP6_OPT.CLIENTID)!)).toBe("0003000102005e00000a");
    const info = clientMessage(DHCLIENT6_INFO_REQUEST);
    const withIa = [...info.options.map((o) => o.bytes), dhcp6IaNa(1, 0, 0, [])];
    expectDropped(message(DHCP6_MSG.INFORMATION_REQUEST, 7, withIa), "ignored");
  });

  test("options follow the configuration; the FQDN's O flag answers the client's S flag", () => {
    const bare = exchange(F.DHCP6_SOLICIT, (nc) => {
      nc.dhcpDns = false;
      nc.dhcpSearch = false;
      nc.fqdn = undefined;
    }).reply;
    expect(bare.codes).toEqual([DHCP6_OPT.SERVERID, DHCP6_OPT.IA_NA, DHCP6_OPT.CLIENTID, DHCP6_OPT.PREFERENCE]);
    const noServers = exchange(F.DHCP6_SOLICIT, (nc) => {
      nc.ip6.dns.length = 0;
      nc.searchDomains.splice(0, 1, "bad..name");
    }).reply;
    expect(noServers.codes).not.toContain(DHCP6_OPT.DNS_SERVERS);
    expect(noServers.codes).not.toContain(DHCP6_OPT.DOMAIN_LIST);
    const solicit = clientMessage(F.DHCP6_SOLICIT);
    const asking = [...solicit.options.map((o) => o.bytes), dhcp6ClientFqdn(DHCP6_FQDN.S, "vm")!];
    const r = exchange(message(DHCP6_MSG.SOLICIT, solicit.xid, asking)).reply;
    expect(dhcp6ClientFqdnDecode(r.frame, dhcp6Find(r.options, DHCP6_OPT.CLIENT_FQDN)!)).toEqual({ flags: DHCP6_FQDN.O, name: "guest.orzo.test" });
  });

  test("a SOLICIT without IA_NA gets no IA; three nameservers at most", () => {
    const solicit = clientMessage(F.DHCP6_SOLICIT);
    const stateless = solicit.options.filter((o) => o.code !== DHCP6_OPT.IA_NA).map((o) => o.bytes);
    const r = exchange(message(DHCP6_MSG.SOLICIT, 5, stateless), (nc) => {
      nc.ip6.dns.push(ip("2001:db8::1"), ip("2001:db8::2"), ip("2001:db8::3"));
    }).reply;
    expect(r.codes).not.toContain(DHCP6_OPT.IA_NA);
    expect(r.data(DHCP6_OPT.DNS_SERVERS)!.length).toBe(48);
  });

  test("messages not for this server are ignored", () => {
    const solicit = clientMessage(F.DHCP6_SOLICIT);
    const all = solicit.options.map((o) => o.bytes);
    const ctx = setup();
    const ours = ourServerId(ctx);
    expectDropped(message(DHCP6_MSG.SOLICIT, 1, [...all, ours]), "ignored", undefined, ctx);
    expectDropped(message(DHCP6_MSG.SOLICIT, 1, all, "fe80::5eff:fe00:a", "fe80::fe"), "ignored", undefined, ctx);
    for (const type of [DHCP6_MSG.ADVERTISE, DHCP6_MSG.REPLY, DHCP6_MSG.RELEASE, DHCP6_MSG.DECLINE, DHCP6_MSG.RECONFIGURE, DHCP6_MSG.RELAY_FORW, 200]) {
      expectDropped(message(type, 1, [...all, ours]), "ignored", undefined, ctx);
    }
  });

  test("malformed messages are counted and dropped", () => {
    const all = clientMessage(F.DHCP6_SOLICIT).options;
    const noClientId = all.filter((o) => o.code !== DHCP6_OPT.CLIENTID).map((o) => o.bytes);
    expectDropped(message(DHCP6_MSG.SOLICIT, 1, noClientId), "malformed");
    const longDuid = dhcp6Option(DHCP6_OPT.CLIENTID, new Uint8Array(129));
    expectDropped(message(DHCP6_MSG.SOLICIT, 1, [longDuid]), "malformed");
    const overrun = Uint8Array.from([...payloadOf(F.DHCP6_SOLICIT), 0, 1, 0, 9, 1]);
    expectDropped(dhcp6Frame(overrun), "malformed");
    expectDropped(dhcp6Frame(Uint8Array.of(1, 2, 3)), "malformed");
    expectDropped(message(DHCP6_MSG.SOLICIT, 1, all.map((o) => o.bytes), "::"), "malformed");
    const { link, svc } = setup();
    const f = F.DHCP6_SOLICIT;
    svc.dhcpv6(f, 0, 14, 54, f.length - 54 - 1);
    svc.dhcpv6(f, 0, 14, 40, f.length - 40);
    svc.dhcpv6(f, 0, 14, 54, f.length);
    expect(link.take()).toEqual([]);
    expect(svc.stats["dhcpv6.malformed"]).toBe(3);
  });

  test("switched off with --no-dhcpv6 or without IPv6", () => {
    expectDropped(F.DHCP6_SOLICIT, "disabled", (nc) => void (nc.noDhcpv6 = true));
    expectDropped(F.DHCP6_SOLICIT, "disabled", (nc) => void (nc.ip6.enabled = false));
  });
});

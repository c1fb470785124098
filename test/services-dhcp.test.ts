import { describe, expect, test } from "bun:test";
import type { NetConf } from "../src/netconf.ts";
import { rd16, rd32 } from "../src/wire/bytes.ts";
import { DHCP_FQDN, DHCP_MSG, DHCP_OPT, dhcpFqdnDecode, dhcpHeaderDecode, dhcpOptionsParse, dhcpParse } from "../src/wire/dhcp.ts";
import { dnsNamesDecode } from "../src/wire/dnsname.ts";
import { formatIPv4 } from "../src/wire/inany.ts";
import * as F from "./fixtures/wire-frames.ts";
import {
  DHCLIENT_DISCOVER, DHCLIENT_REQUEST, UDHCPC_DISCOVER_BROADCAST, UDHCPC_REQUEST_BROADCAST, deliver, dhcpFrame,
  expectStatsBalanced, hexOf, ip, parseUdp4, payloadOf, setup,
} from "./helpers/services.ts";

/** A reply decoded: the frame's layers, the BOOTP header, option codes in wire order and option values. */
function decodeReply(frame: Uint8Array) {
  const s = parseUdp4(frame);
  expect([s.sport, s.dport]).toEqual([67, 68]);
  expect(s.srcMac).toBe("9a:55:9a:55:9a:55");
  const optOff = dhcpParse(frame, s.off, s.len);
  expect(optOff).toBe(s.off + 240);
  const order: number[] = [];
  let p = optOff;
  while (frame[p] !== DHCP_OPT.END) {
    if (frame[p] === DHCP_OPT.PAD) {
      p++;
      continue;
    }
    order.push(frame[p]);
    p += 2 + frame[p + 1];
  }
  const area = s.len - 240;
  expect(area).toBeGreaterThanOrEqual(60);
  expect(area).toBeLessThanOrEqual(308);
  expect(frame.subarray(p + 1, s.off + s.len).every((b) => b === 0)).toBe(true);
  const options = dhcpOptionsParse(frame, optOff, s.off + s.len)!;
  return { ...s, header: dhcpHeaderDecode(frame, s.off), order, options, msg: frame.subarray(s.off, s.off + s.len) };
}

/** The one reply the services sent for a frame. */
function replyTo(frame: Uint8Array, tweak?: (nc: NetConf) => void, at = 0) {
  const { nc, link, svc } = setup(tweak);
  deliver(svc, frame, at);
  const sent = link.take();
  expect(sent.length).toBe(1);
  expect(svc.stats["dhcp.replies"]).toBe(1);
  expectStatsBalanced(svc.stats);
  const r = decodeReply(sent[0]);
  expect(r.src).toBe(formatIPv4(nc.ip4.ourTapAddr, 12));
  return r;
}

/** A DHCP message with the fixed part of msg and these options (code, value) then END. */
function withOptions(msg: Uint8Array, options: [number, number[]][]): Uint8Array {
  const bytes = [...msg.subarray(0, 240)];
  for (const [code, value] of options) bytes.push(code, value.length, ...value);
  bytes.push(DHCP_OPT.END);
  return Uint8Array.from(bytes);
}

/** The options of a captured request, in order, as (code, value) pairs. */
function optionsOf(msg: Uint8Array): [number, number[]][] {
  const out: [number, number[]][] = [];
  for (let p = 240; msg[p] !== DHCP_OPT.END; p += 2 + msg[p + 1]) out.push([msg[p], [...msg.subarray(p + 2, p + 2 + msg[p + 1])]]);
  return out;
}

const v4 = (b: Uint8Array | undefined) => formatIPv4(b!, 0);

describe("DHCPv4 on real client frames", () => {
  test("udhcpc DISCOVER gets an OFFER of the assigned address, unicast, options in the client's order", () => {
    const r = replyTo(F.DHCP_DISCOVER, undefined, 5);
    expect([r.dstMac, r.dst]).toEqual(["02:00:5e:00:00:0a", "198.51.100.1"]);
    const h = r.header;
    expect([h.op, h.htype, h.hlen, h.hops, h.xid, h.secs, h.flags]).toEqual([2, 1, 6, 0, 0x2b9c4f64, 0, 0]);
    expect([v4(h.ciaddr), v4(h.yiaddr), v4(h.siaddr), v4(h.giaddr)]).toEqual(["0.0.0.0", "198.51.100.1", "0.0.0.0", "0.0.0.0"]);
    expect(hexOf(h.chaddr)).toBe("02005e00000a00000000000000000000");
    expect(r.msg.subarray(44, 236).every((b) => b === 0)).toBe(true);
    // Parameter list 1 3 6 12 15 26 28 42 119: 53 first (not listed), the listed ones we have, then the rest.
    expect(r.order).toEqual([53, 1, 3, 6, 12, 26, 119, 51, 54, 81]);
    const o = r.options;
    expect([...o.get(DHCP_OPT.MSG_TYPE)!]).toEqual([DHCP_MSG.OFFER]);
    expect(v4(o.get(DHCP_OPT.SUBNET_MASK))).toBe("255.255.255.0");
    expect(v4(o.get(DHCP_OPT.ROUTER))).toBe("198.51.100.254");
    expect(v4(o.get(DHCP_OPT.SERVER_ID))).toBe("198.51.100.254");
    expect(rd32(o.get(DHCP_OPT.LEASE_TIME)!, 0)).toBe(0xffffffff);
    expect(v4(o.get(DHCP_OPT.DNS))).toBe("198.51.100.254");
    expect(rd16(o.get(DHCP_OPT.MTU)!, 0)).toBe(65520);
    expect(new TextDecoder().decode(o.get(DHCP_OPT.HOSTNAME))).toBe("guest");
    const search = o.get(DHCP_OPT.SEARCH)!;
    expect(dnsNamesDecode(search, 0, search.length, true)).toEqual(["orzo.test"]);
    expect(dhcpFqdnDecode(o.get(DHCP_OPT.CLIENT_FQDN)!)).toEqual({ flags: DHCP_FQDN.E, name: "guest.orzo.test" });
    expect([...o.get(DHCP_OPT.CLIENT_FQDN)!.subarray(0, 3)]).toEqual([DHCP_FQDN.E, 0xff, 0xff]);
  });

  test("udhcpc REQUEST for another address gets an ACK of the assigned one", () => {
    const r = replyTo(F.DHCP_REQUEST);
    expect([...r.options.get(DHCP_OPT.MSG_TYPE)!]).toEqual([DHCP_MSG.ACK]);
    expect(v4(r.header.yiaddr)).toBe("198.51.100.1");
    expect(r.header.xid).toBe(0x2b9c4f64);
    expect(r.order[0]).toBe(53);
  });

  test("the broadcast flag sends the reply to the broadcast addresses", () => {
    for (const [frame, type] of [[UDHCPC_DISCOVER_BROADCAST, DHCP_MSG.OFFER], [UDHCPC_REQUEST_BROADCAST, DHCP_MSG.ACK]] as const) {
      const r = replyTo(frame);
      expect([r.dstMac, r.dst, r.header.flags]).toEqual(["ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x8000]);
      expect([...r.options.get(DHCP_OPT.MSG_TYPE)!]).toEqual([type]);
      expect(v4(r.header.yiaddr)).toBe("198.51.100.1");
      // Parameter list 1 3 6 12 15 26 28 42 121; the gateway is on the subnet, so no 121.
      expect(r.order).toEqual([53, 1, 3, 6, 12, 26, 51, 54, 81, 119]);
    }
  });

  test("dhclient DISCOVER and REQUEST (message padded after END, TTL 128)", () => {
    const offer = replyTo(DHCLIENT_DISCOVER);
    expect(offer.order).toEqual([53, 1, 3, 6, 119, 12, 26, 51, 54, 81]);
    expect(offer.header.xid).toBe(0x29b28e43);
    const ack = replyTo(DHCLIENT_REQUEST);
    expect([...ack.options.get(DHCP_OPT.MSG_TYPE)!]).toEqual([DHCP_MSG.ACK]);
    expect(v4(ack.header.yiaddr)).toBe("198.51.100.1");
  });

  test("a gateway outside the subnet adds classless routes (121) where the client lists them", () => {
    const r = replyTo(DHCLIENT_DISCOVER, (nc) => {
      nc.ip4.gateway.set(ip("203.0.113.1"));
      nc.ip4.ourTapAddr.set(ip("203.0.113.1"));
    });
    expect(r.order).toEqual([53, 1, 3, 6, 119, 12, 26, 121, 51, 54, 81]);
    expect(hexOf(r.options.get(DHCP_OPT.CLASSLESS_ROUTES)!)).toBe("20cb007101" + "00000000" + "00" + "cb007101");
    expect(v4(r.options.get(DHCP_OPT.ROUTER))).toBe("203.0.113.1");
    expect(r.src).toBe("203.0.113.1");
    const noList = replyTo(F.DHCP_DISCOVER, (nc) => {
      nc.ip4.gateway.set(ip("198.51.101.1"));
    });
    expect(noList.order).toEqual([53, 1, 3, 6, 12, 26, 119, 51, 54, 81, 121]);
  });

  test("Rapid Commit: DISCOVER with option 80 gets an ACK carrying an empty option 80", () => {
    const msg = payloadOf(F.DHCP_DISCOVER);
    const r = replyTo(dhcpFrame(withOptions(msg, [...optionsOf(msg), [DHCP_OPT.RAPID_COMMIT, []]])));
    expect([...r.options.get(DHCP_OPT.MSG_TYPE)!]).toEqual([DHCP_MSG.ACK]);
    expect(r.options.get(DHCP_OPT.RAPID_COMMIT)!.length).toBe(0);
    expect(r.order).toEqual([53, 1, 3, 6, 12, 26, 119, 51, 54, 80, 81]);
    // Option 80 in a REQUEST means nothing: a plain ACK.
    const req = payloadOf(F.DHCP_REQUEST);
    const ack = replyTo(dhcpFrame(withOptions(req, [...optionsOf(req), [DHCP_OPT.RAPID_COMMIT, []]])));
    expect(ack.options.has(DHCP_OPT.RAPID_COMMIT)).toBe(false);
  });

  test("a parameter list naming 53 places it; PAD options and duplicates in the list are harmless", () => {
    const msg = payloadOf(F.DHCP_DISCOVER);
    const m = withOptions(msg, [[DHCP_OPT.MSG_TYPE, [DHCP_MSG.DISCOVER]], [DHCP_OPT.PARAM_LIST, [54, 3, 53, 3, 51, 1]]]);
    const padded = Uint8Array.from([...m.subarray(0, 240), 0, 0, ...m.subarray(240)]);
    const r = replyTo(dhcpFrame(padded));
    expect(r.order).toEqual([54, 3, 53, 51, 1, 6, 12, 26, 81, 119]);
  });

  test("plain BOOTP (no message type) gets an ACK", () => {
    const msg = payloadOf(F.DHCP_DISCOVER);
    const r = replyTo(dhcpFrame(withOptions(msg, optionsOf(msg).filter(([c]) => c !== DHCP_OPT.MSG_TYPE))));
    expect([...r.options.get(DHCP_OPT.MSG_TYPE)!]).toEqual([DHCP_MSG.ACK]);
    expect(v4(r.header.yiaddr)).toBe("198.51.100.1");
  });

  test("options follow the configuration: no DNS, search, MTU, host name or FQDN when not set", () => {
    const r = replyTo(F.DHCP_DISCOVER, (nc) => {
      nc.dhcpDns = false;
      nc.dhcpSearch = false;
      nc.mtu = 0;
      nc.hostname = undefined;
      nc.fqdn = undefined;
    });
    expect(r.order).toEqual([53, 1, 3, 51, 54]);
    const noServers = replyTo(F.DHCP_DISCOVER, (nc) => {
      nc.ip4.dns.length = 0;
      nc.searchDomains.length = 0;
    });
    expect(noServers.order).toEqual([53, 1, 3, 12, 26, 51, 54, 81]);
    const prefix16 = replyTo(F.DHCP_DISCOVER, (nc) => {
      nc.ip4.prefixLen = 16;
    });
    expect(v4(prefix16.options.get(DHCP_OPT.SUBNET_MASK))).toBe("255.255.0.0");
  });

  test("three nameservers at most; bad search domains left out; what does not fit is skipped", () => {
    const r = replyTo(F.DHCP_DISCOVER, (nc) => {
      nc.ip4.dns.push(ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
      nc.searchDomains.push("bad..name", "b.orzo.test");
    });
    expect(r.options.get(DHCP_OPT.DNS)!.length).toBe(12);
    const search = r.options.get(DHCP_OPT.SEARCH)!;
    expect(dnsNamesDecode(search, 0, search.length, true)).toEqual(["orzo.test", "b.orzo.test"]);
    const label = "x".repeat(60);
    const crowded = replyTo(F.DHCP_DISCOVER, (nc) => {
      nc.searchDomains.splice(0, 1, ...[1, 2, 3, 4, 5].map((i) => `${label}${i}.${label}.test`));
      nc.hostname = "h".repeat(200);
    });
    expect(crowded.options.has(DHCP_OPT.HOSTNAME)).toBe(true);
    expect(crowded.options.has(DHCP_OPT.SEARCH)).toBe(false);
    expect(crowded.order).toEqual([53, 1, 3, 6, 12, 26, 51, 54, 81]);
  });

  test("DECLINE, RELEASE, INFORM and server messages are ignored", () => {
    const msg = payloadOf(F.DHCP_REQUEST);
    for (const type of [DHCP_MSG.DECLINE, DHCP_MSG.RELEASE, DHCP_MSG.INFORM, DHCP_MSG.OFFER, DHCP_MSG.ACK, 42]) {
      const { link, svc } = setup();
      const opts = optionsOf(msg).map(([c, v]): [number, number[]] => (c === DHCP_OPT.MSG_TYPE ? [c, [type]] : [c, v]));
      deliver(svc, dhcpFrame(withOptions(msg, opts)));
      expect(link.take()).toEqual([]);
      expect(svc.stats["dhcp.ignored"]).toBe(1);
    }
  });

  test("malformed requests are counted and dropped", () => {
    const msg = payloadOf(F.DHCP_DISCOVER);
    const reply = msg.slice();
    reply[0] = 2;
    const badCookie = msg.slice();
    badCookie[236] ^= 1;
    const overrun = Uint8Array.from([...msg.subarray(0, 240), DHCP_OPT.HOSTNAME, 20, 65, 66]);
    for (const m of [reply, badCookie, overrun, msg.subarray(0, 239)]) {
      const { link, svc } = setup();
      deliver(svc, dhcpFrame(m));
      expect(link.take()).toEqual([]);
      expect(svc.stats["dhcp.malformed"]).toBe(1);
      expectStatsBalanced(svc.stats);
    }
    // The UDP length must match what IPv4 delivered.
    const { link, svc } = setup();
    const f = new Uint8Array(F.DHCP_DISCOVER.length + 14);
    f.set(F.DHCP_DISCOVER);
    svc.dhcp(f, 0, 14, 34, F.DHCP_DISCOVER.length - 34 + 2);
    svc.dhcp(f, 0, 14, 34, F.DHCP_DISCOVER.length - 34 - 2);
    svc.dhcp(f, 0, 40, 34, F.DHCP_DISCOVER.length - 34);
    svc.dhcp(f, -3, 14, 34, F.DHCP_DISCOVER.length - 34);
    expect(link.take()).toEqual([]);
    expect(svc.stats["dhcp.malformed"]).toBe(4);
  });

  test("switched off with --no-dhcp or without IPv4", () => {
    for (const tweak of [(nc: NetConf) => void (nc.noDhcp = true), (nc: NetConf) => void (nc.ip4.enabled = false)]) {
      const { link, svc } = setup(tweak);
      deliver(svc, F.DHCP_DISCOVER);
      expect(link.take()).toEqual([]);
      expect(svc.stats["dhcp.disabled"]).toBe(1);
    }
  });
});

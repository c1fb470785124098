import { describe, expect, test } from "bun:test";
import {
  BOOTREPLY, BOOTREQUEST, DHCP_FQDN, DHCP_MSG, DHCP_OPT, DHCP_OPTIONS, DhcpOptionWriter, dhcpClasslessRoutesEncode,
  dhcpFqdnDecode, dhcpFqdnEncode, dhcpHeaderDecode, dhcpHeaderEmit, dhcpOptionsParse, dhcpParse, dhcpSearchListEncode,
} from "../src/wire/dhcp.ts";
import { dnsNamesDecode } from "../src/wire/dnsname.ts";
import { formatMac } from "../src/wire/ethernet.ts";
import { formatIPv4 } from "../src/wire/inany.ts";
import { L3Info } from "../src/wire/ip.ts";
import { ipv4Parse } from "../src/wire/ipv4.ts";
import { udpParse } from "../src/wire/udp.ts";
import * as F from "./fixtures/wire-frames.ts";

const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const ip4 = (t: string) => Uint8Array.from(t.split(".").map(Number));

/** Digs the DHCP message out of a captured frame: its absolute offset and length. */
function dhcpOf(f: Uint8Array): { off: number; len: number } {
  const info = new L3Info();
  expect(ipv4Parse(f, 14, f.length - 14, info)).toBe(20);
  const ulen = udpParse(f, info.l4Off, info.l4Len);
  expect(ulen).toBeGreaterThan(8);
  return { off: info.l4Off + 8, len: ulen - 8 };
}

/** Parses a captured DHCP frame down to its header and option map. */
function parseFrame(f: Uint8Array) {
  const m = dhcpOf(f);
  const opts = dhcpParse(f, m.off, m.len);
  expect(opts).toBe(m.off + DHCP_OPTIONS);
  return { ...m, header: dhcpHeaderDecode(f, m.off), options: dhcpOptionsParse(f, opts, m.off + m.len)! };
}

describe("DHCPv4 on real frames", () => {
  test("busybox udhcpc DISCOVER", () => {
    const { header, options } = parseFrame(F.DHCP_DISCOVER);
    expect([header.op, header.htype, header.hlen, header.hops, header.xid, header.secs, header.flags]).toEqual([BOOTREQUEST, 1, 6, 0, 0x2b9c4f64, 0, 0]);
    expect(formatMac(header.chaddr, 0)).toBe("02:00:5e:00:00:0a");
    expect(formatIPv4(header.ciaddr, 0)).toBe("0.0.0.0");
    expect([...options.keys()]).toEqual([53, 57, 55, 12, 60, 61, 81]);
    expect(Array.from(options.get(DHCP_OPT.MSG_TYPE)!)).toEqual([DHCP_MSG.DISCOVER]);
    expect(Array.from(options.get(DHCP_OPT.MAX_SIZE)!)).toEqual([2, 64]);
    expect(Array.from(options.get(DHCP_OPT.PARAM_LIST)!)).toEqual([1, 3, 6, 12, 15, 26, 28, 42, 119]);
    expect(text(options.get(DHCP_OPT.HOSTNAME)!)).toBe("orzoguest");
    expect(text(options.get(DHCP_OPT.VENDOR_CLASS)!)).toBe("udhcp 1.35.0");
    expect(hexOf(options.get(DHCP_OPT.CLIENT_ID)!)).toBe("0102005e00000a");
    expect(dhcpFqdnDecode(options.get(DHCP_OPT.CLIENT_FQDN)!)).toEqual({ flags: DHCP_FQDN.S, name: "guest.example.org" });
  });

  test("dnsmasq OFFER and ACK, udhcpc REQUEST", () => {
    const offer = parseFrame(F.DHCP_OFFER);
    expect([offer.header.op, offer.header.xid]).toEqual([BOOTREPLY, 0x2b9c4f64]);
    expect(formatIPv4(offer.header.yiaddr, 0)).toBe("192.0.2.16");
    expect(formatIPv4(offer.header.siaddr, 0)).toBe("192.0.2.1");
    const o = offer.options;
    expect([...o.keys()]).toEqual([53, 54, 51, 58, 59, 1, 28, 12, 81, 26, 3, 119, 6]);
    expect(o.get(DHCP_OPT.MSG_TYPE)![0]).toBe(DHCP_MSG.OFFER);
    expect(formatIPv4(o.get(DHCP_OPT.SERVER_ID)!, 0)).toBe("192.0.2.1");
    expect(hexOf(o.get(DHCP_OPT.LEASE_TIME)!)).toBe("00000e10");
    expect(formatIPv4(o.get(DHCP_OPT.SUBNET_MASK)!, 0)).toBe("255.255.255.0");
    expect(dhcpFqdnDecode(o.get(DHCP_OPT.CLIENT_FQDN)!)).toEqual({ flags: DHCP_FQDN.S, name: "guest" });
    const search = o.get(DHCP_OPT.SEARCH)!;
    expect(dnsNamesDecode(search, 0, search.length, true)).toEqual(["example.org", "test.example.org"]);
    expect(formatIPv4(o.get(DHCP_OPT.DNS)!, 0)).toBe("192.0.2.53");
    const req = parseFrame(F.DHCP_REQUEST);
    expect(req.options.get(DHCP_OPT.MSG_TYPE)![0]).toBe(DHCP_MSG.REQUEST);
    expect(formatIPv4(req.options.get(DHCP_OPT.REQUESTED_IP)!, 0)).toBe("192.0.2.16");
    expect(req.header.secs).toBe(3);
    const ack = parseFrame(F.DHCP_ACK);
    expect(ack.options.get(DHCP_OPT.MSG_TYPE)![0]).toBe(DHCP_MSG.ACK);
  });

  test("the OFFER's fixed part and option block are reproduced byte for byte", () => {
    const f = F.DHCP_OFFER;
    const { off, len, header } = parseFrame(f);
    const out = new Uint8Array(len);
    expect(dhcpHeaderEmit(out, 0, header)).toBe(240);
    const w = new DhcpOptionWriter(out, 240, 308);
    expect(w.addU8(DHCP_OPT.MSG_TYPE, DHCP_MSG.OFFER)).toBe(true);
    w.add(DHCP_OPT.SERVER_ID, ip4("192.0.2.1"));
    w.addU32(DHCP_OPT.LEASE_TIME, 3600);
    w.addU32(DHCP_OPT.RENEWAL_TIME, 1800);
    w.addU32(DHCP_OPT.REBINDING_TIME, 3150);
    w.add(DHCP_OPT.SUBNET_MASK, ip4("255.255.255.0"));
    w.add(DHCP_OPT.BROADCAST, ip4("192.0.2.255"));
    w.add(DHCP_OPT.HOSTNAME, new TextEncoder().encode("guest"));
    w.add(DHCP_OPT.CLIENT_FQDN, dhcpFqdnEncode(DHCP_FQDN.S, "guest")!);
    w.addU16(DHCP_OPT.MTU, 1500);
    w.add(DHCP_OPT.ROUTER, ip4("192.0.2.1"));
    w.add(DHCP_OPT.SEARCH, dhcpSearchListEncode(["example.org", "test.example.org"])!);
    w.add(DHCP_OPT.DNS, ip4("192.0.2.53"));
    expect(240 + w.finish()).toBe(len);
    expect(hexOf(out)).toBe(hexOf(f.subarray(off, off + len)));
  });
});

describe("DHCPv4 options", () => {
  test("the writer never exceeds its limit and keeps room for END", () => {
    const buf = new Uint8Array(100).fill(0xee);
    const w = new DhcpOptionWriter(buf, 10, 20);
    let added = 0;
    while (w.addU32(100 + added, added)) added++;
    expect(added).toBe(3);
    expect(w.length).toBe(18);
    expect(w.add(7, Uint8Array.of(1))).toBe(false);
    expect(w.add(7, new Uint8Array(0))).toBe(false);
    expect(w.finish()).toBe(19);
    expect(buf[28]).toBe(255);
    expect(buf[29]).toBe(0xee);
    expect(dhcpOptionsParse(buf, 10, 30)!.get(101)).toEqual(Uint8Array.of(0, 0, 0, 1));
    expect(new DhcpOptionWriter(buf, 0, 0).finish()).toBe(0);
  });

  test("long values are split into 255-byte pieces and concatenated back; padding to a minimum", () => {
    const buf = new Uint8Array(1000);
    const w = new DhcpOptionWriter(buf, 0, 1000);
    const long = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
    expect(w.add(DHCP_OPT.SEARCH, long)).toBe(true);
    expect(w.add(DHCP_OPT.HOSTNAME, new Uint8Array(0))).toBe(true);
    expect(w.add(DHCP_OPT.PAD, Uint8Array.of(1))).toBe(false);
    expect(w.add(DHCP_OPT.END, Uint8Array.of(1))).toBe(false);
    expect(w.length).toBe(600 + 6 + 2);
    expect(w.finish(700)).toBe(700);
    expect([buf[0], buf[1], buf[257], buf[258], buf[514], buf[515]]).toEqual([119, 255, 119, 255, 119, 90]);
    const parsed = dhcpOptionsParse(buf, 0, 700)!;
    expect(parsed.get(DHCP_OPT.SEARCH)).toEqual(long);
    expect(parsed.get(DHCP_OPT.HOSTNAME)!.length).toBe(0);
    expect(buf.subarray(609, 700).every((b) => b === 0)).toBe(true);
  });

  test("overruns, a missing END and bad fixed fields are refused", () => {
    expect(dhcpOptionsParse(Uint8Array.of(53, 1, 1), 0, 3)).toBeNull();
    expect(dhcpOptionsParse(Uint8Array.of(53, 2, 1, 255), 0, 4)).toBeNull();
    expect(dhcpOptionsParse(Uint8Array.of(0, 0, 53), 0, 3)).toBeNull();
    expect(dhcpOptionsParse(Uint8Array.of(0, 53, 1, 1, 255, 1, 2), 0, 7)!.get(53)).toEqual(Uint8Array.of(1));
    const { off, len } = dhcpOf(F.DHCP_DISCOVER);
    const msg = F.DHCP_DISCOVER.slice(off, off + len);
    expect(dhcpParse(msg, 0, 239)).toBe(-1);
    for (const [at, v] of [[0, 3], [2, 17], [236, 0x64]] as const) {
      const b = msg.slice();
      b[at] = v;
      expect(dhcpParse(b, 0, b.length)).toBe(-1);
    }
    expect(dhcpOptionsParse(msg, 240, msg.length - 1)).toBeNull();
  });

  test("FQDN, search list and classless route encodings", () => {
    expect(hexOf(dhcpFqdnEncode(DHCP_FQDN.E, "vm.orzo.test")!)).toBe("04ffff" + "02766d" + "046f727a6f" + "0474657374" + "00");
    expect(dhcpFqdnDecode(dhcpFqdnEncode(DHCP_FQDN.E, "vm.orzo.test")!)).toEqual({ flags: 4, name: "vm.orzo.test" });
    expect(dhcpFqdnEncode(DHCP_FQDN.E, "a..b")).toBeNull();
    expect(dhcpFqdnEncode(0, "bad name")).toBeNull();
    expect(dhcpFqdnDecode(Uint8Array.of(4, 255))).toBeNull();
    expect(hexOf(dhcpSearchListEncode(["example.org", "test.example.org", "EXAMPLE.org", "other.test"])!)).toBe(
      "076578616d706c65036f726700" + "0474657374c000" + "c000" + "056f7468657204" + "7465737400",
    );
    const gw = ip4("198.51.100.254");
    const routes = dhcpClasslessRoutesEncode([
      { dst: gw, prefixLen: 32, gateway: ip4("0.0.0.0") },
      { dst: ip4("0.0.0.0"), prefixLen: 0, gateway: gw },
    ])!;
    expect(hexOf(routes)).toBe("20c63364fe00000000" + "00c63364fe");
    expect(routes.length).toBe(14);
    expect(hexOf(dhcpClasslessRoutesEncode([{ dst: ip4("10.0.0.0"), prefixLen: 8, gateway: ip4("10.0.0.1") }])!)).toBe("080a0a000001");
    expect(dhcpClasslessRoutesEncode([{ dst: gw, prefixLen: 33, gateway: gw }])).toBeNull();
  });
});

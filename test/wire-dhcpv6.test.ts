import { describe, expect, test } from "bun:test";
import {
  DHCP6_FQDN, DHCP6_MSG, DHCP6_OPT, DHCP6_STATUS, DUID_LLT, dhcp6ClientFqdn, dhcp6ClientFqdnDecode, dhcp6DnsServers,
  dhcp6DomainList, dhcp6DuidLlt, dhcp6DuidTime, dhcp6Emit, dhcp6Find, dhcp6IaAddr, dhcp6IaDecode, dhcp6IaNa,
  dhcp6Option, dhcp6Options, dhcp6Parse, dhcp6StatusCode, dhcp6Xid,
} from "../src/wire/dhcpv6.ts";
import { dnsNamesDecode } from "../src/wire/dnsname.ts";
import { parseMac } from "../src/wire/ethernet.ts";
import { formatIPv6, inanyParse } from "../src/wire/inany.ts";
import { IPPROTO_UDP, L3Info } from "../src/wire/ip.ts";
import { ipv6Parse } from "../src/wire/ipv6.ts";
import { udpChecksumOk6, udpParse } from "../src/wire/udp.ts";
import * as F from "./fixtures/wire-frames.ts";

const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
const addr = (t: string) => inanyParse(t)!;

/** Digs the DHCPv6 message out of a captured frame, checking the layers around it. */
function msgOf(f: Uint8Array): { off: number; len: number } {
  const info = new L3Info();
  expect(ipv6Parse(f, 14, f.length - 14, info)).toBe(40);
  expect(info.proto).toBe(IPPROTO_UDP);
  const ulen = udpParse(f, info.l4Off, info.l4Len);
  expect(udpChecksumOk6(f, 14, info.l4Off, ulen)).toBe(true);
  return { off: info.l4Off + 8, len: ulen - 8 };
}

/** Parses a captured DHCPv6 frame: type, transaction id and top-level options. */
function parseFrame(f: Uint8Array) {
  const m = msgOf(f);
  const type = dhcp6Parse(f, m.off, m.len);
  return { ...m, type, xid: dhcp6Xid(f, m.off), options: dhcp6Options(f, m.off + 4, m.off + m.len)! };
}

describe("DHCPv6 on real frames", () => {
  test("ISC dhclient SOLICIT", () => {
    const f = F.DHCP6_SOLICIT;
    const s = parseFrame(f);
    expect([s.type, s.xid]).toEqual([DHCP6_MSG.SOLICIT, 0x66c67e]);
    expect(s.options.map((o) => o.code)).toEqual([DHCP6_OPT.CLIENTID, DHCP6_OPT.ORO, DHCP6_OPT.ELAPSED_TIME, DHCP6_OPT.IA_NA]);
    const cid = dhcp6Find(s.options, DHCP6_OPT.CLIENTID)!;
    expect(hexOf(f.subarray(cid.off, cid.off + cid.len))).toBe("00010001329970d702005e00000a");
    expect(hexOf(f.subarray(cid.off, cid.off + cid.len))).toBe(hexOf(dhcp6DuidLlt(848916695, parseMac("02:00:5e:00:00:0a")!, 0)));
    const oro = dhcp6Find(s.options, DHCP6_OPT.ORO)!;
    expect(hexOf(f.subarray(oro.off, oro.off + oro.len))).toBe("00170018" + "0027001f");
    const ia = dhcp6IaDecode(f, dhcp6Find(s.options, DHCP6_OPT.IA_NA)!)!;
    expect([ia.iaid, ia.t1, ia.t2, ia.addresses.length]).toEqual([0x5e00000a, 3600, 5400, 0]);
  });

  test("dnsmasq ADVERTISE: nested IA Address, status, domain list, DNS servers", () => {
    const f = F.DHCP6_ADVERTISE;
    const a = parseFrame(f);
    expect([a.type, a.xid]).toEqual([DHCP6_MSG.ADVERTISE, 0x66c67e]);
    expect(a.options.map((o) => o.code)).toEqual([1, 2, 3, 13, 7, 24, 23]);
    const ia = dhcp6IaDecode(f, dhcp6Find(a.options, DHCP6_OPT.IA_NA)!)!;
    expect([ia.iaid, ia.t1, ia.t2]).toEqual([0x5e00000a, 1800, 3150]);
    expect(ia.addresses.map((x) => [formatIPv6(x.addr, 0), x.preferred, x.valid])).toEqual([["2001:db8:5::19", 3600, 3600]]);
    const dl = dhcp6Find(a.options, DHCP6_OPT.DOMAIN_LIST)!;
    expect(dnsNamesDecode(f, dl.off, dl.len, false)).toEqual(["example.org"]);
    const dns = dhcp6Find(a.options, DHCP6_OPT.DNS_SERVERS)!;
    expect(formatIPv6(f, dns.off)).toBe("2001:db8:5::53");
    const st = dhcp6Find(a.options, DHCP6_OPT.STATUS_CODE)!;
    expect(new TextDecoder().decode(f.subarray(st.off + 2, st.off + st.len))).toBe("success");
  });

  test("dhclient REQUEST carries the offered address; dnsmasq REPLY confirms it", () => {
    const r = parseFrame(F.DHCP6_REQUEST);
    expect([r.type, r.xid]).toEqual([DHCP6_MSG.REQUEST, 0xa0f57e]);
    expect(dhcp6Find(r.options, DHCP6_OPT.SERVERID)).toBeDefined();
    const ia = dhcp6IaDecode(F.DHCP6_REQUEST, dhcp6Find(r.options, DHCP6_OPT.IA_NA)!)!;
    expect(ia.addresses.map((x) => [formatIPv6(x.addr, 0), x.preferred, x.valid])).toEqual([["2001:db8:5::19", 7200, 7500]]);
    const p = parseFrame(F.DHCP6_REPLY);
    expect([p.type, p.xid]).toEqual([DHCP6_MSG.REPLY, 0xa0f57e]);
  });

  test("the ADVERTISE rebuilt with the builders is byte-identical to dnsmasq's", () => {
    const f = F.DHCP6_ADVERTISE;
    const { off, len } = msgOf(f);
    const sol = parseFrame(F.DHCP6_SOLICIT);
    const cid = dhcp6Find(sol.options, DHCP6_OPT.CLIENTID)!;
    const out = new Uint8Array(len);
    const n = dhcp6Emit(out, 0, DHCP6_MSG.ADVERTISE, sol.xid, [
      dhcp6Option(DHCP6_OPT.CLIENTID, F.DHCP6_SOLICIT.slice(cid.off, cid.off + cid.len)),
      dhcp6Option(DHCP6_OPT.SERVERID, Uint8Array.of(0, 3, 0, 1, ...parseMac("02:00:5e:00:00:0b")!)),
      dhcp6IaNa(0x5e00000a, 1800, 3150, [dhcp6IaAddr(addr("2001:db8:5::19"), 0, 3600, 3600)]),
      dhcp6StatusCode(DHCP6_STATUS.SUCCESS, "success"),
      dhcp6Option(DHCP6_OPT.PREFERENCE, Uint8Array.of(0)),
      dhcp6DomainList(["example.org"])!,
      dhcp6DnsServers([addr("2001:db8:5::53")]),
    ]);
    expect(n).toBe(len);
    expect(hexOf(out)).toBe(hexOf(f.subarray(off, off + len)));
  });
});

describe("DHCPv6 builders and validation", () => {
  test("an orzo-style ADVERTISE, byte-exact", () => {
    const out = new Uint8Array(200);
    const n = dhcp6Emit(out, 0, DHCP6_MSG.ADVERTISE, 0x66c67e, [
      dhcp6Option(DHCP6_OPT.SERVERID, dhcp6DuidLlt(0x30a1b2c3, parseMac("9a:55:9a:55:9a:55")!, 0)),
      dhcp6IaNa(0x5e00000a, 0xffffffff, 0xffffffff, [dhcp6IaAddr(addr("2001:db8:1::1"), 0, 0xffffffff, 0xffffffff)]),
      dhcp6Option(DHCP6_OPT.CLIENTID, dhcp6DuidLlt(848916695, parseMac("02:00:5e:00:00:0a")!, 0)),
      dhcp6DnsServers([addr("2001:db8:1::fe")]),
      dhcp6DomainList(["orzo.test"])!,
      dhcp6ClientFqdn(0, "vm.orzo.test")!,
    ]);
    const expected = [
      "0266c67e",
      "0002000e" + "00010001" + "30a1b2c3" + "9a559a559a55",
      "00030028" + "5e00000a" + "ffffffff" + "ffffffff" + "00050018" + "20010db8000100000000000000000001" + "ffffffff" + "ffffffff",
      "0001000e" + "00010001329970d702005e00000a",
      "00170010" + "20010db80001000000000000000000fe",
      "0018000b" + "046f727a6f047465737400",
      "0027000f" + "00" + "02766d046f727a6f047465737400",
    ].join("");
    expect(hexOf(out.subarray(0, n))).toBe(expected);
    expect(dhcp6Parse(out, 0, n)).toBe(DHCP6_MSG.ADVERTISE);
    const opts = dhcp6Options(out, 4, n)!;
    expect(dhcp6ClientFqdnDecode(out, dhcp6Find(opts, DHCP6_OPT.CLIENT_FQDN)!)).toEqual({ flags: 0, name: "vm.orzo.test" });
    expect(dhcp6Emit(out, 190, DHCP6_MSG.REPLY, 1, [dhcp6DnsServers([addr("::1")])])).toBe(0);
  });

  test("NotOnLink status inside an IA, partial FQDN, DUID time", () => {
    const st = dhcp6StatusCode(DHCP6_STATUS.NOT_ON_LINK, "Prefix not appropriate for link.");
    expect(hexOf(st.subarray(0, 6))).toBe("000d00220004");
    const ia = dhcp6IaNa(7, 0, 0, [st]);
    const ia2 = dhcp6IaDecode(ia, { code: DHCP6_OPT.IA_NA, off: 4, len: ia.length - 4 })!;
    expect(ia2.options.map((o) => o.code)).toEqual([DHCP6_OPT.STATUS_CODE]);
    const partial = Uint8Array.of(0, 39, 0, 4, DHCP6_FQDN.S, 2, 0x76, 0x6d);
    expect(dhcp6ClientFqdnDecode(partial, { code: 39, off: 4, len: 4 })).toEqual({ flags: DHCP6_FQDN.S, name: "vm" });
    expect(dhcp6ClientFqdn(0, "bad..name")).toBeNull();
    expect(dhcp6DomainList(["x".repeat(64)])).toBeNull();
    expect(dhcp6DuidTime(Date.UTC(2000, 0, 1))).toBe(0);
    expect(dhcp6DuidTime(Date.UTC(2000, 0, 2, 0, 0, 1))).toBe(86401);
    expect(dhcp6DuidTime(Date.UTC(1999, 11, 31, 23, 59, 59))).toBe(0xffffffff);
    expect(dhcp6DuidLlt(1, parseMac("9a:55:9a:55:9a:55")!, 0)[1]).toBe(DUID_LLT);
  });

  test("malformed messages are refused", () => {
    const { off, len } = msgOf(F.DHCP6_ADVERTISE);
    const good = F.DHCP6_ADVERTISE.slice(off, off + len);
    expect(dhcp6Parse(good, 0, len)).toBe(DHCP6_MSG.ADVERTISE);
    const patched = (at: number, v: number) => {
      const b = good.slice();
      b[at] = v;
      return dhcp6Parse(b, 0, len);
    };
    const iaAt = 4 + 18 + 14;
    expect(good[iaAt + 1]).toBe(DHCP6_OPT.IA_NA);
    expect(patched(iaAt + 3, 11)).toBe(-1);
    expect(patched(iaAt + 4 + 12 + 3, 23)).toBe(-1);
    expect(patched(iaAt + 4 + 12 + 3, 25)).toBe(-1);
    expect(patched(0, 12)).toBe(-1);
    expect(patched(0, 0)).toBe(-1);
    expect(patched(3 + 4, 1)).toBe(-1);
    expect(dhcp6Parse(good, 0, 3)).toBe(-1);
    expect(dhcp6Parse(good, 0, len - 1)).toBe(-1);
    const longDuid = dhcp6Emit(new Uint8Array(200), 0, 1, 1, [dhcp6Option(DHCP6_OPT.CLIENTID, new Uint8Array(129))]);
    expect(longDuid).toBe(4 + 4 + 129);
    const b = new Uint8Array(longDuid);
    dhcp6Emit(b, 0, 1, 1, [dhcp6Option(DHCP6_OPT.CLIENTID, new Uint8Array(129))]);
    expect(dhcp6Parse(b, 0, b.length)).toBe(-1);
    expect(dhcp6IaDecode(good, { code: DHCP6_OPT.CLIENTID, off: 8, len: 14 })).toBeNull();
  });
});

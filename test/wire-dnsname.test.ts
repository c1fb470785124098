import { describe, expect, test } from "bun:test";
import { dnsNameDecode, dnsNameEncode, dnsNamesDecode, dnsNamesEncode } from "../src/wire/dnsname.ts";

const hexOf = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("hex"));
const bytes = (...v: (number | string)[]) =>
  Uint8Array.from(v.flatMap((x) => (typeof x === "string" ? Array.from(x, (c) => c.charCodeAt(0)) : [x])));

describe("DNS names", () => {
  test("encoding: labels, root, trailing dot, limits", () => {
    expect(hexOf(dnsNameEncode("example.org"))).toBe("076578616d706c65036f726700");
    expect(hexOf(dnsNameEncode("example.org."))).toBe("076578616d706c65036f726700");
    expect(hexOf(dnsNameEncode("."))).toBe("00");
    expect(hexOf(dnsNameEncode(""))).toBe("00");
    expect(dnsNameEncode("a".repeat(63))!.length).toBe(65);
    expect(dnsNameEncode("a".repeat(64))).toBeNull();
    const l63 = "a".repeat(63);
    expect(dnsNameEncode([l63, l63, l63, "b".repeat(61)].join("."))!.length).toBe(255);
    expect(dnsNameEncode([l63, l63, l63, "b".repeat(62)].join("."))).toBeNull();
    for (const bad of ["a..b", ".a", "a b", "caf\u00e9.fr", "x..", ".."]) expect(dnsNameEncode(bad)).toBeNull();
  });

  test("compression points at earlier suffixes, case-insensitively", () => {
    const wire = dnsNamesEncode(["a.example.org", "b.Example.ORG", "org", "a.example.org"], true)!;
    expect(hexOf(wire)).toBe("0161076578616d706c65036f726700" + "0162c002" + "c00a" + "c000");
    expect(dnsNamesDecode(wire, 0, wire.length, true)).toEqual(["a.example.org", "b.example.org", "org", "a.example.org"]);
    expect(dnsNamesDecode(wire, 0, wire.length, false)).toBeNull();
    expect(hexOf(dnsNamesEncode(["a.b", "a.b"], false))).toBe("0161016200" + "0161016200");
    expect(dnsNamesEncode(["ok", "bad..name"], true)).toBeNull();
  });

  test("decoding refuses forward, self and looping pointers, reserved label types, truncation", () => {
    expect(dnsNamesDecode(bytes(0xc0, 2, 1, "a", 0), 0, 5, true)).toBeNull();
    expect(dnsNamesDecode(bytes(0xc0, 0), 0, 2, true)).toBeNull();
    expect(dnsNamesDecode(bytes(1, "a", 0xc0, 0), 0, 4, true)).toBeNull();
    expect(dnsNamesDecode(bytes(1, "a", 0, 1, "b", 0xc0, 0), 0, 7, true)).toEqual(["a", "b.a"]);
    expect(dnsNamesDecode(bytes(1, "a", 0, 0xc0), 0, 4, true)).toBeNull();
    expect(dnsNamesDecode(bytes(0x40, "a", 0), 0, 3, false)).toBeNull();
    expect(dnsNamesDecode(bytes(0x80, "a", 0), 0, 3, false)).toBeNull();
    expect(dnsNamesDecode(bytes(3, "ab"), 0, 3, false)).toBeNull();
    expect(dnsNamesDecode(bytes(2, "ab"), 0, 3, false)).toBeNull();
    expect(dnsNamesDecode(bytes(2, "ab", 0, 0, 0, 0), 0, 7, false)).toEqual(["ab"]);
    expect(dnsNamesDecode(bytes(1, "a", 0), 1, 5, false)).toBeNull();
    const long = new Uint8Array(300);
    for (let i = 0; i < 256; i += 2) long.set([1, 0x61], i);
    expect(dnsNamesDecode(long, 0, 300, false)).toBeNull();
  });

  test("single names may be partial (no final zero), as in FQDN options", () => {
    expect(dnsNameDecode(bytes(2, "vm", 4, "orzo"), 0, 8)).toBe("vm.orzo");
    expect(dnsNameDecode(bytes(2, "vm", 0), 0, 4)).toBe("vm");
    expect(dnsNameDecode(bytes(2, "vm", 0, 0), 0, 5)).toBeNull();
    expect(dnsNameDecode(bytes(2, "v"), 0, 2)).toBeNull();
    expect(dnsNameDecode(bytes(0xc0, 0), 0, 2)).toBeNull();
  });
});

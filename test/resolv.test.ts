/** resolv.conf parsing: real-world files, junk, and random text. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseResolvConf, readResolvConf } from "../src/resolv.ts";

const scratch = mkdtempSync(join(tmpdir(), "orzo-resolv-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// What systemd-resolved writes in stub mode (abridged).
const SYSTEMD_STUB = `# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
# Do not edit.
#
# 127.0.0.53 is the systemd-resolved stub resolver.
# run "resolvectl status" to see details about the actual nameservers.

nameserver 127.0.0.53
options edns0 trust-ad
search lan corp.example.com
`;

describe("parseResolvConf", () => {
  test("a systemd-resolved stub file", () => {
    expect(parseResolvConf(SYSTEMD_STUB)).toEqual({ nameservers: ["127.0.0.53"], search: ["lan", "corp.example.com"] });
  });

  test("nameservers of both versions in file order, zone suffixes removed, text made canonical", () => {
    const text = [
      "nameserver 192.0.2.53",
      "nameserver\tfe80::1%eth0",
      "   nameserver   2001:DB8:0::53   # trailing words are ignored",
      "nameserver 198.51.100.53\r",
    ].join("\n");
    expect(parseResolvConf(text).nameservers).toEqual(["192.0.2.53", "fe80::1", "2001:db8::53", "198.51.100.53"]);
  });

  test("comments, unknown keywords and malformed lines are skipped", () => {
    const text = [
      "# nameserver 192.0.2.1",
      "; nameserver 192.0.2.2",
      "nameserver",
      "nameserver dns.example.com",
      "nameserver 192.0.2.300",
      "nameserver [2001:db8::1]",
      "nameserverx 192.0.2.3",
      "NAMESERVER 192.0.2.4",
      "sortlist 130.155.160.0/255.255.240.0",
      "options ndots:2",
      "\u0000\u00ff garbage \u{1f600}",
      "nameserver 192.0.2.5",
    ].join("\n");
    expect(parseResolvConf(text)).toEqual({ nameservers: ["192.0.2.5"], search: [] });
  });

  test("the last search or domain line gives the search list; bad names and comments are dropped", () => {
    expect(parseResolvConf("search a.example b.example\nsearch c.example\n").search).toEqual(["c.example"]);
    expect(parseResolvConf("search a.example\ndomain d.example\n").search).toEqual(["d.example"]);
    expect(parseResolvConf("domain d.example\nsearch a.example b.example\n").search).toEqual(
      ["a.example", "b.example"],
    );
    expect(parseResolvConf(`search ok.example a..b ${"x".repeat(64)}.example . # c.example`).search).toEqual([
      "ok.example",
    ]);
    expect(parseResolvConf("search").search).toEqual([]);
  });

  test("duplicate nameservers are kept once", () => {
    expect(parseResolvConf("nameserver 192.0.2.1\nnameserver 192.0.2.1\n").nameservers).toEqual(["192.0.2.1"]);
  });

  test("overlong input stays bounded", () => {
    const many = Array.from({ length: 1000 }, (_, i) => `nameserver 10.${i >> 8}.${i & 255}.1`).join("\n");
    expect(parseResolvConf(many).nameservers).toHaveLength(32);
    const longLine = `search ${"a.example ".repeat(10000)}`;
    expect(parseResolvConf(longLine).search).toHaveLength(32);
    expect(parseResolvConf(`nameserver ${"1".repeat(1 << 20)}`).nameservers).toEqual([]);
  });

  test("random text never throws and yields only well-formed entries", () => {
    let seed = 0x2545f491;
    const random = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const pieces = ["nameserver", "search", "domain", " ", "\t", "\n", "\r\n", "#", ";", "%", ".", ":", "::",
      "192.0.2.1", "fe80::1", "127.0.0.53", "example", "com", "0", "255", "256", "\u0000", "é", "\u{1f600}"];
    for (let round = 0; round < 2000; round++) {
      let text = "";
      const len = random(40);
      for (let i = 0; i < len; i++) {
        text += random(4) === 0 ? String.fromCharCode(random(0x3000)) : pieces[random(pieces.length)];
      }
      const parsed = parseResolvConf(text);
      for (const ns of parsed.nameservers) expect(ns).toMatch(/^[0-9a-f.:]+$/);
      for (const domain of parsed.search) expect(domain).not.toMatch(/\s/);
      // Truncated input parses too.
      parseResolvConf(text.slice(0, random(text.length + 1)));
    }
  });
});

describe("readResolvConf", () => {
  test("reads a file", () => {
    const path = join(scratch, "resolv.conf");
    writeFileSync(path, SYSTEMD_STUB);
    expect(readResolvConf(path)).toEqual({ nameservers: ["127.0.0.53"], search: ["lan", "corp.example.com"] });
  });

  test("a missing or unreadable file is an empty configuration", () => {
    expect(readResolvConf(join(scratch, "missing"))).toEqual({ nameservers: [], search: [] });
    expect(readResolvConf(scratch)).toEqual({ nameservers: [], search: [] });
  });

  test("only the first MiB of a huge file is read", () => {
    const path = join(scratch, "huge.conf");
    writeFileSync(path, `nameserver 192.0.2.1\n${"#".repeat(1 << 20)}\nnameserver 192.0.2.2\n`);
    expect(readResolvConf(path).nameservers).toEqual(["192.0.2.1"]);
  });

  test("the host's own file parses", () => {
    const conf = readResolvConf();
    expect(Array.isArray(conf.nameservers)).toBe(true);
    expect(Array.isArray(conf.search)).toBe(true);
  });
});

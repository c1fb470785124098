import { describe, expect, test } from "bun:test";
import { inanyIsV4, inanyParse, inanyToText } from "../src/wire/inany.ts";

describe("inany addresses", () => {
  test("IPv4 becomes IPv4-mapped and formats back", () => {
    const a = inanyParse("198.51.100.1")!;
    expect(Array.from(a)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 198, 51, 100, 1]);
    expect(inanyIsV4(a, 0)).toBe(true);
    expect(inanyToText(a, 0)).toBe("198.51.100.1");
  });

  test("IPv6 forms parse and format in RFC 5952 form", () => {
    const cases: [string, string][] = [
      ["2001:db8:1::1", "2001:db8:1::1"],
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["::", "::"],
      ["::1", "::1"],
      ["fe80::", "fe80::"],
      ["[2001:db8::fe]", "2001:db8::fe"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ];
    for (const [text, formatted] of cases) {
      const a = inanyParse(text);
      expect(a).not.toBeNull();
      expect(inanyToText(a!, 0)).toBe(formatted);
    }
  });

  test("invalid text is refused", () => {
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", ":::", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "notanaddress", "[::1"]) {
      expect(inanyParse(bad)).toBeNull();
    }
  });

  test("random text never throws", () => {
    const alphabet = "0123456789abcdef:.[]g ";
    for (let i = 0; i < 5000; i++) {
      let s = "";
      const n = Math.floor(Math.random() * 20);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
      const a = inanyParse(s);
      if (a) expect(inanyParse(inanyToText(a, 0))).toEqual(a);
    }
  });
});

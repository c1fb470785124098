import { describe, expect, test } from "bun:test";
import { csumFinish, csumFold, csumPartial, l4Checksum4, l4Checksum6, pseudoHeader4, pseudoHeader6 } from "../src/wire/checksum.ts";
import { DHCP6_SOLICIT, ICMP6_ECHO_REQUEST, TCP4_SYN, TCP6_SYN, UDP4_DATAGRAM, rng } from "./fixtures/wire-frames.ts";

/** The textbook RFC 1071 loop: big-endian words, end-around carry, one byte at a time. */
function referenceSum(buf: Uint8Array, off: number, len: number, initial: number): number {
  let s = initial;
  for (let i = 0; i < len; i++) s += i & 1 ? buf[off + i] : buf[off + i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

describe("Internet checksum", () => {
  test("RFC 1071 §3 example and edge vectors", () => {
    const rfc = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(csumPartial(rfc, 0, 8, 0)).toBe(0xddf2);
    expect(csumFinish(csumPartial(rfc, 0, 8, 0))).toBe(0x220d);
    expect(csumPartial(new Uint8Array(100), 0, 100, 0)).toBe(0);
    expect(csumFinish(0)).toBe(0xffff);
    expect(csumPartial(new Uint8Array(200).fill(0xff), 0, 200, 0)).toBe(0xffff);
    expect(csumPartial(Uint8Array.of(0xab), 0, 1, 0)).toBe(0xab00);
    expect(csumPartial(Uint8Array.of(1, 2, 3), 0, 0, 0x1234)).toBe(0x1234);
    expect(csumFold(0x1fffe)).toBe(0xffff);
    expect(csumFold(2 ** 52 + 7)).toBe(referenceFoldOf(2 ** 52 + 7));
  });

  test("matches the byte loop on random buffers, lengths, offsets and alignments", () => {
    const rand = rng(42);
    const backing = new Uint8Array(140_000);
    for (let i = 0; i < backing.length; i++) backing[i] = rand() * 256;
    for (let t = 0; t < 6000; t++) {
      const viewStart = Math.floor(rand() * 8);
      const view = new Uint8Array(backing.buffer, viewStart, backing.length - viewStart);
      const off = Math.floor(rand() * 64);
      const len = t % 50 === 0 ? Math.floor(rand() * 132_000) : Math.floor(rand() * 1600);
      const initial = t % 3 === 0 ? 0 : Math.floor(rand() * 0x3ffff);
      expect(csumPartial(view, off, len, initial)).toBe(referenceSum(view, off, len, initial));
    }
  });

  test("chaining even-length pieces equals one pass", () => {
    const rand = rng(7);
    const buf = new Uint8Array(3000);
    for (let i = 0; i < buf.length; i++) buf[i] = rand() * 256;
    for (let t = 0; t < 500; t++) {
      const cut = 2 * Math.floor(rand() * 1500);
      const whole = csumPartial(buf, 0, 3000, 0);
      expect(csumPartial(buf, cut, 3000 - cut, csumPartial(buf, 0, cut, 0))).toBe(whole);
    }
  });

  test("never reads outside the view, even where the backing buffer continues", () => {
    const backing = new Uint8Array(4096).fill(0xee);
    const view = new Uint8Array(backing.buffer, 1000, 100);
    view.fill(0);
    expect(csumPartial(view, 0, 100, 0)).toBe(0);
    expect(csumPartial(view, 10, 500, 0)).toBe(0);
  });

  test("pseudo-headers and L4 checksums verify on real frames", () => {
    expect(l4Checksum4(TCP4_SYN, 14, 34, TCP4_SYN.length - 34)).toBe(0);
    expect(l4Checksum4(UDP4_DATAGRAM, 14, 34, UDP4_DATAGRAM.length - 34)).toBe(0);
    expect(l4Checksum6(TCP6_SYN, 14, 6, 54, TCP6_SYN.length - 54)).toBe(0);
    expect(l4Checksum6(ICMP6_ECHO_REQUEST, 14, 58, 54, ICMP6_ECHO_REQUEST.length - 54)).toBe(0);
    expect(l4Checksum6(DHCP6_SOLICIT, 14, 17, 54, DHCP6_SOLICIT.length - 54)).toBe(0);
    const ph4 = pseudoHeader4(TCP4_SYN, 26, TCP4_SYN, 30, 6, 40);
    expect(ph4).toBe(0xc000 + 0x0214 + 0xc000 + 0x0201 + 6 + 40);
    const ph6 = pseudoHeader6(TCP6_SYN, 22, TCP6_SYN, 38, 6, 0x12345);
    let words = 6 + 0x1 + 0x2345;
    for (let k = 0; k < 32; k += 2) words += (TCP6_SYN[22 + k] << 8) | TCP6_SYN[23 + k];
    expect(ph6).toBe(words);
  });

  test("speed: at least 1 GB/s on 64 KiB, and well ahead of the byte loop", () => {
    const buf = new Uint8Array(65536);
    const rand = rng(3);
    for (let i = 0; i < buf.length; i++) buf[i] = rand() * 256;
    const rate = (f: () => void, n: number): number => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) f();
      return (n * buf.length) / ((performance.now() - t0) * 1e6);
    };
    const fast = () => csumPartial(buf, 0, buf.length, 0);
    const slow = () => referenceSum(buf, 0, buf.length, 0);
    // The JIT reaches its top tier only after some milliseconds of hot looping: warm up by time, not by count.
    for (const t0 = performance.now(); performance.now() - t0 < 150; ) rate(fast, 20);
    for (const t0 = performance.now(); performance.now() - t0 < 150; ) rate(slow, 2);
    let bestFast = 0;
    let bestSlow = 0;
    for (let round = 0; round < 5; round++) {
      bestFast = Math.max(bestFast, rate(fast, 200));
      bestSlow = Math.max(bestSlow, rate(slow, 20));
    }
    expect(bestFast).toBeGreaterThan(1);
    expect(bestFast).toBeGreaterThan(3 * bestSlow);
  });
});

/** Folds a large sum the slow way, for the csumFold vector. */
function referenceFoldOf(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

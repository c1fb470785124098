/**
 * Control messages: the local address (PKTINFO) and the queued error (RECVERR: struct sock_extended_err and the
 * offender) read from real control data, as Linux 6.x wrote it for a UDP datagram to a closed port on loopback,
 * and from what the kernel queues live; then truncated and random control data, which must read as "not there".
 */
import { describe, expect, test } from "bun:test";
import { DatagramMsg, bindInany, connectInany, udpSocket } from "../src/flows/udp_sock.ts";
import { cmsgFind, cmsgLocalAddress, cmsgSockExtendedErr, SockExtendedErr } from "../src/syscalls/cmsg.ts";
import {
  IP_PKTINFO, IP_RECVERR, IPPROTO_IP, IPPROTO_IPV6, IPV6_RECVERR, MSG_ERRQUEUE, POLLERR, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6,
} from "../src/syscalls/constants.ts";
import { Errno } from "../src/syscalls/errno.ts";
import { close, sendto } from "../src/syscalls/io.ts";
import { Mem } from "../src/syscalls/mem.ts";
import { pollOne } from "../src/syscalls/poll.ts";
import { inanyParse, inanyToText } from "../src/wire/inany.ts";
import { inPrivateNetns } from "./helpers/private-netns.ts";

/** IP_PKTINFO then IP_RECVERR: ECONNREFUSED, origin ICMP, type 3 code 3, offender 127.0.0.1. */
const ERRQUEUE4 =
  "1c00000000000000000000000800000001000000000000007f00000100000000" +
  "3000000000000000000000000b0000006f000000020303000000000000000000" +
  "020000007f0000010000000000000000";
/** IPV6_PKTINFO then IPV6_RECVERR: ECONNREFUSED, origin ICMPv6, type 1 code 4, offender ::1. */
const ERRQUEUE6 =
  "2400000000000000290000003200000000000000000000000000000000000001" +
  "01000000000000003c0000000000000029000000190000006f00000003010400" +
  "00000000000000000a0000000000000000000000000000000000000000000001" +
  "0000000000000000";

function mem(hex: string): { m: Mem; len: number } {
  const bytes = Buffer.from(hex, "hex");
  const m = new Mem(bytes.length);
  m.bytes.set(bytes);
  return { m, len: bytes.length };
}

/** The fields of a parsed error, for comparison. */
function fields(e: SockExtendedErr) {
  return { level: e.level, errno: e.errno, origin: e.origin, type: e.type, code: e.code, info: e.info, offender: e.hasOffender ? inanyToText(e.offender, 0) : null };
}

describe("control messages from the kernel", () => {
  test("IP_RECVERR after PKTINFO: the extended error and its offender; PKTINFO: the local address", () => {
    const { m, len } = mem(ERRQUEUE4);
    const e = new SockExtendedErr();
    expect(cmsgSockExtendedErr(m, 0, len, e)).toBe(true);
    expect(fields(e)).toEqual({ level: IPPROTO_IP, errno: Errno.ECONNREFUSED, origin: SO_EE_ORIGIN_ICMP, type: 3, code: 3, info: 0, offender: "127.0.0.1" });
    const local = new Uint8Array(16);
    expect(cmsgLocalAddress(m, 0, len, local, 0)).toBe(true);
    expect(inanyToText(local, 0)).toBe("127.0.0.1");
    expect(cmsgFind(m, 0, len, IPPROTO_IP, IP_PKTINFO, 12)).toBe(16);
    expect(cmsgFind(m, 0, len, IPPROTO_IP, IP_RECVERR, 16)).toBe(48);
    expect(cmsgFind(m, 0, len, IPPROTO_IP, IP_RECVERR, 64)).toBe(-1);
  });

  test("IPV6_RECVERR after IPV6_PKTINFO: type 1 code 4 from ::1", () => {
    const { m, len } = mem(ERRQUEUE6);
    const e = new SockExtendedErr();
    expect(cmsgSockExtendedErr(m, 0, len, e)).toBe(true);
    expect(fields(e)).toEqual({ level: IPPROTO_IPV6, errno: Errno.ECONNREFUSED, origin: SO_EE_ORIGIN_ICMP6, type: 1, code: 4, info: 0, offender: "::1" });
    const local = new Uint8Array(16);
    expect(cmsgLocalAddress(m, 0, len, local, 0)).toBe(true);
    expect(inanyToText(local, 0)).toBe("::1");
    expect(cmsgFind(m, 0, len, IPPROTO_IPV6, IPV6_RECVERR, 16)).toBe(56);
  });

  test("what the kernel queues now for a datagram to a closed port reads the same", () => {
    inPrivateNetns(() => {
      for (const [v4, addr, level, origin, type, code] of [
        [true, "127.0.0.1", IPPROTO_IP, SO_EE_ORIGIN_ICMP, 3, 3],
        [false, "::1", IPPROTO_IPV6, SO_EE_ORIGIN_ICMP6, 1, 4],
      ] as const) {
        const fd = udpSocket(v4, true);
        try {
          expect(bindInany(fd, inanyParse(addr)!, 0, 0)).toBe(0);
          expect(connectInany(fd, inanyParse(addr)!, 0, 9)).toBe(0);
          const data = new Mem(16);
          expect(sendto(fd, data.addr, 16, 0, 0, 0)).toBe(16);
          expect(pollOne(fd, 0, 2000) & POLLERR).toBe(POLLERR);
          const msg = new DatagramMsg(new Mem(2048));
          expect(msg.recv(fd, MSG_ERRQUEUE)).toBe(16);
          const e = new SockExtendedErr();
          expect(msg.error(e)).toBe(true);
          expect(fields(e)).toEqual({ level, errno: Errno.ECONNREFUSED, origin, type, code, info: 0, offender: addr });
          // A message read without MSG_ERRQUEUE in its flags is no error, whatever its control data.
          expect(msg.recv(fd, 0)).toBe(-Errno.EAGAIN);
          expect(msg.error(e)).toBe(false);
        } finally {
          close(fd);
        }
      }
    });
  });

  test("truncated and random control data reads as no message, never throws or reads past its end", () => {
    const e = new SockExtendedErr();
    const local = new Uint8Array(16);
    for (const hex of [ERRQUEUE4, ERRQUEUE6]) {
      const { m, len } = mem(hex);
      const first = m.view.getUint32(0, true);
      const second = (first + 7) & ~7;
      const end = second + m.view.getUint32(second, true);
      // Cut anywhere: the first message (PKTINFO) reads once whole, the error once whole, trailing padding aside.
      for (let cut = 0; cut <= len; cut++) {
        expect({ cut, error: cmsgSockExtendedErr(m, 0, cut, e) }).toEqual({ cut, error: cut >= end });
        expect({ cut, local: cmsgLocalAddress(m, 0, cut, local, 0) }).toEqual({ cut, local: cut >= first });
      }
      // A length field pointing past the buffer, or below the header size, ends the walk.
      for (const bad of [0, 15, len + 1, 0xffffffff]) {
        const copy = mem(hex).m;
        copy.view.setUint32(0, bad, true);
        expect(cmsgSockExtendedErr(copy, 0, len, e)).toBe(false);
      }
    }
    const m = new Mem(256);
    for (let round = 0; round < 2000; round++) {
      crypto.getRandomValues(m.bytes);
      // Small lengths and the two error levels make random messages that look almost right.
      m.view.setUint32(0, 16 + (m.bytes[0] & 63), true);
      m.view.setUint32(4, 0, true);
      m.view.setInt32(8, round & 1 ? IPPROTO_IPV6 : IPPROTO_IP, true);
      m.view.setInt32(12, round & 1 ? IPV6_RECVERR : IP_RECVERR, true);
      const len = m.bytes[1];
      expect(() => {
        cmsgSockExtendedErr(m, 0, len, e);
        cmsgLocalAddress(m, 0, len, local, 0);
      }).not.toThrow();
    }
  });
});

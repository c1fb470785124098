import { afterEach, describe, expect, test } from "bun:test";
import * as C from "../src/syscalls/constants.ts";
import { Errno, errnoName, SyscallError } from "../src/syscalls/errno.ts";
import { close, open, pipe2, readBytes, readv, recvmmsg, sendmmsg, splice, writeBytes, writev, read, write, fcntl } from "../src/syscalls/io.ts";
import { Mem } from "../src/syscalls/mem.ts";
import { IovecArray, MmsgArray } from "../src/syscalls/msg.ts";
import { decodeSockaddr, encodeSockaddr, sockaddrFromInany, sockaddrToInany, SockAddrError, type SockAddr } from "../src/syscalls/sockaddr.ts";
import { accept4, bind, connect, getsockname, getsockoptInt, listen, setsockoptInt, socket, socketpair, socketError } from "../src/syscalls/socket.ts";
import { eventfdCreate, readCounter, timerfdCreate, timerfdRemainingMs, timerfdSet, writeCounter } from "../src/syscalls/timer.ts";
import { epollCreate, epollCtl, EpollEvents, epollWait } from "../src/syscalls/epoll.ts";
import { inanyParse, inanyToText } from "../src/wire/inany.ts";

const opened: number[] = [];
/** Remembers an fd to close after the test. */
function track<T extends number | number[]>(fds: T): T {
  opened.push(...(typeof fds === "number" ? [fds] : (fds as number[])));
  return fds;
}
afterEach(() => {
  while (opened.length) close(opened.pop()!);
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("syscall round trips on real fds", () => {
  test("socketpair carries bytes both ways", () => {
    const [a, b] = track(socketpair(C.AF_UNIX, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    expect(writeBytes(a, bytes("ping"))).toBe(4);
    const buf = new Uint8Array(16);
    expect(readBytes(b, buf)).toBe(4);
    expect(text(buf.subarray(0, 4))).toBe("ping");
    expect(writeBytes(b, bytes("pong!"))).toBe(5);
    expect(readBytes(a, buf)).toBe(5);
    expect(text(buf.subarray(0, 5))).toBe("pong!");
  });

  test("pipe2 with address-based read and write, and pipe size control", () => {
    const [r, w] = track(pipe2(C.O_NONBLOCK | C.O_CLOEXEC));
    const mem = new Mem(64);
    mem.bytes.set(bytes("hello, pipe"), 8);
    expect(write(w, mem.addr + 8, 11)).toBe(11);
    expect(read(r, mem.addr + 32, 32)).toBe(11);
    expect(text(mem.bytes.subarray(32, 43))).toBe("hello, pipe");
    expect(fcntl(w, C.F_SETPIPE_SZ, 1 << 20)).toBeGreaterThanOrEqual(1 << 20);
    expect(fcntl(w, C.F_GETPIPE_SZ, 0)).toBeGreaterThanOrEqual(1 << 20);
  });

  test("readv and writev gather and scatter", () => {
    const [r, w] = track(pipe2(C.O_CLOEXEC));
    const data = new Mem(64);
    data.bytes.set(bytes("abc"), 0);
    data.bytes.set(bytes("defgh"), 16);
    const iov = new IovecArray(4);
    iov.set(0, data.addr, 3);
    iov.set(1, data.addr + 16, 5);
    expect(writev(w, iov.addressOf(0), 2)).toBe(8);
    iov.set(2, data.addr + 32, 2);
    iov.set(3, data.addr + 48, 6);
    expect(readv(r, iov.addressOf(2), 2)).toBe(8);
    expect(text(data.bytes.subarray(32, 34)) + text(data.bytes.subarray(48, 54))).toBe("abcdefgh");
  });

  test("eventfd counts and timerfd expires", () => {
    const efd = track(eventfdCreate(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC));
    expect(readCounter(efd)).toBe(-Errno.EAGAIN);
    expect(writeCounter(efd, 3)).toBe(8);
    expect(writeCounter(efd, 2 ** 40)).toBe(8);
    expect(readCounter(efd)).toBe(3 + 2 ** 40);

    const tfd = track(timerfdCreate(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC));
    expect(timerfdSet(tfd, 1500, 0)).toBe(0);
    const remaining = timerfdRemainingMs(tfd);
    expect(remaining).toBeGreaterThan(1000);
    expect(remaining).toBeLessThanOrEqual(1500);
    expect(timerfdSet(tfd, 5, 0)).toBe(0);
    const ep = track(epollCreate());
    expect(epollCtl(ep, C.EPOLL_CTL_ADD, tfd, C.EPOLLIN, 7, 9)).toBe(0);
    const events = new EpollEvents(4);
    expect(epollWait(ep, events, 2000)).toBe(1);
    expect([events.words[1], events.words[2]]).toEqual([7, 9]);
    expect(readCounter(tfd)).toBe(1);
  });

  test("recvmmsg and sendmmsg move a batch of UDP datagrams with addresses", () => {
    const rx = track(socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0));
    bind(rx, { family: "ipv4", address: "127.0.0.1", port: 0 });
    const rxAddr = getsockname(rx);
    const tx = track(socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0));
    const out = new MmsgArray(8);
    const payload = new Mem(8 * 100);
    for (let i = 0; i < 8; i++) {
      payload.bytes.fill(65 + i, i * 100, i * 100 + 10 + i);
      out.iov.set(i, payload.addr + i * 100, 10 + i);
      out.setMessage(i, i, 1, encodeSockaddr(rxAddr, out.names, out.nameOffset(i)));
    }
    expect(sendmmsg(tx, out.mem.addr, 8, 0)).toBe(8);
    for (let i = 0; i < 8; i++) expect(out.messageLength(i)).toBe(10 + i);

    const inb = new MmsgArray(16);
    const landing = new Mem(16 * 100);
    for (let i = 0; i < 16; i++) {
      inb.iov.set(i, landing.addr + i * 100, 100);
      inb.setMessage(i, i, 1, 128);
    }
    expect(recvmmsg(rx, inb.mem.addr, 16, 0)).toBe(8);
    const src = getsockname(tx) as { port: number };
    for (let i = 0; i < 8; i++) {
      expect(inb.messageLength(i)).toBe(10 + i);
      expect(landing.bytes[i * 100]).toBe(65 + i);
      const from = decodeSockaddr(inb.names, inb.nameOffset(i), inb.nameLength(i));
      expect(from).toEqual({ family: "ipv4", address: "127.0.0.1", port: src.port });
    }
  });

  test("splice moves data from a socket through a pipe to another socket", () => {
    const [a, b] = track(socketpair(C.AF_UNIX, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    const [c, d] = track(socketpair(C.AF_UNIX, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    const [pr, pw] = track(pipe2(C.O_NONBLOCK | C.O_CLOEXEC));
    const msg = bytes("spliced through a pipe");
    writeBytes(a, msg);
    expect(splice(b, pw, 65536, C.SPLICE_F_MOVE | C.SPLICE_F_NONBLOCK)).toBe(msg.length);
    expect(splice(pr, c, 65536, C.SPLICE_F_MOVE | C.SPLICE_F_NONBLOCK)).toBe(msg.length);
    const buf = new Uint8Array(64);
    expect(readBytes(d, buf)).toBe(msg.length);
    expect(text(buf.subarray(0, msg.length))).toBe("spliced through a pipe");
  });

  test("TCP over loopback: listen, connect, accept, options", () => {
    const l = track(socket(C.AF_INET6, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    expect(setsockoptInt(l, C.SOL_SOCKET, C.SO_REUSEADDR, 1)).toBe(0);
    bind(l, { family: "ipv6", address: "::1", port: 0 });
    listen(l, 16);
    const port = (getsockname(l) as { port: number }).port;
    const c = track(socket(C.AF_INET6, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    expect(connect(c, { family: "ipv6", address: "::1", port })).toBe(0);
    const peer = new Mem(256);
    const s = track(accept4(l, C.SOCK_CLOEXEC | C.SOCK_NONBLOCK, peer, 0));
    expect(s).toBeGreaterThan(0);
    const key = new Uint8Array(16);
    expect(sockaddrToInany(peer, 0, key, 0)).toBe((getsockname(c) as { port: number }).port);
    expect(inanyToText(key, 0)).toBe("::1");
    expect(setsockoptInt(s, C.IPPROTO_TCP, C.TCP_NODELAY, 1)).toBe(0);
    expect(getsockoptInt(s, C.IPPROTO_TCP, C.TCP_NODELAY)).toBe(1);
    expect(socketError(s)).toBe(0);
  });
});

describe("errno handling", () => {
  test("EBADF, EAGAIN and ECONNREFUSED come back as negative errno with the right names", () => {
    expect(close(987654)).toBe(-Errno.EBADF);
    expect(errnoName(Errno.EBADF)).toBe("EBADF");
    const [r] = track(pipe2(C.O_NONBLOCK | C.O_CLOEXEC));
    expect(readBytes(r, new Uint8Array(4))).toBe(-Errno.EAGAIN);
    expect(errnoName(-Errno.EAGAIN)).toBe("EAGAIN");

    const l = track(socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    bind(l, { family: "ipv4", address: "127.0.0.1", port: 0 });
    const port = (getsockname(l) as { port: number }).port;
    close(opened.pop()!); // nothing listens on that port any more
    const c = track(socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    const r2 = connect(c, { family: "ipv4", address: "127.0.0.1", port });
    expect(errnoName(r2)).toBe("ECONNREFUSED");
    expect(errnoName(200)).toBe("E200");
  });

  test("setup-path failures throw a SyscallError naming call, errno and message", () => {
    let err: unknown;
    try {
      open("/nonexistent/orzo-test", C.O_RDONLY);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    const e = err as SyscallError;
    expect(e.code).toBe("ENOENT");
    expect(e.errno).toBe(Errno.ENOENT);
    expect(e.message).toBe("open(/nonexistent/orzo-test): ENOENT (No such file or directory)");

    const s = track(socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0));
    bind(s, { family: "ipv4", address: "127.0.0.1", port: 0 });
    expect(() => bind(s, { family: "ipv4", address: "127.0.0.1", port: 0 })).toThrow(/^bind\(127\.0\.0\.1:0\): EINVAL \(Invalid argument\)$/);
    expect(() => socket(12345, C.SOCK_STREAM, 0)).toThrow(/^socket: EAFNOSUPPORT \(Address family not supported by protocol\)$/);
  });

  test("errno stays right across many alternating failures and successes", () => {
    const [r, w] = track(pipe2(C.O_NONBLOCK | C.O_CLOEXEC));
    const one = new Uint8Array([1]);
    const buf = new Uint8Array(1);
    for (let i = 0; i < 20000; i++) {
      if (i % 2) {
        expect(writeBytes(w, one)).toBe(1);
        expect(readBytes(r, buf)).toBe(1);
      } else {
        const got = i % 4 === 0 ? readBytes(r, buf) : close(-1);
        if (got !== (i % 4 === 0 ? -Errno.EAGAIN : -Errno.EBADF)) throw new Error(`wrong errno ${got} at ${i}`);
      }
    }
  });
});

describe("sockaddr encoding", () => {
  const mem = new Mem(256);
  const cases: SockAddr[] = [
    { family: "ipv4", address: "198.51.100.1", port: 8080 },
    { family: "ipv4", address: "0.0.0.0", port: 0 },
    { family: "ipv6", address: "2001:db8:1::1", port: 65535, scopeId: 0, flowinfo: 0 },
    { family: "ipv6", address: "fe80::1", port: 547, scopeId: 3, flowinfo: 0x12345 },
    { family: "ipv6", address: "::ffff:10.0.2.15", port: 53, scopeId: 0, flowinfo: 0 },
    { family: "unix", path: "/tmp/orzo.socket" },
    { family: "unix", path: "\0abstract-orzo" },
  ];
  for (const sa of cases) {
    test(`round trip ${JSON.stringify(sa)}`, () => {
      const len = encodeSockaddr(sa, mem, 8);
      expect(decodeSockaddr(mem, 8, len)).toEqual(sa);
    });
  }

  test("wire layout of sockaddr_in and sockaddr_in6", () => {
    expect(encodeSockaddr({ family: "ipv4", address: "1.2.3.4", port: 0x1234 }, mem, 0)).toBe(16);
    expect(Array.from(mem.bytes.subarray(0, 8))).toEqual([2, 0, 0x12, 0x34, 1, 2, 3, 4]);
    expect(encodeSockaddr({ family: "ipv6", address: "::2", port: 0x0102, scopeId: 7 }, mem, 0)).toBe(28);
    expect(Array.from(mem.bytes.subarray(0, 4))).toEqual([10, 0, 1, 2]);
    expect(mem.bytes[23]).toBe(2);
    expect(mem.view.getUint32(24, true)).toBe(7);
    expect(encodeSockaddr({ family: "unix", path: "/x" }, mem, 0)).toBe(5);
  });

  test("inany fast path picks the family from the address", () => {
    const v4 = inanyParse("127.0.0.1")!;
    expect(sockaddrFromInany(mem, 0, v4, 0, 80, 0)).toBe(16);
    const out = new Uint8Array(16);
    expect(sockaddrToInany(mem, 0, out, 0)).toBe(80);
    expect(Array.from(out)).toEqual(Array.from(v4));
    const v6 = inanyParse("2001:db8::5")!;
    expect(sockaddrFromInany(mem, 0, v6, 0, 443, 0)).toBe(28);
    expect(sockaddrToInany(mem, 0, out, 0)).toBe(443);
    expect(Array.from(out)).toEqual(Array.from(v6));
    mem.view.setUint16(0, 1, true);
    expect(sockaddrToInany(mem, 0, out, 0)).toBe(-1);
  });

  test("bad addresses are refused with a clear error", () => {
    expect(() => encodeSockaddr({ family: "ipv4", address: "::1", port: 1 }, mem, 0)).toThrow(SockAddrError);
    expect(() => encodeSockaddr({ family: "ipv6", address: "10.0.0.1", port: 1 }, mem, 0)).toThrow(SockAddrError);
    expect(() => encodeSockaddr({ family: "ipv4", address: "1.2.3.4", port: 70000 }, mem, 0)).toThrow(/port out of range/);
    expect(() => encodeSockaddr({ family: "unix", path: "x".repeat(108) }, mem, 0)).toThrow(SockAddrError);
    mem.view.setUint16(0, 99, true);
    expect(() => decodeSockaddr(mem, 0, 16)).toThrow(/unsupported sockaddr/);
  });
});

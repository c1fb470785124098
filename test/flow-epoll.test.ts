import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { EpollType, refFd, refLo, refType, sidx } from "../src/epoll_ref.ts";
import { flowEpollDel, flowEpollMove, flowEpollSet, flowTableInit } from "../src/flows/epoll.ts";
import { FlowTable, FlowType, INISIDE, Pif, TGTSIDE } from "../src/flows/flow.ts";
import { SpliceEvent, SpliceFlag, spliceOutWait } from "../src/flows/splice_state.ts";
import { TcpEvent, TcpFlag } from "../src/flows/tcp_state.ts";
import { EventLoop } from "../src/loop.ts";
import * as C from "../src/syscalls/constants.ts";
import { EpollEvents, epollCtl, epollWait } from "../src/syscalls/epoll.ts";
import { Errno } from "../src/syscalls/errno.ts";
import { close, writeBytes } from "../src/syscalls/io.ts";
import { accept4, bind, connect, getsockname, listen, socket } from "../src/syscalls/socket.ts";
import { timerfdCreate, timerfdSet } from "../src/syscalls/timer.ts";
import { inanyParse } from "../src/wire/inany.ts";
import { epollRegistrations } from "./helpers/epoll-inspect.ts";

const IN = C.EPOLLIN;
const OUT = C.EPOLLOUT;
const RDHUP = C.EPOLLRDHUP;
const ET = C.EPOLLET;
const a4 = inanyParse("127.0.0.1")!;

let loop: EventLoop;
let t: FlowTable;
const fds: number[] = [];

beforeEach(() => {
  loop = new EventLoop();
  t = flowTableInit(64, loop.id);
});
afterEach(() => {
  t.forEachActive((f) => t.markFree(f));
  t.defer(0, false);
  while (fds.length) close(fds.pop()!);
  loop.close();
});

/** A connected TCP pair over loopback: [our socket, the peer's]. */
function tcpPair(): [number, number] {
  const l = socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0);
  bind(l, { family: "ipv4", address: "127.0.0.1", port: 0 });
  listen(l, 4);
  const s = socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  const r = connect(s, getsockname(l));
  expect(r === 0 || r === -115).toBe(true);
  const p = accept4(l, C.SOCK_CLOEXEC);
  close(l);
  fds.push(p);
  return [s, p];
}

function udpSocket(): number {
  const s = socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  bind(s, { family: "ipv4", address: "127.0.0.1", port: 0 });
  return s;
}

function newFlow(type: FlowType): number {
  const f = t.alloc();
  t.initiate(f, Pif.TAP, a4, 0, 1000, a4, 0, 2000);
  t.target(f, Pif.HOST, a4, 0, 3000, a4, 0, 2000);
  t.setType(f, type);
  t.activate(f);
  return f;
}

/** What the kernel has registered for an fd in the loop's epoll instance. */
function reg(fd: number) {
  return epollRegistrations(loop.epfd).get(fd);
}

/** The events epoll_wait reports right now, as [type, fd, payload, events]. */
function ready(): [number, number, number, number][] {
  const ev = new EpollEvents(16);
  const n = epollWait(loop.epfd, ev, 50);
  const out: [number, number, number, number][] = [];
  for (let i = 0; i < n; i++) {
    out.push([refType(ev.words[3 * i + 1]), refFd(ev.words[3 * i + 1]), ev.words[3 * i + 2], ev.words[3 * i]]);
  }
  return out;
}

describe("flowEpollSet", () => {
  test("TCP: events follow the connection state; ADD once, then MOD; CLOSED removes", () => {
    const f = newFlow(FlowType.TCP);
    const [s, peer] = tcpPair();
    t.fd[2 * f + TGTSIDE] = s;

    t.events[f] = TcpEvent.TAP_SYN_RCVD;
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
    expect(reg(s)).toEqual({ fd: s, events: (OUT | ET | RDHUP) >>> 0, dataLo: refLo(EpollType.TCP, s), dataHi: sidx(f, TGTSIDE) });
    const r1 = ready();
    expect(r1.length).toBe(1);
    expect(r1[0].slice(0, 3)).toEqual([EpollType.TCP, s, sidx(f, TGTSIDE)]);
    expect(r1[0][3] & OUT).toBe(OUT);

    t.events[f] = TcpEvent.ESTABLISHED;
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
    expect(reg(s)?.events).toBe((IN | RDHUP | ET) >>> 0);
    expect(ready()).toEqual([]);
    writeBytes(peer, new Uint8Array([1, 2, 3]));
    expect(ready()).toEqual([[EpollType.TCP, s, sidx(f, TGTSIDE), IN]]);
    // Edge-triggered: the bytes stay queued (peeked, not read) and are not reported again...
    expect(ready()).toEqual([]);
    // ...until more arrive.
    writeBytes(peer, new Uint8Array([4]));
    expect(ready()).toEqual([[EpollType.TCP, s, sidx(f, TGTSIDE), IN]]);

    t.flags[f] |= TcpFlag.SOCK_OUT_WAIT;
    flowEpollSet(EpollType.TCP, f, TGTSIDE);
    expect(reg(s)?.events).toBe((IN | RDHUP | OUT | ET) >>> 0);
    expect(ready()).toEqual([[EpollType.TCP, s, sidx(f, TGTSIDE), IN | OUT]]);

    // Stalling (window full) changes nothing in epoll: the guest's acknowledgment resumes the reading.
    t.flags[f] = TcpFlag.STALLED | TcpFlag.ACK_FROM_TAP_BLOCKS;
    flowEpollSet(EpollType.TCP, f, TGTSIDE);
    expect(reg(s)?.events).toBe((IN | RDHUP | ET) >>> 0);

    t.events[f] = TcpEvent.ESTABLISHED | TcpEvent.SOCK_FIN_RCVD;
    flowEpollSet(EpollType.TCP, f, TGTSIDE);
    expect(reg(s)?.events).toBe(ET);

    t.flags[f] = 0;
    t.events[f] = TcpEvent.ESTABLISHED | TcpEvent.TAP_FIN_SENT;
    flowEpollSet(EpollType.TCP, f, TGTSIDE);
    expect(reg(s)?.events).toBe(ET);

    t.events[f] = TcpEvent.CLOSED;
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
    expect(reg(s)).toBeUndefined();
    expect(t.registered[f]).toBe(0);
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
  });

  test("the same mask again costs an epoll_ctl only when it re-arms an edge", () => {
    // Taking the fd out of epoll behind the flow's back shows whether flowEpollSet calls epoll_ctl (MOD: ENOENT).
    const spliced = newFlow(FlowType.TCP_SPLICE);
    const [s0] = tcpPair();
    t.fd[2 * spliced] = s0;
    t.events[spliced] = SpliceEvent.ESTABLISHED;
    expect(flowEpollSet(EpollType.TCP_SPLICE, spliced, INISIDE)).toBe(0);
    expect(reg(s0)?.events).toBe((IN | RDHUP) >>> 0);
    expect(epollCtl(loop.epfd, C.EPOLL_CTL_DEL, s0, 0, 0, 0)).toBe(0);
    expect(flowEpollSet(EpollType.TCP_SPLICE, spliced, INISIDE)).toBe(0);
    expect(reg(s0)).toBeUndefined();

    const tcp = newFlow(FlowType.TCP);
    const [s1] = tcpPair();
    t.fd[2 * tcp + TGTSIDE] = s1;
    t.events[tcp] = TcpEvent.ESTABLISHED;
    expect(flowEpollSet(EpollType.TCP, tcp, TGTSIDE)).toBe(0);
    expect(epollCtl(loop.epfd, C.EPOLL_CTL_DEL, s1, 0, 0, 0)).toBe(0);
    expect(flowEpollSet(EpollType.TCP, tcp, TGTSIDE)).toBe(-Errno.ENOENT);
  });

  test("a flow freed this cycle leaves epoll by the close of its fds, without an epoll_ctl", () => {
    const f = newFlow(FlowType.TCP);
    const [s, peer] = tcpPair();
    t.fd[2 * f + TGTSIDE] = s;
    t.events[f] = TcpEvent.ESTABLISHED;
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
    t.markFree(f);
    t.events[f] = TcpEvent.CLOSED;
    expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
    // Still in the kernel's set until the end of the cycle, no longer in the flow's record.
    expect(reg(s)?.events).toBe((IN | RDHUP | ET) >>> 0);
    expect(t.registered[f]).toBe(0);
    t.defer(0, false);
    writeBytes(peer, new Uint8Array([1]));
    expect(ready()).toEqual([]);
  });

  test("TCP_TIMER: the timerfd with EPOLLIN|EPOLLET and the plain flow index as payload", () => {
    newFlow(FlowType.TCP);
    const f = newFlow(FlowType.TCP);
    const tfd = timerfdCreate(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC);
    t.timer[f] = tfd;
    expect(flowEpollSet(EpollType.TCP_TIMER, f, INISIDE)).toBe(0);
    expect(reg(tfd)).toEqual({ fd: tfd, events: (IN | ET) >>> 0, dataLo: refLo(EpollType.TCP_TIMER, tfd), dataHi: f });
    expect(flowEpollSet(EpollType.TCP_TIMER, f, INISIDE)).toBe(0);
    timerfdSet(tfd, 1, 0);
    expect(ready()).toEqual([[EpollType.TCP_TIMER, tfd, f, IN]]);
  });

  test("TCP_SPLICE: per-side events, including stopping reads while the other side waits to write", () => {
    const f = newFlow(FlowType.TCP_SPLICE);
    const [s0, p0] = tcpPair();
    const [s1, p1] = tcpPair();
    t.fd[2 * f] = s0;
    t.fd[2 * f + 1] = s1;

    t.events[f] = SpliceEvent.CONNECT;
    expect(flowEpollSet(EpollType.TCP_SPLICE, f, 0)).toBe(0);
    expect(flowEpollSet(EpollType.TCP_SPLICE, f, 1)).toBe(0);
    expect(reg(s0)?.events).toBe(0);
    expect(reg(s1)?.events).toBe(OUT);
    expect(reg(s1)?.dataHi).toBe(sidx(f, 1));
    expect(ready()).toEqual([[EpollType.TCP_SPLICE, s1, sidx(f, 1), OUT]]);

    t.events[f] = SpliceEvent.ESTABLISHED;
    flowEpollSet(EpollType.TCP_SPLICE, f, 0);
    flowEpollSet(EpollType.TCP_SPLICE, f, 1);
    expect([reg(s0)?.events, reg(s1)?.events]).toEqual([IN | RDHUP, IN | RDHUP]);
    writeBytes(p0, new Uint8Array([9]));
    expect(ready()).toEqual([[EpollType.TCP_SPLICE, s0, sidx(f, 0), IN]]);

    t.events[f] |= spliceOutWait(1);
    flowEpollSet(EpollType.TCP_SPLICE, f, 0);
    flowEpollSet(EpollType.TCP_SPLICE, f, 1);
    expect([reg(s0)?.events, reg(s1)?.events]).toEqual([0, IN | RDHUP | OUT]);
    writeBytes(p1, new Uint8Array([9]));
    expect(ready()).toEqual([[EpollType.TCP_SPLICE, s1, sidx(f, 1), IN | OUT]]);

    t.flags[f] |= SpliceFlag.CLOSING;
    flowEpollSet(EpollType.TCP_SPLICE, f, 0);
    flowEpollSet(EpollType.TCP_SPLICE, f, 1);
    expect([reg(s0), reg(s1)]).toEqual([undefined, undefined]);
  });

  test("UDP: each side's socket with EPOLLIN and its own side index; PING: the socket", () => {
    const f = newFlow(FlowType.UDP);
    const u0 = udpSocket();
    const u1 = udpSocket();
    t.fd[2 * f] = u0;
    t.fd[2 * f + 1] = u1;
    expect(flowEpollSet(EpollType.UDP, f, 0)).toBe(0);
    expect(flowEpollSet(EpollType.UDP, f, 1)).toBe(0);
    expect([reg(u0)?.events, reg(u0)?.dataHi, reg(u1)?.events, reg(u1)?.dataHi]).toEqual([IN, sidx(f, 0), IN, sidx(f, 1)]);
    const tx = socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0);
    fds.push(tx);
    connect(tx, getsockname(u1));
    writeBytes(tx, new Uint8Array([1]));
    expect(ready()).toEqual([[EpollType.UDP, u1, sidx(f, 1), IN]]);

    const p = newFlow(FlowType.PING);
    const ps = udpSocket();
    t.fd[2 * p + TGTSIDE] = ps;
    expect(flowEpollSet(EpollType.PING, p, TGTSIDE)).toBe(0);
    expect(reg(ps)).toEqual({ fd: ps, events: IN, dataLo: refLo(EpollType.PING, ps), dataHi: sidx(p, TGTSIDE) });
  });

  test("a registration that does not fit the flow's type, or a flow without the fd, is refused", () => {
    const f = newFlow(FlowType.UDP);
    t.fd[2 * f] = udpSocket();
    expect(() => flowEpollSet(EpollType.TCP, f, 0)).toThrow(/does not fit/);
    expect(() => flowEpollSet(EpollType.UDP, f, 1)).toThrow(/no usable fd/);
  });

  test("a flow moves to another epoll instance with its events recomputed there", () => {
    const other = new EventLoop();
    try {
      const f = newFlow(FlowType.TCP);
      const [s] = tcpPair();
      const tfd = timerfdCreate(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC);
      t.fd[2 * f + TGTSIDE] = s;
      t.timer[f] = tfd;
      t.events[f] = TcpEvent.ESTABLISHED;
      flowEpollSet(EpollType.TCP, f, TGTSIDE);
      flowEpollSet(EpollType.TCP_TIMER, f, 0);
      flowEpollMove(f, other.id);
      expect(reg(s)).toBeUndefined();
      expect(reg(tfd)).toBeUndefined();
      const there = epollRegistrations(other.epfd);
      expect(there.get(s)?.events).toBe((IN | RDHUP | ET) >>> 0);
      expect(there.get(tfd)?.events).toBe((IN | ET) >>> 0);
      expect(t.epollId[f]).toBe(other.id);
      t.events[f] |= TcpEvent.TAP_FIN_SENT;
      expect(flowEpollSet(EpollType.TCP, f, TGTSIDE)).toBe(0);
      expect(epollRegistrations(other.epfd).get(s)?.events).toBe(ET);
      flowEpollDel(f);
      expect(epollRegistrations(other.epfd).size).toBe(0);
    } finally {
      other.close();
    }
  });
});

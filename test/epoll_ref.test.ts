import { describe, expect, test } from "bun:test";
import {
  EPOLL_TYPE_COUNT,
  EpollType,
  FD_REF_MAX,
  listenPif,
  listenPort,
  listenRef,
  listenRule,
  refFd,
  refLo,
  refType,
  sidx,
  sidxFlow,
  sidxSide,
} from "../src/epoll_ref.ts";

describe("epoll_ref", () => {
  test("type and fd round-trip at their limits", () => {
    for (const type of [0, 1, 127, 128, 254, 255]) {
      for (const fd of [0, 1, 3, 0x7fffff, 0x800000, FD_REF_MAX - 1, FD_REF_MAX]) {
        const lo = refLo(type, fd);
        expect(lo).toBeGreaterThanOrEqual(0);
        expect(lo).toBeLessThanOrEqual(0xffffffff);
        expect(refType(lo)).toBe(type);
        expect(refFd(lo)).toBe(fd);
      }
    }
    expect(refLo(255, FD_REF_MAX)).toBe(0xffffffff);
  });

  test("flow side index round-trips up to 31 bits of flow", () => {
    for (const flow of [0, 1, 131070, 131071, 0x3fffffff, 0x7fffffff]) {
      for (const side of [0, 1]) {
        const s = sidx(flow, side);
        expect(s).toBeLessThanOrEqual(0xffffffff);
        expect(sidxFlow(s)).toBe(flow);
        expect(sidxSide(s)).toBe(side);
      }
    }
    expect(sidx(0x7fffffff, 1)).toBe(0xffffffff);
  });

  test("listening reference round-trips port, pif and rule", () => {
    for (const port of [0, 1, 80, 65535]) {
      for (const pif of [0, 1, 3, 255]) {
        for (const rule of [0, 1, 254, 255]) {
          const p = listenRef(port, pif, rule);
          expect(p).toBeLessThanOrEqual(0xffffffff);
          expect([listenPort(p), listenPif(p), listenRule(p)]).toEqual([port, pif, rule]);
        }
      }
    }
  });

  test("the epoll types named by the design exist and are distinct", () => {
    const names = ["TCP", "TCP_SPLICE", "TCP_LISTEN", "TCP_TIMER", "UDP_LISTEN", "UDP", "PING", "NSQUIT_INOTIFY", "NSQUIT_TIMER", "TAP_PASTA", "TAP_PASST", "TAP_LISTEN"] as const;
    const values = names.map((n) => EpollType[n]);
    expect(new Set(values).size).toBe(names.length);
    for (const v of Object.values(EpollType)) expect(v).toBeLessThan(EPOLL_TYPE_COUNT);
  });
});

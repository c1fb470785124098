import { describe, expect, test } from "bun:test";
import { FlowState, FlowTable, FlowType, INISIDE, Pif, TGTSIDE, type Side } from "../src/flows/flow.ts";
import { flowTableInit } from "../src/flows/epoll.ts";
import { EventLoop } from "../src/loop.ts";
import * as C from "../src/syscalls/constants.ts";
import { fcntl } from "../src/syscalls/io.ts";
import { Errno } from "../src/syscalls/errno.ts";
import { socket } from "../src/syscalls/socket.ts";
import { inanyParse } from "../src/wire/inany.ts";

const guest = inanyParse("198.51.100.2")!;
const gw = inanyParse("198.51.100.1")!;
const remote = inanyParse("2001:db8:1::fe")!;
const any6 = inanyParse("::")!;

/** Builds an active flow from the tap (guest port gport to gw:dport) to the host (remote:dport). */
function tapFlow(t: FlowTable, type: FlowType, gport: number, dport: number): number {
  const f = t.alloc();
  if (f < 0) return f;
  t.initiate(f, Pif.TAP, guest, 0, gport, gw, 0, dport);
  t.target(f, Pif.HOST, any6, 0, 0, remote, 0, dport);
  t.setType(f, type);
  t.activate(f);
  return f;
}

/** The lookup key (our address, then the endpoint's, as u32 words) of a flow side, copied out. */
function keyOf(t: FlowTable, f: number, side: Side): Uint32Array {
  const off = t.addrOffset(f, side) / 4;
  return t.addrWords.slice(off, off + 8);
}

describe("flow table", () => {
  test("alloc, build, lookup by either side, describe", () => {
    const t = new FlowTable(16);
    const f = tapFlow(t, FlowType.UDP, 40000, 53);
    expect(f).toBe(0);
    expect(t.state[f]).toBe(FlowState.ACTIVE);
    expect(t.count).toBe(1);
    t.hashInsert(f, INISIDE);
    t.hashInsert(f, TGTSIDE);
    expect(t.lookup(17, Pif.TAP, keyOf(t, f, INISIDE), 0, 53, 40000)).toBe(2 * f + INISIDE);
    expect(t.lookup(17, Pif.HOST, keyOf(t, f, TGTSIDE), 0, 0, 53)).toBe(2 * f + TGTSIDE);
    expect(t.lookup(6, Pif.TAP, keyOf(t, f, INISIDE), 0, 53, 40000)).toBe(-1);
    expect(t.lookup(17, Pif.HOST, keyOf(t, f, INISIDE), 0, 53, 40000)).toBe(-1);
    expect(t.lookup(17, Pif.TAP, keyOf(t, f, INISIDE), 0, 53, 40001)).toBe(-1);
    expect(t.describe(f)).toBe("TAP [198.51.100.2]:40000 -> [198.51.100.1]:53 => HOST [::]:0 -> [2001:db8:1::fe]:53");
    expect(tapFlow(t, FlowType.TCP, 40001, 80)).toBe(1);
  });

  test("building states are enforced and only the newest allocation can be cancelled", () => {
    const t = new FlowTable(4);
    const f = t.alloc();
    expect(() => t.target(f, Pif.HOST, gw, 0, 1, gw, 0, 1)).toThrow(/NEW, expected INI/);
    expect(() => t.alloc()).toThrow(/still being built/);
    t.initiate(f, Pif.TAP, guest, 0, 1, gw, 0, 2);
    t.allocCancel(f);
    expect(t.count).toBe(0);
    expect(t.state[f]).toBe(FlowState.FREE);
    expect(t.alloc()).toBe(f);
  });

  test("freeing is deferred to the end of the cycle, and closes the flow's fds", () => {
    const loop = new EventLoop();
    const t = flowTableInit(8);
    const f = tapFlow(t, FlowType.TCP, 1234, 80);
    const sock = socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0);
    t.fd[2 * f + TGTSIDE] = sock;
    t.hashInsert(f, INISIDE);
    const key = keyOf(t, f, INISIDE);
    t.markFree(f);
    expect(t.state[f]).toBe(FlowState.ACTIVE);
    expect(t.lookup(6, Pif.TAP, key, 0, 80, 1234)).toBe(2 * f);
    expect(t.defer(performance.now(), false)).toBe(1);
    expect(t.state[f]).toBe(FlowState.FREE);
    expect(t.count).toBe(0);
    expect(t.lookup(6, Pif.TAP, key, 0, 80, 1234)).toBe(-1);
    expect(fcntl(sock, C.F_GETFD, 0)).toBe(-Errno.EBADF);
    loop.close();
  });

  test("type ops decide expiry at the end of a cycle", () => {
    const t = new FlowTable(8);
    const released: number[] = [];
    t.setTypeOps(FlowType.UDP, {
      shouldFree: (f, now, timerDue) => timerDue && now - t.lastActive[f] > 180_000,
      release: (f) => released.push(f),
    });
    const a = tapFlow(t, FlowType.UDP, 1, 53);
    const b = tapFlow(t, FlowType.UDP, 2, 53);
    t.lastActive[a] = 0;
    t.lastActive[b] = 100_000;
    expect(t.defer(200_000, false)).toBe(0);
    expect(t.defer(200_000, true)).toBe(1);
    expect(released).toEqual([a]);
    expect(t.state[b]).toBe(FlowState.ACTIVE);
  });

  test("a full table refuses (counted) and recovers after frees", () => {
    const t = new FlowTable(4);
    const got = [0, 1, 2, 3].map((i) => tapFlow(t, FlowType.TCP, 1000 + i, 80));
    expect(got).toEqual([0, 1, 2, 3]);
    expect(t.alloc()).toBe(-1);
    expect(t.alloc()).toBe(-1);
    expect(t.refusedFull).toBe(2);
    t.markFree(2);
    t.defer(0, false);
    expect(tapFlow(t, FlowType.TCP, 2000, 80)).toBe(2);
    expect(t.count).toBe(4);
  });

  test("rejects a capacity that is not a positive integer", () => {
    expect(() => new FlowTable(0)).toThrow(RangeError);
    expect(() => new FlowTable(1.5)).toThrow(RangeError);
  });

  test("hash index agrees with a model under random inserts and removals", () => {
    const t = new FlowTable(512);
    const model = new Map<string, number>();
    const live: number[] = [];
    const k = (f: number) => `${t.eport[2 * f]}`;
    for (let step = 0; step < 20000; step++) {
      if (live.length < 400 && (live.length === 0 || Math.random() < 0.55)) {
        const port = 1 + Math.floor(Math.random() * 60000);
        if (model.has(`${port}`)) continue;
        const f = tapFlow(t, FlowType.UDP, port, 53);
        t.hashInsert(f, INISIDE);
        model.set(`${port}`, f);
        live.push(f);
      } else {
        const i = Math.floor(Math.random() * live.length);
        const f = live[i];
        live.splice(i, 1);
        model.delete(k(f));
        t.markFree(f);
        t.defer(0, false);
      }
      if (step % 97 === 0) {
        for (const [port, f] of model) {
          expect(t.lookup(17, Pif.TAP, keyOf(t, f, INISIDE), 0, 53, Number(port))).toBe(2 * f);
        }
      }
    }
    expect(t.count).toBe(model.size);
  });
});

import { afterEach, describe, expect, test } from "bun:test";
import { EpollType, refLo } from "../src/epoll_ref.ts";
import { closeSync, openSync, readSync } from "node:fs";
import { EventLoop } from "../src/loop.ts";
import { PollWindow } from "../src/loop_poll.ts";
import * as C from "../src/syscalls/constants.ts";
import { close, pipe2, readBytes, writeBytes } from "../src/syscalls/io.ts";
import { socketpair } from "../src/syscalls/socket.ts";
import { eventfdCreate, readCounter, timerfdCreate, timerfdSet, writeCounter } from "../src/syscalls/timer.ts";
import { epollRegistrations } from "./helpers/epoll-inspect.ts";
import { waitForLine } from "./helpers/process.ts";

const fds: number[] = [];
const loops: EventLoop[] = [];
afterEach(() => {
  while (fds.length) close(fds.pop()!);
  while (loops.length) loops.pop()!.close();
});
function newLoop(timeoutMs?: number): EventLoop {
  const l = new EventLoop({ timeoutMs });
  loops.push(l);
  return l;
}

describe("event loop", () => {
  test("dispatches real fds of several types to their handlers with fd and payload", () => {
    const loop = newLoop(1000);
    const seen: string[] = [];
    const efd = eventfdCreate(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    const [pr, pw] = pipe2(C.O_NONBLOCK | C.O_CLOEXEC);
    const [sa, sb] = socketpair(C.AF_UNIX, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
    const tfd = timerfdCreate(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC);
    fds.push(efd, pr, pw, sa, sb, tfd);
    loop.on(EpollType.WAKE, (fd, payload, events) => {
      seen.push(`wake fd=${fd === efd} payload=${payload} in=${!!(events & C.EPOLLIN)}`);
      readCounter(fd);
    });
    loop.on(EpollType.TAP_PASTA, (fd, payload) => {
      seen.push(`tap fd=${fd === pr} payload=${payload}`);
      readBytes(fd, new Uint8Array(16));
    });
    loop.on(EpollType.TAP_PASST, (fd, payload) => {
      seen.push(`passt fd=${fd === sb} payload=${payload}`);
      readBytes(fd, new Uint8Array(16));
    });
    loop.on(EpollType.NSQUIT_TIMER, (fd, payload) => {
      seen.push(`timer fd=${fd === tfd} payload=${payload}`);
      readCounter(fd);
    });
    loop.add(EpollType.WAKE, efd, 0xffffffff, C.EPOLLIN);
    loop.add(EpollType.TAP_PASTA, pr, 1, C.EPOLLIN);
    loop.add(EpollType.TAP_PASST, sb, 2, C.EPOLLIN | C.EPOLLRDHUP);
    loop.add(EpollType.NSQUIT_TIMER, tfd, 3, C.EPOLLIN);
    expect(epollRegistrations(loop.epfd).get(pr)?.dataLo).toBe(refLo(EpollType.TAP_PASTA, pr));

    writeCounter(efd, 1);
    writeBytes(pw, new Uint8Array([1]));
    writeBytes(sa, new Uint8Array([2]));
    timerfdSet(tfd, 1, 0);
    let total = 0;
    for (let i = 0; i < 20 && total < 4; i++) total += loop.runOnce(200);
    expect(total).toBe(4);
    expect(seen.sort()).toEqual([
      "passt fd=true payload=2",
      "tap fd=true payload=1",
      "timer fd=true payload=3",
      "wake fd=true payload=4294967295 in=true",
    ]);
    expect(loop.eventCounts[EpollType.TAP_PASTA]).toBe(1);
  });

  test("flush hooks run after every wake-up; housekeeping runs on idle at its interval", () => {
    const loop = newLoop(15);
    let flushes = 0;
    const housekeeping: number[] = [];
    loop.onFlush(() => flushes++);
    loop.every(30, (now) => housekeeping.push(now));
    const start = performance.now();
    while (performance.now() - start < 200) expect(loop.runOnce()).toBe(0);
    expect(flushes).toBeGreaterThanOrEqual(8);
    expect(housekeeping.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < housekeeping.length; i++) expect(housekeeping[i] - housekeeping[i - 1]).toBeGreaterThanOrEqual(30);
  });

  test("wakeBy ends the next wait at a sub-millisecond deadline, once", () => {
    const loop = newLoop(1000);
    const ends: number[] = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      loop.wakeBy(start + 0.3);
      loop.wakeBy(start + 500); // a later deadline does not push the earlier one back
      expect(loop.runOnce()).toBe(0);
      ends.push(performance.now() - start);
    }
    ends.sort((a, b) => a - b);
    expect(ends[0]).toBeGreaterThanOrEqual(0.3);
    // The median, as the machine may preempt any single wait: far below the 1 s bound, and below a millisecond's
    // granularity of epoll_wait.
    expect(ends[10]).toBeLessThan(1);
    // Without a new wakeBy, the wait is the full timeout again.
    const start = performance.now();
    expect(loop.runOnce(30)).toBe(0);
    expect(performance.now() - start).toBeGreaterThanOrEqual(25);
  });

  test("an event within the poll window is taken without sleeping; the window never outlasts a wakeBy deadline", () => {
    const loop = newLoop(1000);
    const tfd = timerfdCreate(C.CLOCK_MONOTONIC, C.TFD_NONBLOCK | C.TFD_CLOEXEC);
    fds.push(tfd);
    loop.on(EpollType.TCP_TIMER, (fd) => readCounter(fd));
    loop.add(EpollType.TCP_TIMER, tfd, 0, C.EPOLLIN);
    // Voluntary context switches of this thread: each is a sleep. Read into a reused buffer, so that the reading
    // itself allocates little (a garbage collection can make the thread wait too).
    const status = openSync("/proc/thread-self/status", "r");
    const text = Buffer.alloc(4096);
    const key = Buffer.from("\nvoluntary_ctxt_switches:");
    const sleeps = () => {
      const n = readSync(status, text, 0, text.length, 0);
      let i = text.indexOf(key) + key.length;
      while (i < n && (text[i] === 0x20 || text[i] === 0x09)) i++;
      let v = 0;
      while (i < n && text[i] >= 0x30 && text[i] <= 0x39) v = v * 10 + text[i++] - 0x30;
      return v;
    };
    // The timer fires 2 ms into a 20 ms window: polled, not slept for; without a window, each wait sleeps.
    const waits = (windowMs: number) => {
      let total = 0;
      for (let i = 0; i < 10; i++) {
        loop.poll.ms = windowMs;
        timerfdSet(tfd, 2, 0);
        const before = sleeps();
        expect(loop.runOnce()).toBe(1);
        total += sleeps() - before;
      }
      return total;
    };
    try {
      const slept = waits(0);
      const polled = waits(20);
      expect(slept).toBeGreaterThanOrEqual(10);
      // The machine may preempt or collect garbage now and then; far fewer sleeps all the same.
      expect(polled).toBeLessThanOrEqual(slept / 2);
    } finally {
      closeSync(status);
    }
    // A deadline before the window's end ends the wait there.
    loop.poll.ms = 200;
    const start = performance.now();
    loop.wakeBy(start + 1);
    expect(loop.runOnce()).toBe(0);
    expect(performance.now() - start).toBeLessThan(50);
  });

  test("the poll window grows while idle periods end in events within its bound, and shrinks to zero otherwise", () => {
    const w = new PollWindow(0.1, 0.01);
    w.idle(0.05, true);
    expect(w.ms).toBe(0.01);
    for (let i = 0; i < 10; i++) w.idle(0.02, true);
    expect(w.ms).toBe(0.1);
    // Long idle periods, or waits that ended without an event: halved each time, then off.
    w.idle(5, true);
    expect(w.ms).toBe(0.05);
    w.idle(0.01, false);
    expect(w.ms).toBe(0.025);
    w.idle(1000, false);
    expect(w.ms).toBe(0.0125);
    w.idle(1000, false);
    expect(w.ms).toBe(0);
    w.idle(1000, false);
    expect(w.ms).toBe(0);
    // A real loop left idle stops polling.
    const loop = newLoop(1000);
    loop.poll.ms = 0.1;
    for (let i = 0; i < 5; i++) loop.runOnce(5);
    expect(loop.poll.ms).toBe(0);
  });

  test("a throwing handler is counted and the loop goes on; an fd with no handler is removed", () => {
    const loop = newLoop(100);
    const efd = eventfdCreate(1, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    const efd2 = eventfdCreate(1, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    fds.push(efd, efd2);
    loop.on(EpollType.WAKE, (fd) => {
      readCounter(fd);
      throw new Error("handler bug");
    });
    loop.add(EpollType.WAKE, efd, 0, C.EPOLLIN);
    loop.add(EpollType.PING, efd2, 0, C.EPOLLIN);
    expect(loop.runOnce()).toBe(2);
    expect(loop.handlerErrors).toBe(1);
    expect(epollRegistrations(loop.epfd).has(efd2)).toBe(false);
    expect(loop.runOnce(10)).toBe(0);
  });

  test("run() resolves with the code given to stop()", async () => {
    const loop = newLoop(1000);
    const efd = eventfdCreate(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    fds.push(efd);
    loop.on(EpollType.WAKE, () => loop.stop(3));
    loop.add(EpollType.WAKE, efd, 0, C.EPOLLIN);
    writeCounter(efd, 1);
    expect(await loop.run()).toBe(3);
  });

  test("SIGTERM makes a child running the loop exit 0 promptly", async () => {
    const child = Bun.spawn(["bun", `${import.meta.dir}/fixtures/loop-child.ts`], { stdout: "pipe", stderr: "pipe" });
    try {
      const lines = waitForLine(child.stdout, /^ready$/, 10_000);
      await lines.found;
      const t0 = performance.now();
      child.kill("SIGTERM");
      const code = await Promise.race([child.exited, Bun.sleep(5000).then(() => "timeout")]);
      const elapsed = performance.now() - t0;
      expect(code).toBe(0);
      expect(elapsed).toBeLessThan(1500);
      expect(await lines.rest()).toContain("stopped 0");
    } finally {
      child.kill("SIGKILL");
    }
  });
});

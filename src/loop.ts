/**
 * The event loop: one epoll instance, dispatch on the epoll_ref type, then post-wake work.
 *
 * epoll_wait blocks the JS thread, so while it waits no Bun timer, promise or signal handler runs: this loop is
 * the program's event loop, and protocol timers are timerfds in epoll. After every wake-up it reads the
 * monotonic clock once, dispatches each event to the handler of its type, runs the flush hooks (batched output
 * goes out once per cycle), and runs housekeeping hooks whose interval has passed. The wait is bounded (at most
 * 1 s), so housekeeping also runs when idle. Before blocking, the loop polls epoll for an adaptive window
 * (loop_poll.ts), so that an event expected within microseconds does not pay for a sleep and a wake-up.
 *
 * Signals: SIGTERM/SIGINT interrupt epoll_wait with EINTR, but their JS handlers only run once the loop yields to
 * Bun; the loop yields (setImmediate, ~2 µs) after EINTR, after an idle timeout and at least every 50 ms of
 * busy time, so a signal is acted on promptly whichever thread the kernel delivered it to.
 */
import { EPOLL_TYPE_COUNT, EpollType, FD_REF_MAX, refFd, refLo, refType } from "./epoll_ref.ts";
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLET, EPOLLIN } from "./syscalls/constants.ts";
import { EpollEvents, epollCreate, epollCtl, epollWait, epollWaitPrecise } from "./syscalls/epoll.ts";
import { Errno, SyscallError } from "./syscalls/errno.ts";
import { close } from "./syscalls/io.ts";
import { log, rateLimited } from "./log.ts";
import { PollWindow } from "./loop_poll.ts";
import { schedYield } from "./syscalls/process.ts";
import { readdirSync, readlinkSync } from "node:fs";

/** Handles one event: the fd and payload decoded from its epoll_ref, the event mask, and the wake-up time. */
export type EpollHandler = (fd: number, payload: number, events: number, now: number) => void;

/** Work run after each wake-up or at an interval, given the wake-up time (ms, monotonic). */
export type LoopHook = (now: number) => void;

/** Longest epoll_wait: bounds how late housekeeping and signal handling can be. */
export const LOOP_TIMEOUT_MAX_MS = 1000;
const YIELD_INTERVAL_MS = 50;
const EVENTS_PER_WAIT = 64;
const handlerErrorLog = rateLimited("loop: handler error");

/** Epoll instances by id: a flow records the id of the instance its fds are registered in. */
const epollFds: number[] = [];

/** The epoll fd registered under an instance id. */
export function epollFdOf(id: number): number {
  const fd = epollFds[id];
  if (fd === undefined || fd < 0) throw new Error(`no epoll instance with id ${id}`);
  return fd;
}

interface Housekeeping {
  hook: LoopHook;
  intervalMs: number;
  last: number;
}

/** Options for an EventLoop. */
export interface LoopOptions {
  /** Longest wait in ms (default and maximum: LOOP_TIMEOUT_MAX_MS). */
  timeoutMs?: number;
}

/** One epoll instance and its dispatch loop. */
export class EventLoop {
  /** The epoll fd. */
  readonly epfd: number;
  /** This instance's id, as flows record it. */
  readonly id: number;
  /** Events dispatched, per epoll type. */
  readonly eventCounts = new Float64Array(EPOLL_TYPE_COUNT);
  /** Handler exceptions caught (each is logged, and the loop goes on). */
  handlerErrors = 0;

  private readonly handlers: (EpollHandler | undefined)[] = new Array(EPOLL_TYPE_COUNT).fill(undefined);
  private readonly events = new EpollEvents(EVENTS_PER_WAIT);
  private readonly flushHooks: LoopHook[] = [];
  private readonly afterFlushHooks: LoopHook[] = [];
  private readonly housekeeping: Housekeeping[] = [];
  private readonly timeoutMs: number;
  private stopped = false;
  private exitCode = 0;
  private lastYield = 0;
  private signalsInstalled = false;
  private yieldNow = false;
  /** The latest time (performance.now() ms) the next wait may end: wakeBy() bounds it below the loop's bound. */
  private deadline = Infinity;
  /** How long to poll before blocking. */
  readonly poll = new PollWindow();

  constructor(options: LoopOptions = {}) {
    this.timeoutMs = Math.min(options.timeoutMs ?? LOOP_TIMEOUT_MAX_MS, LOOP_TIMEOUT_MAX_MS);
    this.epfd = epollCreate();
    // Ids of closed instances are reused: flows store the id in 8 bits.
    const free = epollFds.indexOf(-1);
    this.id = free >= 0 ? free : epollFds.length;
    if (this.id > 0xff) throw new Error("too many epoll instances");
    epollFds[this.id] = this.epfd;
  }

  /** Sets the handler for an epoll type. */
  on(type: EpollType, handler: EpollHandler): void {
    this.handlers[type] = handler;
  }

  /** Registers a non-flow fd (listener, tap, timer...) with its type and payload; throws on failure. */
  add(type: EpollType, fd: number, payload: number, events: number): void {
    this.ctl(EPOLL_CTL_ADD, type, fd, payload, events);
  }

  /** Changes the events or payload of a registered non-flow fd; throws on failure. */
  modify(type: EpollType, fd: number, payload: number, events: number): void {
    this.ctl(EPOLL_CTL_MOD, type, fd, payload, events);
  }

  /** Removes a non-flow fd from epoll (closing the fd would do it too, unless it was duplicated). */
  remove(fd: number): void {
    epollCtl(this.epfd, EPOLL_CTL_DEL, fd, 0, 0, 0);
  }

  /** Runs a hook after every wake-up, after all events were dispatched (to flush batched output). */
  onFlush(hook: LoopHook): void {
    this.flushHooks.push(hook);
  }

  /** Runs a hook after the flush hooks of every wake-up: for work that should not hold back the output. */
  afterFlush(hook: LoopHook): void {
    this.afterFlushHooks.push(hook);
  }

  /** Runs a hook at most once per interval, also when idle (flow timers, deferred frees, port scans). */
  every(intervalMs: number, hook: LoopHook): void {
    this.housekeeping.push({ hook, intervalMs, last: performance.now() });
  }

  /**
   * Makes the next wait end by a time (performance.now() milliseconds, to the nanosecond) even with no event:
   * for sub-millisecond deadlines that do not deserve a timer fd. Asked again after each wake-up if still wanted.
   */
  wakeBy(at: number): void {
    if (at < this.deadline) this.deadline = at;
  }

  /** Asks the loop to finish its current cycle and return the exit code from run(). */
  stop(code = 0): void {
    this.stopped = true;
    this.exitCode = code;
  }

  /** True once stop() was called. */
  get stopping(): boolean {
    return this.stopped;
  }

  /**
   * Waits once (at most timeoutMs, or the loop's bound), dispatches, and runs the hooks. Returns the number of
   * events, or -EINTR when a signal interrupted the wait.
   */
  runOnce(timeoutMs = this.timeoutMs): number {
    const bound = Math.min(timeoutMs, this.timeoutMs);
    const deadline = this.deadline;
    const idleFrom = performance.now();
    let n = 0;
    if (bound > 0) {
      const pollUntil = Math.min(idleFrom + this.poll.ms, deadline);
      while (performance.now() < pollUntil && (n = epollWait(this.epfd, this.events, 0)) === 0) schedYield();
    }
    if (n === 0) {
      const left = deadline - performance.now();
      n = left < bound ? epollWaitPrecise(this.epfd, this.events, Math.max(0, left)) : epollWait(this.epfd, this.events, bound);
    }
    if (bound > 0) this.poll.idle(performance.now() - idleFrom, n > 0);
    this.deadline = Infinity;
    // epoll_wait fails only with EINTR, or EBADF, EFAULT and EINVAL for a broken call. Any other errno was left by
    // a signal handler (Bun's) that ran between the call and our read of errno: the wait was interrupted.
    if (n < 0 && (n === -Errno.EBADF || n === -Errno.EFAULT || n === -Errno.EINVAL)) throw new SyscallError("epoll_wait", -n);
    if (n < 0) n = -Errno.EINTR;
    const now = performance.now();
    const w = this.events.words;
    for (let i = 0; i < n; i++) {
      const lo = w[3 * i + 1];
      this.dispatch(refType(lo), refFd(lo), w[3 * i + 2], w[3 * i], now);
    }
    for (let i = 0; i < this.flushHooks.length; i++) this.flushHooks[i](now);
    for (let i = 0; i < this.afterFlushHooks.length; i++) this.afterFlushHooks[i](now);
    for (let i = 0; i < this.housekeeping.length; i++) {
      const h = this.housekeeping[i];
      if (now - h.last >= h.intervalMs) {
        h.last = now;
        h.hook(now);
      }
    }
    return n;
  }

  /**
   * Runs until stop() or SIGTERM/SIGINT (exit code 0) and resolves to the exit code. Installs the signal handlers
   * on first use.
   */
  async run(): Promise<number> {
    this.installSignals();
    this.lastYield = performance.now();
    while (!this.stopped) {
      const n = this.runOnce();
      const now = performance.now();
      if (n <= 0 || this.yieldNow || now - this.lastYield >= YIELD_INTERVAL_MS) {
        this.lastYield = now;
        this.yieldNow = false;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return this.exitCode;
  }

  /** Closes the epoll fd and frees the instance id for the next loop (the flows of this one must be gone). */
  close(): void {
    close(this.epfd);
    if (epollFds[this.id] === this.epfd) epollFds[this.id] = -1;
  }

  private dispatch(type: number, fd: number, payload: number, events: number, now: number): void {
    this.eventCounts[type]++;
    const handler = this.handlers[type];
    if (!handler) {
      log.error(`event for epoll type ${type} (fd ${fd}) with no handler: removing the fd`);
      this.remove(fd);
      return;
    }
    try {
      handler(fd, payload, events, now);
    } catch (e) {
      this.handlerErrors++;
      handlerErrorLog.error(`handler for epoll type ${type} (fd ${fd}) failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    }
  }

  /**
   * Bun runs signal handlers, child-exit callbacks and its own I/O from its own epoll instance, which gets no
   * chance to run while we block in ours. Nesting Bun's epoll fd in ours (edge-triggered) wakes us whenever it
   * has work, and we yield to it at once: a signal delivered to any of Bun's threads is then acted on in
   * microseconds instead of at the next timeout.
   */
  private watchRuntimeLoop(): void {
    const fd = findRuntimeEpollFd();
    if (fd < 0) {
      log.debug("Bun's own epoll instance not found: signals wait for the loop timeout");
      return;
    }
    this.handlers[EpollType.RUNTIME] = () => {
      this.yieldNow = true;
    };
    this.add(EpollType.RUNTIME, fd, 0, (EPOLLIN | EPOLLET) >>> 0);
  }

  private ctl(op: number, type: number, fd: number, payload: number, events: number): void {
    if (fd < 0 || fd > FD_REF_MAX) throw new Error(`fd ${fd} cannot be carried in an epoll_ref`);
    const r = epollCtl(this.epfd, op, fd, events, refLo(type, fd), payload);
    if (r < 0) throw new SyscallError("epoll_ctl", -r, `fd ${fd}`);
  }

  /**
   * Makes SIGTERM and SIGINT stop the loop (run() does it too): call it before the filesystem view is taken
   * away, since finding Bun's own epoll instance reads /proc/self/fd.
   */
  installSignals(): void {
    if (this.signalsInstalled) return;
    this.signalsInstalled = true;
    this.watchRuntimeLoop();
    const onSignal = (signal: NodeJS.Signals) => {
      log.debug(`${signal}: exiting`);
      this.stop(0);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }
}

/** The lowest-numbered epoll fd of this process that is not one of ours: the runtime's own loop, or -1. */
function findRuntimeEpollFd(): number {
  let best = -1;
  for (const name of readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    if (epollFds.includes(fd)) continue;
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === "anon_inode:[eventpoll]" && (best < 0 || fd < best)) best = fd;
    } catch {
      // The fd was closed while we looked (the listing's own directory fd): not a candidate.
    }
  }
  return best;
}

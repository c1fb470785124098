/**
 * The loop's adaptive poll window: how long to poll epoll without blocking before going to sleep in it.
 *
 * Why: a process that blocks gives up its CPU, and on a virtual machine an idle vCPU halts; waking it again for
 * the next event (an interrupt through the hypervisor, then a context switch) costs tens of microseconds, more
 * than the work the event brings. Request/response traffic pays that on every exchange. The kernel's answer is
 * haltpoll (poll a little before halting, the window adapted to how long idle periods really are); machines
 * without its cpuidle driver, and every process whatever the driver, can do the same before epoll_wait blocks.
 *
 * The window follows the haltpoll rule: an idle period that ended with an event within the largest window means
 * a longer window would have caught it, so the window grows (doubling from a start value); one that outlasted
 * the largest window, or ended without an event, means polling was wasted, so the window halves, down to zero.
 * An idle process thus polls at most a few windows' worth before it blocks outright, and a busy one never polls:
 * it always has events. Between polls the loop yields the CPU (sched_yield): when the peers it waits for are
 * runnable on the same CPU, as under connection churn on two cores, they run first instead of waiting for the
 * window to end; with nothing else runnable the yield returns at once.
 */

/** Largest poll window (ms): 100 µs covers a request/response exchange through the host's kernel. */
export const POLL_MAX_MS = 0.1;
/** First window after blocking paid off (ms). */
export const POLL_START_MS = 0.01;

/** The current poll window and its adaptation. */
export class PollWindow {
  /** Poll this long (ms) before blocking; 0: block at once. */
  ms = 0;

  constructor(private readonly maxMs = POLL_MAX_MS, private readonly startMs = POLL_START_MS) {}

  /**
   * An idle period of idleMs (polling and blocking together) ended, by an event or not (timeout, signal): grows
   * the window when a longer one would have caught the event, shrinks it when polling could not have.
   */
  idle(idleMs: number, event: boolean): void {
    if (event && idleMs <= this.maxMs) {
      this.ms = this.ms === 0 ? this.startMs : Math.min(2 * this.ms, this.maxMs);
    } else if (this.ms > 0) {
      this.ms = this.ms / 2 < this.startMs ? 0 : this.ms / 2;
    }
  }
}

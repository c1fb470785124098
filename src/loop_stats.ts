/**
 * --stats DELAY: the event loop's counts of dispatched events, per epoll type, printed to stderr as a table at
 * most every DELAY seconds and only when there were events since the last row, as pasta and passt do (which
 * also print them in the foreground only). Counts are totals since start; a header line comes every 20 rows.
 * Bun's own loop (EpollType.RUNTIME) is left out: it is not orzo's work.
 */
import { EpollType } from "./epoll_ref.ts";
import type { EventLoop } from "./loop.ts";
import { writeAll } from "./log_outputs.ts";

const STDERR = 2;

/** Rows between two header lines. */
const ROWS_PER_HEADER = 20;
/** The narrowest column: room for counts into the millions. */
const MIN_WIDTH = 7;

/** The epoll types shown, in number order, with their names as column headings. */
const COLUMNS = Object.entries(EpollType)
  .filter(([, type]) => type !== EpollType.NONE && type !== EpollType.RUNTIME)
  .sort(([, a], [, b]) => a - b)
  .map(([name, type]) => ({ type, name: name.toLowerCase().padStart(MIN_WIDTH) }));

/** The table of event counts for --stats. */
export class EventStats {
  private rows = 0;
  private shown = 0;
  private last = Number.NEGATIVE_INFINITY;

  /** counts: the loop's events per type; delayMs: the least time between rows; write: where rows go. */
  constructor(
    private readonly counts: Float64Array,
    private readonly delayMs: number,
    private readonly write: (text: string) => void,
  ) {}

  /** Prints a row (after a header line when one is due) if delayMs passed since the last and events came. */
  tick(now: number): void {
    if (now - this.last < this.delayMs) return;
    let total = 0;
    for (const c of COLUMNS) total += this.counts[c.type];
    if (total === this.shown) return;
    this.shown = total;
    this.last = now;
    const cells = COLUMNS.map((c) => String(this.counts[c.type]).padStart(c.name.length));
    const header = this.rows++ % ROWS_PER_HEADER === 0 ? `${COLUMNS.map((c) => c.name).join(" ")}\n` : "";
    this.write(`${header}${cells.join(" ")}\n`);
  }

  /** Shows the loop's counts on stderr at most every delaySeconds, checked once a second in its housekeeping. */
  static attach(loop: EventLoop, delaySeconds: number): void {
    const stats = new EventStats(loop.eventCounts, delaySeconds * 1000, (text) => writeAll(STDERR, text));
    loop.every(1000, (now) => stats.tick(now));
  }
}

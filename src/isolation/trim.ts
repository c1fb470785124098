/**
 * After set-up, the executable's pages that only start-up touched (the command line, netlink, configuration,
 * the namespace thread's start) are handed back: MADV_PAGEOUT over the executable's own mappings, whose pages
 * are clean file pages the kernel can read again if the data path ever needs them. A compiled Bun program is
 * one 110 MB file; an idle instance kept about 40 MiB of it resident, most of it never used again.
 *
 * The mappings are read from /proc/self/maps while the filesystem is still there (before stage 5).
 */
import { readFileSync } from "node:fs";
import { MADV_PAGEOUT } from "../syscalls/constants.ts";
import { madvise } from "../syscalls/process.ts";

/** An address range of the executable's mappings. */
interface Range {
  readonly start: number;
  readonly end: number;
}

/**
 * The read-only ranges where this process maps its own executable (from /proc/self/maps text). Writable ones
 * are left alone: their changed pages are anonymous memory, which paging out would send to swap.
 */
export function executableRanges(maps: string, exe: string): Range[] {
  const ranges: Range[] = [];
  for (const line of maps.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 6 || fields.slice(5).join(" ") !== exe || fields[1].includes("w")) continue;
    const [start, end] = fields[0].split("-").map((h) => parseInt(h, 16));
    if (Number.isFinite(start) && Number.isFinite(end) && end > start) ranges.push({ start, end });
  }
  return ranges;
}

/** Reads the executable's ranges now; the returned function pages them out (call it once set-up is done). */
export function prepareTrim(): () => void {
  let ranges: Range[] = [];
  try {
    ranges = executableRanges(readFileSync("/proc/self/maps", "utf8"), process.execPath);
  } catch {
    // No /proc: nothing to trim.
  }
  return () => {
    Bun.gc(true);
    for (const r of ranges) madvise(r.start, r.end - r.start, MADV_PAGEOUT);
  };
}

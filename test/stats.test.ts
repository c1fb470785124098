/**
 * --stats DELAY: the table of event counts, from the printer fed by hand (rows at most DELAY apart and only after
 * events, a header every 20 rows, Bun's own loop left out) and from passt in the foreground while a guest comes
 * and goes; and where --stats is refused (a daemon has no stderr to print to).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EPOLL_TYPE_COUNT, EpollType } from "../src/epoll_ref.ts";
import { EventStats } from "../src/loop_stats.ts";
import { orzoBinary } from "./helpers/binary.ts";
import { run, TestHost, waitFor } from "./helpers/netns.ts";
import { collectText } from "./helpers/process.ts";

let host: TestHost;
let orzo: string;
let dir: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("stats");
  dir = mkdtempSync(join(tmpdir(), "orzo-stats-"));
}, 30_000);
afterAll(async () => {
  await host?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The rows printed, as records of column name to count, and how many header lines came. */
function parse(text: string): { headers: number; rows: Record<string, number>[] } {
  let names: string[] = [];
  let headers = 0;
  const rows: Record<string, number>[] = [];
  for (const line of text.split("\n").filter((l) => l.trim() !== "")) {
    const cells = line.trim().split(/\s+/);
    if (/^[a-z]/.test(cells[0])) {
      names = cells;
      headers++;
    } else rows.push(Object.fromEntries(cells.map((c, i) => [names[i], Number(c)])));
  }
  return { headers, rows };
}

describe("the table of event counts", () => {
  test("a row at most every DELAY and only after events; a header every 20 rows; Bun's loop not counted", () => {
    const counts = new Float64Array(EPOLL_TYPE_COUNT);
    let out = "";
    const stats = new EventStats(counts, 2000, (text) => {
      out += text;
    });
    stats.tick(0);
    expect(out).toBe("");
    counts[EpollType.TCP] = 3;
    counts[EpollType.TAP_PASTA] = 5;
    stats.tick(100);
    counts[EpollType.TCP]++;
    stats.tick(1000);
    expect(parse(out)).toEqual({ headers: 1, rows: [expect.objectContaining({ tcp: 3, tap_pasta: 5, udp: 0 })] });
    stats.tick(2100);
    expect(parse(out).rows.at(-1)).toEqual(expect.objectContaining({ tcp: 4, tap_pasta: 5 }));
    counts[EpollType.RUNTIME] += 10;
    stats.tick(5000);
    expect(parse(out).rows).toHaveLength(2);
    expect(out).not.toContain("runtime");
    for (let i = 0; i < 19; i++) {
      counts[EpollType.UDP]++;
      stats.tick(10_000 + i * 2000);
    }
    expect(parse(out)).toEqual({ headers: 2, rows: expect.any(Array) });
    expect(parse(out).rows).toHaveLength(21);
  });
});

describe("--stats", () => {
  test("passt -f --stats 1: rows of counts on stderr once a guest came and went", async () => {
    const socket = join(dir, "stats.socket");
    const passt = host.spawn([orzo, "passt", "-f", "--stats", "1", "-s", socket]);
    const stderr = collectText(passt.stderr as ReadableStream<Uint8Array>);
    try {
      // The file exists from bind(), a moment before listen(): the line comes after both.
      expect(await waitFor(() => stderr().includes("passt: listening on"), 10_000)).toBe(true);
      const client = await Bun.connect({ unix: socket, socket: { data() {} } });
      client.end();
      const seen = () => parse(stderr().split("\n").filter((l) => !l.startsWith("passt:") && !l.startsWith("    -device")).join("\n"));
      // The guest's connection was accepted on the listener; whether its own fd saw an event depends on who closed first.
      expect(await waitFor(() => seen().rows.some((r) => r.tap_listen === 1 && r.tcp === 0), 5000)).toBe(true);
      expect(seen().headers).toBe(1);
    } finally {
      passt.kill("SIGTERM");
      await Promise.race([passt.exited, Bun.sleep(5000)]);
    }
  }, 30_000);

  test("refused where orzo goes to the background; pasta running a command is in the foreground", async () => {
    const needs = "orzo: option '--stats' needs orzo in the foreground (-f): the counts go to stderr\n";
    expect(await run([orzo, "passt", "--stats", "1"])).toEqual({ code: 1, stdout: "", stderr: needs });
    expect(await run([orzo, "pasta", "--stats", "1", "--netns", "/nonexistent"])).toEqual({ code: 1, stdout: "", stderr: needs });
    expect(await run([orzo, "pasta", "--stats", "x", "--", "true"])).toEqual({ code: 1, stdout: "", stderr: "orzo: invalid value for --stats: 'x' is not a number\n" });
    expect(await host.run([orzo, "pasta", "--stats", "1", "--", "true"])).toEqual({ code: 0, stdout: "", stderr: "" });
  }, 30_000);
});

/**
 * doc/options.md against the option table (src/cli/options.ts): every option of the table, which has every option
 * upstream pasta and passt have, has exactly one row there, with the table's short name, modes and status; each
 * test a row names exists; every option the table refuses is refused by the executable, in each mode that takes it,
 * by each of its names; and a no-op is accepted.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { OPTIONS, type Mode, type OptionDef } from "../src/cli/options.ts";
import { orzoBinary } from "./helpers/binary.ts";
import { run } from "./helpers/netns.ts";

const ROOT = join(import.meta.dir, "..");
/** Options whose effect is tested with work not on this branch (process start-up and namespace entry). */

/** One row of the inventory. */
interface Row {
  long: string;
  short: string;
  modes: string;
  status: string;
  note: string;
}

/** The option rows of doc/options.md: table lines whose first cell names a long option. */
function inventory(): Row[] {
  const text = readFileSync(join(ROOT, "doc", "options.md"), "utf8");
  return text.split("\n").filter((line) => line.startsWith("| `--")).map((line) => {
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    const long = /`--([a-z0-9-]+)`/.exec(cells[0])![1];
    return { long, short: cells[1].replace(/`-?/g, ""), modes: cells[2], status: cells[3], note: cells[4] };
  });
}

/** The tests a note names: `test/FILE.test.ts` › "NAME" (the name may be part of the test's full name). */
function namedTests(note: string): { file: string; name: string }[] {
  return [...note.matchAll(/`(test\/[a-z0-9-]+\.test\.ts)` › "([^"]+)"/g)].map((m) => ({ file: m[1], name: m[2] }));
}

const TABLE = Object.values(OPTIONS) as OptionDef[];
const ROWS = inventory();

function modesOf(def: OptionDef): Mode[] {
  return def.modes === "both" ? ["pasta", "passt"] : [def.modes];
}

describe("doc/options.md", () => {
  test("one row for every option of the table, and none for an option it does not have", () => {
    expect(ROWS.map((r) => r.long).sort()).toEqual(TABLE.map((d) => d.long).sort());
  });

  test("each row has the table's short name, modes and status", () => {
    const byLong = new Map(TABLE.map((d) => [d.long, d]));
    for (const row of ROWS) {
      const def = byLong.get(row.long)!;
      expect({ long: row.long, status: row.status }).toEqual({
        long: row.long,
        status: def.kind === "refused" ? "refused" : row.status === "no-op" ? "no-op" : "implemented",
      });
      expect({ long: row.long, short: row.short, modes: row.modes }).toEqual({ long: row.long, short: def.short ?? "", modes: def.modes });
    }
  });

  test("each implemented option names a test of its effect that exists", () => {
    for (const row of ROWS.filter((r) => r.status === "implemented")) {
      const tests = namedTests(row.note);
      expect({ long: row.long, tests: tests.length > 0 }).toEqual({ long: row.long, tests: true });
      for (const { file, name } of tests) {
        const path = join(ROOT, file);
        expect({ long: row.long, file, exists: existsSync(path) }).toEqual({ long: row.long, file, exists: true });
        expect({ long: row.long, name, found: readFileSync(path, "utf8").includes(name) }).toEqual({ long: row.long, name, found: true });
      }
    }
  });
});

describe("the executable", () => {
  const refused = TABLE.filter((d) => d.kind === "refused");

  test("refuses each refused option by each name, in each mode that takes it: one line, status 1", async () => {
    const orzo = orzoBinary();
    expect(refused.length).toBeGreaterThan(0);
    for (const def of refused) {
      const value = def.kind === "refused" && def.valueName !== undefined ? ["x"] : [];
      const spellings = [[`--${def.long}`, ...value], ...(def.short ? [[`-${def.short}`, ...value]] : [])];
      if (value.length > 0) spellings.push([`--${def.long}=x`]);
      for (const mode of modesOf(def)) {
        for (const spelled of spellings) {
          const r = await run([orzo, mode, "-f", ...spelled, ...(mode === "pasta" ? ["--", "true"] : [])], { timeoutMs: 10_000 });
          expect({ args: [mode, ...spelled], r }).toEqual({
            args: [mode, ...spelled],
            r: { code: 1, stdout: "", stderr: `orzo: --${def.long}: not supported yet\n` },
          });
        }
      }
    }
  }, 60_000);

  test("accepts the no-ops", async () => {
    const orzo = orzoBinary();
    for (const row of ROWS.filter((r) => r.status === "no-op")) {
      const r = await run([orzo, "pasta", `--${row.long}`, "--", "true"], { timeoutMs: 10_000 });
      expect({ long: row.long, r }).toEqual({ long: row.long, r: { code: 0, stdout: "", stderr: "" } });
    }
  }, 30_000);
});

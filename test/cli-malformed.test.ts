/**
 * Malformed option values on a full pasta command line, through the compiled executable: `orzo pasta -m 70000 --
 * true` and `orzo pasta -a notanaddress -- true` (and their long forms, and the same through a link named pasta)
 * must print exactly one line on stderr naming the bad value, print nothing on stdout, exit with status 1, and
 * never get as far as running the command.
 */
import { commandTmpDir } from "./helpers/process.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";

let dir = "";
let orzo = "";
beforeAll(() => {
  orzo = orzoBinary();
  dir = commandTmpDir("orzo-cli-malformed-");
  symlinkSync(orzo, join(dir, "pasta"));
}, 120_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs argv from the scratch directory to completion (bounded); never throws for a non-zero status. */
async function run(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = Bun.spawn(argv, {
    cwd: dir,
    env: { PATH: "/usr/bin:/bin", HOME: dir },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: 20_000,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

/** Each malformed value: the options that carry it, and what the one error line must say about it. */
const CASES = [
  { value: "70000", options: ["-m", "--mtu"], why: "out of range for an MTU" },
  { value: "notanaddress", options: ["-a", "--address"], why: "not an IPv4 or IPv6 address" },
];

describe("malformed values on a pasta command line", () => {
  for (const { value, options, why } of CASES) {
    for (const option of options) {
      const given = option.startsWith("--") ? [`${option}=${value}`] : [option, value];
      test(`orzo pasta ${given.join(" ")} -- true: one line naming '${value}', status 1`, async () => {
        const r = await run([orzo, "pasta", ...given, "--", "true"]);
        expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: "" });
        const lines = r.stderr.split("\n");
        expect(lines).toHaveLength(2);
        expect(lines[1]).toBe("");
        expect(lines[0]).toStartWith("orzo: ");
        expect(lines[0]).toContain(`invalid value for ${option}: '${value}'`);
        expect(lines[0]).toContain(why);
      });
    }
  }

  test("the command is never started: the error comes before any namespace or process", async () => {
    for (const given of [["-m", "70000"], ["-a", "notanaddress"]]) {
      const marker = join(dir, `ran-${given[0].slice(1)}`);
      const r = await run([orzo, "pasta", ...given, "--", "touch", marker]);
      expect({ given, code: r.code, lines: r.stderr.trimEnd().split("\n").length }).toEqual({ given, code: 1, lines: 1 });
      expect({ given, ran: existsSync(marker) }).toEqual({ given, ran: false });
    }
  });

  test("invoked through a link named pasta: the same one line and status 1", async () => {
    for (const [given, value] of [[["-m", "70000"], "70000"], [["-a", "notanaddress"], "notanaddress"]] as const) {
      const r = await run([join(dir, "pasta"), ...given, "--", "true"]);
      expect({ given, code: r.code, stdout: r.stdout }).toEqual({ given, code: 1, stdout: "" });
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`invalid value for ${given[0]}: '${value}'`);
    }
  });
});

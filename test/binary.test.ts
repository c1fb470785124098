import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";

let dir = "";
beforeAll(() => {
  const binary = orzoBinary();
  // An empty directory and a PATH without bun: the binary must carry everything it needs.
  dir = mkdtempSync(join(tmpdir(), "orzo-bin-"));
  copyFileSync(binary, join(dir, "orzo"));
  Bun.spawnSync(["chmod", "755", join(dir, "orzo")]);
  symlinkSync(join(dir, "orzo"), join(dir, "pasta"));
  symlinkSync(join(dir, "orzo"), join(dir, "passt"));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a command from the temporary directory with a PATH that holds no bun. */
function run(argv: string[]) {
  const r = Bun.spawnSync(argv, { cwd: dir, env: { PATH: dir, HOME: dir }, stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("the compiled executable", () => {
  test("the directory the binary runs from, its whole PATH, holds no bun", () => {
    expect(readdirSync(dir).sort()).toEqual(["orzo", "passt", "pasta"]);
  });

  test("--version, --help and pasta --help work from an empty directory", () => {
    const v = run(["./orzo", "--version"]);
    expect(v.code).toBe(0);
    expect(v.out.trim()).toMatch(/^orzo \d+\.\d+\.\d+$/);
    const h = run(["./orzo", "--help"]);
    expect(h.code).toBe(0);
    expect(h.out).toContain("pasta");
    expect(h.out).toContain("passt");
    const p = run(["./orzo", "pasta", "--help"]);
    expect(p.code).toBe(0);
    expect(p.out).toContain("--pid");
  });

  test("invoked through links named pasta and passt it behaves as that command", () => {
    const p = run(["./pasta", "--help"]);
    expect(p.code).toBe(0);
    expect(p.out).toContain("USAGE pasta ");
    const q = run(["./passt", "--help"]);
    expect(q.code).toBe(0);
    expect(q.out).toContain("USAGE passt ");
    const bad = run(["./pasta", "--bogus"]);
    expect(bad.code).toBe(1);
    expect(bad.err.trim().split("\n")).toHaveLength(1);
    expect(bad.err).toContain("--bogus");
  });

  test("a running instance needs no file of the source tree: pasta with its namespace thread, the source hidden", () => {
    // util-linux stays reachable (it is a run-time dependency); the tree the executable was built from does not.
    const src = join(import.meta.dir, "..", "src");
    const r = Bun.spawnSync(["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs none ${src} && exec ./orzo pasta -- sh -c 'echo $$'`], {
      cwd: dir, env: { PATH: `${dir}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: dir }, stdout: "pipe", stderr: "pipe", timeout: 20_000,
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString().trim()).toBe("1");
    expect(r.exitCode).toBe(0);
  });
});

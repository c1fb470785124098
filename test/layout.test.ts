import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..");
const SKIP = new Set(["node_modules", ".git", "dist", ".cache"]);

/** Every file below a directory, skipping dependencies and build output. */
function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

describe("project layout", () => {
  const files = walk(root).map((f) => relative(root, f));

  test("only src/syscalls/ imports bun:ffi", () => {
    const importers = files.filter((f) => /\.(ts|js|mjs|cjs)$/.test(f) && /from\s+["']bun:ffi["']|import\(\s*["']bun:ffi["']|require\(\s*["']bun:ffi["']/.test(readFileSync(join(root, f), "utf8")));
    expect(importers.length).toBeGreaterThan(0);
    expect(importers.filter((f) => !f.startsWith("src/syscalls/"))).toEqual([]);
  });

  test("there is no compiled addon and no C to compile", () => {
    const native = files.filter((f) => /\.(node|c|cc|cpp|h|so)$/.test(f) || /(^|\/)binding\.gyp$/.test(f));
    expect(native).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    expect(Object.keys(pkg.dependencies).sort()).toEqual(["citty", "consola"]);
    expect(pkg.gypfile).toBeUndefined();
  });

  test("the fixed layout is in place", () => {
    for (const f of ["package.json", "bunfig.toml", "build.ts", "tsconfig.json", "bun.lock", "README.md", ".ci/run", "src/loop.ts", "src/flows/epoll.ts"]) {
      expect(files).toContain(f);
    }
  });
});

/** The compiled orzo binary for integration tests: built when missing or older than the sources. */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, statSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
const binary = join(root, "dist", "orzo");

function newestSource(dir = join(root, "src")): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestSource(p) : st.mtimeMs);
  }
  return newest;
}

let copy: string | undefined;

/**
 * The path of an up-to-date orzo binary in a world-readable temporary directory (so that tests running as an
 * unprivileged user can execute it too).
 */
export function orzoBinary(): string {
  if (copy) return copy;
  if (!existsSync(binary) || statSync(binary).mtimeMs < newestSource()) {
    const b = Bun.spawnSync([process.execPath, "run", join(root, "build.ts")], { stdout: "pipe", stderr: "pipe" });
    if (b.exitCode !== 0) throw new Error(`build failed: ${b.stderr.toString()}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "orzo-it-"));
  chmodSync(dir, 0o755);
  copy = join(dir, "orzo");
  copyFileSync(binary, copy);
  chmodSync(copy, 0o755);
  return copy;
}

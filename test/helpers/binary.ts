/** The compiled orzo binary for integration tests: built when missing or older than the sources. */
import { existsSync, readdirSync, statSync } from "node:fs";
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

let checked = false;

/** The path of an up-to-date dist/orzo (world-executable, so tests may run it as an unprivileged user too). */
export function orzoBinary(): string {
  if (checked) return binary;
  if (!existsSync(binary) || statSync(binary).mtimeMs < newestSource()) {
    const b = Bun.spawnSync([process.execPath, "run", join(root, "build.ts")], { stdout: "pipe", stderr: "pipe" });
    if (b.exitCode !== 0) throw new Error(`build failed: ${b.stderr.toString()}`);
  }
  checked = true;
  return binary;
}

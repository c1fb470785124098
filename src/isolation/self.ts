/** How orzo starts itself again: the stage-2 end of the exec chain, and the background half of a hand-off. */

/** The command that runs orzo itself: the compiled binary, or Bun with orzo's entry point when run from source. */
export function orzoCommand(): string[] {
  if (Bun.main.startsWith("/$bunfs/")) return [process.execPath];
  return [process.execPath, new URL("../main.ts", import.meta.url).pathname];
}

/**
 * The command that starts stage 2 at the end of the exec chain: the executable through an fd stage 1 opened
 * (exeFd), so that the identity stage 2 runs as need not reach the directory it lies in (root's own, say).
 */
export function stage2Command(exeFd: number | undefined): string[] {
  const self = orzoCommand();
  if (exeFd === undefined || self.length !== 1) return self;
  return [`/proc/self/fd/${exeFd}`];
}

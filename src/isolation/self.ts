/** How orzo starts itself again: the stage-2 end of the exec chain, and the background half of a hand-off. */

/** The command that runs orzo itself: the compiled binary, or Bun with orzo's entry point when run from source. */
export function orzoCommand(): string[] {
  if (Bun.main.startsWith("/$bunfs/")) return [process.execPath];
  return [process.execPath, new URL("../main.ts", import.meta.url).pathname];
}

import { chmodSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
/** Helpers for tests that drive child processes: waiting on output lines with a timeout. */

/** Reads a child's output until a line matches (or the timeout passes); rest() returns everything read. */
export function waitForLine(stream: ReadableStream<Uint8Array>, pattern: RegExp, timeoutMs: number) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let done = false;
  const pump = (async () => {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      text += decoder.decode(r.value, { stream: true });
    }
    done = true;
  })();
  const found = (async () => {
    const deadline = performance.now() + timeoutMs;
    while (!text.split("\n").some((l) => pattern.test(l))) {
      if (done) throw new Error(`output ended without a line matching ${pattern}: ${text}`);
      if (performance.now() > deadline) throw new Error(`no line matching ${pattern} within ${timeoutMs} ms: ${text}`);
      await Promise.race([pump, Bun.sleep(5)]);
    }
    return text;
  })();
  return {
    found,
    /** Waits for the stream to end (bounded by the timeout) and returns all output. */
    rest: async () => {
      await Promise.race([pump, Bun.sleep(timeoutMs)]);
      return text;
    },
  };
}

/** Collects a stream's text as it comes; the returned function gives what came so far. */
export function collectText(stream: ReadableStream<Uint8Array>): () => string {
  let text = "";
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return () => text;
}

/** A process's resident memory in KiB (VmRSS), or 0 when it is gone. */
export function readRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * A temporary directory the command under orzo pasta can write in: started as root without --runas, orzo (like
 * pasta) runs the command as root of a user namespace mapped to nobody, so the directory is open to everyone.
 */
export function commandTmpDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o1777);
  return dir;
}

/**
 * Child processes for the benchmark: each runs in a process group of its own (through setsid, which execs in
 * place, so the PID is the group's ID) and every wait is bounded; kill() ends the whole group.
 */
import { readdirSync, readFileSync } from "node:fs";

/** A command's outcome; timedOut means it was killed at its deadline. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Collects a stream's text as it arrives, so a child never blocks on a full pipe. */
class Collector {
  text = "";
  readonly done: Promise<void>;
  constructor(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    this.done = (async () => {
      const reader = stream.getReader();
      try {
        for (;;) {
          const r = await reader.read();
          if (r.done) break;
          this.text += decoder.decode(r.value, { stream: true });
          // Bound what a chatty child can make us hold.
          if (this.text.length > 1 << 20) this.text = this.text.slice(-(1 << 19));
        }
      } catch {
        // The stream ends with the process.
      }
    })();
  }
}

/** Every group still running, so that an interrupted run can end them all. */
export const liveGroups = new Set<Group>();

/** A long-running child in its own process group. */
export class Group {
  readonly pid: number;
  private readonly proc: ReturnType<typeof Bun.spawn>;
  private readonly out: Collector;
  private readonly err: Collector;
  private exitCode: number | null = null;
  readonly exited: Promise<number>;

  constructor(argv: string[], opts: { stdin?: "pipe" | "ignore" } = {}) {
    this.proc = Bun.spawn(["setsid", ...argv], { stdout: "pipe", stderr: "pipe", stdin: opts.stdin ?? "ignore" });
    this.pid = this.proc.pid;
    this.out = new Collector(this.proc.stdout as ReadableStream<Uint8Array>);
    this.err = new Collector(this.proc.stderr as ReadableStream<Uint8Array>);
    liveGroups.add(this);
    this.exited = this.proc.exited.then((c) => {
      liveGroups.delete(this);
      return (this.exitCode = this.proc.signalCode ? -1 : c);
    });
  }

  /** Output so far. */
  get stdout(): string {
    return this.out.text;
  }
  get stderr(): string {
    return this.err.text;
  }

  /** Whether the child has exited, and with what status (null while it runs). */
  get code(): number | null {
    return this.exitCode;
  }

  /** Closes the child's standard input (when it was a pipe). */
  closeStdin(): void {
    const s = this.proc.stdin;
    if (s && typeof s !== "number") void Promise.resolve(s.end()).catch(() => {});
  }

  /** Waits for the exit for at most timeoutMs; true if it exited. */
  async wait(timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([this.exited.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs)))]);
    clearTimeout(timer);
    return r;
  }

  /** Signals the whole group (ignores a group that is already gone). */
  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** Ends the group: SIGTERM, then SIGKILL if it lingers; waits (bounded) for the exit and the output. */
  async kill(graceMs = 300): Promise<void> {
    if (this.exitCode === null) {
      this.signal("SIGTERM");
      if (!(await this.wait(graceMs))) {
        this.signal("SIGKILL");
        await this.wait(3000);
      }
    }
    // Leftovers that outlived the leader.
    this.signal("SIGKILL");
    await Promise.race([Promise.all([this.out.done, this.err.done]), Bun.sleep(1000)]);
  }

  /** Waits until a line of standard output matches, the child exits, or the timeout passes. */
  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<boolean> {
    return waitUntil(() => pattern.test(this.out.text) || this.exitCode !== null, timeoutMs).then(() => pattern.test(this.out.text));
  }
}

/** Runs a command to completion in its own group, killing the group at the deadline. */
export async function runGroup(argv: string[], timeoutMs: number): Promise<Outcome> {
  const g = new Group(argv);
  const finished = await g.wait(timeoutMs);
  await g.kill(100);
  return { code: finished ? (g.code ?? -1) : -1, stdout: g.stdout, stderr: g.stderr, timedOut: !finished };
}

/** Polls a condition until it holds or the timeout passes; returns whether it held. */
export async function waitUntil(pred: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 5): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (performance.now() > deadline) return false;
    await Bun.sleep(stepMs);
  }
}

/** The argv prefix that runs a command in a named network namespace. */
export function inNs(ns: string): string[] {
  return ["ip", "netns", "exec", ns];
}

/** Whether something listens on a TCP port in a namespace (any address). */
export function listening(ns: string, port: number): boolean {
  const r = Bun.spawnSync([...inNs(ns), "ss", "-H", "-ltn", `sport = :${port}`], { stdout: "pipe", stderr: "ignore" });
  return r.stdout.toString().trim() !== "";
}

/** Waits for a TCP listener; throws a clear reason when none appears in time (or the server exited). */
export async function waitListening(ns: string, port: number, what: string, opts: { timeoutMs?: number; server?: Group } = {}): Promise<void> {
  const ok = await waitUntil(() => listening(ns, port) || (opts.server?.code ?? null) !== null, opts.timeoutMs ?? 5000, 10);
  if (opts.server && opts.server.code !== null) throw new Error(`${what} exited (${opts.server.code}): ${tail(opts.server.stderr || opts.server.stdout)}`);
  if (!ok || !listening(ns, port)) throw new Error(`no ${what} listening on port ${port}`);
}

/** The last line or so of a text, for failure reasons. */
export function tail(text: string, max = 160): string {
  const lines = text.replace(/\x1b\[[0-9;]*m/g, "").trim().split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("Failed to send"));
  const last = lines.slice(-2).join(" | ");
  return last.length > max ? `${last.slice(0, max)}…` : last || "(no output)";
}

/**
 * Resident memory (kB, from /proc/PID/status) of a process alone and with its descendants: VmRSS, and the
 * anonymous part (RssAnon) of the whole tree, beside it because a compiled Bun program maps tens of MiB of its
 * own file.
 */
export function rssKb(pid: number): { self: number; tree: number; anonTree: number } {
  let self = 0;
  let tree = 0;
  let anonTree = 0;
  const seen = new Set<number>();
  const visit = (p: number) => {
    if (seen.has(p)) return;
    seen.add(p);
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      const kb = m ? Number(m[1]) : 0;
      if (p === pid) self = kb;
      tree += kb;
      anonTree += Number(/^RssAnon:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
      for (const task of readdirSafe(`/proc/${p}/task`)) {
        for (const c of readFileSync(`/proc/${p}/task/${task}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) visit(Number(c));
      }
    } catch {
      // The process went away while we looked.
    }
  };
  visit(pid);
  return { self, tree, anonTree };
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Process lifecycle: the PID file, and going to the background once ready.
 *
 * Bun cannot fork, so "daemonizing" is a hand-off: the foreground process (stage 1) starts the exec chain that
 * ends in stage 2 as a detached child, with a pipe on fd 3 (or the first fd above those it passes on at their own
 * numbers, such as passt's --fd), and waits.
 * The background process does all the set-up and, once ready (tap up, addresses set, forwards bound), writes its
 * PID file and says so on the pipe; only then does the foreground one exit 0.
 * Tools that wait for the PID file, or for orzo to return, thus never see a half-ready orzo. If the background
 * process fails first, the foreground one exits with its status (its error already went to the shared stderr).
 */
import { O_CLOEXEC, O_RDWR } from "./syscalls/constants.ts";
import { close, open, pipe2, readBytes, writeBytes } from "./syscalls/io.ts";
import { dup2, setsid } from "./syscalls/process.ts";
import { logToSyslog } from "./log.ts";

/** Environment variable that tells the background process which fd reports readiness. */
const READY_FD_ENV = "ORZO_READY_FD";
const FIRST_FREE_FD = 3;

/** Writes the PID file that stage 1 opened (and truncated), then closes it: call only once ready. */
export function writePidFile(fd: number, pid = process.pid): void {
  writeBytes(fd, new TextEncoder().encode(`${pid}\n`));
  close(fd);
}

/** The readiness fd this process was started with, or -1 when it is not the background half of a hand-off. */
function readyFdFromEnv(): number {
  const text = process.env[READY_FD_ENV];
  const fd = text !== undefined && /^[0-9]+$/.test(text) ? Number(text) : -1;
  return fd >= FIRST_FREE_FD ? fd : -1;
}

/**
 * The foreground half: starts argv (stage 1's exec chain, which ends in stage 2) in the background, with the
 * fds in passFds at the same numbers and env as its environment, and resolves to the exit status to use: 0 once
 * the background process reported ready, else its own exit status.
 */
export async function handOffToBackground(argv: readonly string[], passFds: readonly number[], env: Readonly<Record<string, string>>): Promise<number> {
  const [r, w] = pipe2(O_CLOEXEC);
  let ready = FIRST_FREE_FD;
  while (passFds.includes(ready)) ready++;
  const stdio: ("ignore" | "inherit" | number)[] = ["ignore", "inherit", "inherit"];
  for (const fd of [...passFds, ready]) {
    while (stdio.length <= fd) stdio.push("ignore");
    stdio[fd] = fd === ready ? w : fd;
  }
  const child = Bun.spawn([...argv], {
    stdio: stdio as ["ignore", "inherit", "inherit", ...number[]],
    env: { ...env, [READY_FD_ENV]: String(ready) },
  });
  close(w);
  // Nothing else to do meanwhile: a blocking read returns at "ready" or at EOF when the child exits early.
  const got = readBytes(r, new Uint8Array(1));
  close(r);
  if (got > 0) {
    child.unref();
    return 0;
  }
  return await child.exited;
}

/**
 * The background half, once ready: detach from the session and terminal, and release the waiting parent. With
 * the system logger's socket (syslogFd, stage 1 connected it), log lines go there from now on, tagged with name.
 */
export function reportReady(syslogFd: number | undefined, name: string): void {
  const ready = readyFdFromEnv();
  if (ready < 0) return;
  setsid();
  const devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (const fd of [0, 1, 2]) dup2(devnull, fd);
  close(devnull);
  if (syslogFd !== undefined) logToSyslog(syslogFd, name);
  writeBytes(ready, new Uint8Array([0x0a]));
  close(ready);
  delete process.env[READY_FD_ENV];
}

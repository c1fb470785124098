/**
 * What stage 1 hands to stage 2 across the exec chain (doc/isolation.md): fd numbers that survived the exec
 * and the command launcher's PID, as JSON in one environment variable, removed again as stage 2 reads it.
 */

/** The environment variable that carries the state; its presence makes a process stage 2. */
export const STAGE2_ENV = "ORZO_STAGE2";

/** The handed-over state. */
export interface Stage2State {
  /** The executable, through which the chain started stage 2 (closed once stage 2 runs). */
  exeFd?: number;
  /** The PID file, open for writing once ready. */
  pidFileFd?: number;
  /** The capture file (--pcap), its header written. */
  pcapFd?: number;
  /** The log file (-l), open for appending. */
  logFd?: number;
  /** The system logger's socket (/dev/log), connected for an instance that goes to the background without -l. */
  syslogFd?: number;
  /** passt: the listening socket qemu connects to, and its path. */
  listenFd?: number;
  socketPath?: string;
  /** passt: the socket file's directory, to remove the file at the end. */
  socketDirFd?: number;
  /** pasta: the target network namespace. */
  netnsFd?: number;
  /** pasta with a command: the command's UTS namespace (its host name is set from there). */
  utsnsFd?: number;
  /** pasta with a command: the launcher holding the command back, and the pipe that lets it go. */
  launcherPid?: number;
  launcherGoFd?: number;
}

/** The state this process was started with as stage 2 (and removes it from the environment), or undefined. */
export function takeStage2State(): Stage2State | undefined {
  const text = process.env[STAGE2_ENV];
  if (text === undefined) return undefined;
  delete process.env[STAGE2_ENV];
  const parsed = JSON.parse(text) as Stage2State;
  const fd = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : undefined);
  return {
    exeFd: fd(parsed.exeFd),
    pidFileFd: fd(parsed.pidFileFd),
    pcapFd: fd(parsed.pcapFd),
    logFd: fd(parsed.logFd),
    syslogFd: fd(parsed.syslogFd),
    listenFd: fd(parsed.listenFd),
    socketDirFd: fd(parsed.socketDirFd),
    socketPath: typeof parsed.socketPath === "string" ? parsed.socketPath : undefined,
    netnsFd: fd(parsed.netnsFd),
    utsnsFd: fd(parsed.utsnsFd),
    launcherPid: fd(parsed.launcherPid),
    launcherGoFd: fd(parsed.launcherGoFd),
  };
}

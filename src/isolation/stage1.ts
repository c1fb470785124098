/**
 * Stage 1 of an instance (doc/isolation.md): orzo as it was started. It opens what the later stages may no
 * longer be allowed to open (the PID and log files, the target namespace), starts pasta's command launcher,
 * marks every other inherited or Bun-made fd close-on-exec (stage 1 of isolation: nothing leaks into the
 * instance but what an option names), and replaces itself with the exec chain (chain.ts) that ends in stage 2.
 */
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import type { Config } from "../cli/config.ts";
import { log, logFileFd } from "../log.ts";
import { openSyslog } from "../log_outputs.ts";
import { F_SETFD, O_CLOEXEC, O_CREAT, O_PATH, O_RDONLY, O_TRUNC, O_WRONLY } from "../syscalls/constants.ts";
import { errnoText, SyscallError } from "../syscalls/errno.ts";
import { close, fcntl, open, pipe2 } from "../syscalls/io.ts";
import { cloexecFrom, execve, getegid, geteuid, groupByName, reapChild, userByName } from "../syscalls/process.ts";
import { handOffToBackground } from "../lifecycle.ts";
import { openPcapFile } from "../tap/pcap.ts";
import { openPasstSocket } from "../tap/passt_stream.ts";
import { orzoCommand, stage2Command } from "./self.ts";
import {
  chooseIdentity, launcherArgv, NOBODY_ID, passtChain, pastaChain, resolveRunas, uidMapped,
  type Facts, type Identity, type Tools,
} from "./chain.ts";
import { STAGE2_ENV, type Stage2State } from "./stage2_state.ts";

/** How long stage 1 waits for the launcher to make its namespaces. */
const LAUNCHER_TIMEOUT_MS = 5000;

/** Raised for a start-up failure that is the user's to fix (a one-line message, exit status 1). */
export class StartError extends Error {
  override name = "StartError";
}

/** Finds the util-linux programs in PATH; throws StartError naming the first that is missing. */
export function findTools(path = process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"): Tools {
  const find = (name: string) => {
    for (const dir of path.split(":")) {
      if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
    }
    throw new StartError(`util-linux's ${name} is needed to start an isolated instance, and it is not in PATH (${path})`);
  };
  return { setpriv: find("setpriv"), unshare: find("unshare"), nsenter: find("nsenter") };
}

/** Whether this process is in the initial user namespace (its map is the identity over all IDs). */
function inInitialUserns(): boolean {
  try {
    return readFileSync("/proc/self/uid_map", "utf8").trim().split(/\s+/).join(" ") === "0 0 4294967295";
  } catch {
    return false;
  }
}

/** The facts the chain is planned from; exeFd: the executable, open for stage 2's exec. */
function facts(exeFd: number | undefined): Facts {
  return { euid: geteuid(), egid: getegid(), initialUserns: inInitialUserns(), tools: findTools(), orzo: stage2Command(exeFd) };
}

/**
 * The executable, open (O_PATH) for the exec that starts stage 2, when another identity might not reach it by
 * its path (a directory or the file not open to everyone); undefined when its path will do (so that ps shows
 * that path) or when run from source.
 */
function openExecutable(): number | undefined {
  if (orzoCommand().length !== 1) return undefined;
  const path = process.execPath;
  const dirs = path.split("/").slice(1, -1).map((_, i, parts) => `/${parts.slice(0, i + 1).join("/")}`);
  const everyone = (p: string) => (statSync(p).mode & 0o001) !== 0;
  if (everyone(path) && dirs.every(everyone)) return undefined;
  return open(path, O_PATH | O_CLOEXEC);
}

/** The identity stage 2 runs as; throws StartError for an impossible --runas. */
function identity(config: Config, f: Facts): Identity {
  let id: Identity;
  try {
    const nobody = userByName("nobody") ?? { uid: NOBODY_ID, gid: NOBODY_ID };
    id = config.runAs ? resolveRunas(config.runAs, userByName, groupByName) : chooseIdentity(undefined, f, nobody);
  } catch (e) {
    throw new StartError((e as Error).message);
  }
  if ((id.uid !== f.euid || id.gid !== f.egid) && f.euid !== 0) {
    throw new StartError(`--runas ${id.uid}:${id.gid}: only root can change to another identity`);
  }
  if (!config.runAs && id.uid !== f.euid) log.debug(`started as root: running as nobody (${id.uid}:${id.gid}); --runas 0 keeps root`);
  return id;
}

/** Opens a namespace file; throws StartError naming it. */
function openNamespace(path: string, what: string): number {
  try {
    return open(path, O_RDONLY | O_CLOEXEC);
  } catch (e) {
    throw new StartError(`cannot open the ${what} namespace ${path}: ${e instanceof SyscallError ? errnoText(e.errno) : (e as Error).message}`);
  }
}

/** The PID file, created (mode 0600) and truncated now, written once ready. Throws StartError. */
function openPidFile(path: string): number {
  try {
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600);
  } catch (e) {
    throw new StartError(`cannot open PID file ${path}: ${e instanceof SyscallError ? errnoText(e.errno) : (e as Error).message}`);
  }
}

/** Whether uid is mapped in the user namespace at path, when its map can be read (a /proc/PID path); else true. */
function identityMapped(path: string, uid: number): boolean {
  const pid = /^\/proc\/(\d+)\/ns\/user$/.exec(path)?.[1];
  if (pid === undefined) return true;
  try {
    return uidMapped(readFileSync(`/proc/${pid}/uid_map`, "utf8"), uid);
  } catch {
    return true;
  }
}

/** True when path names the user namespace this process is in already (joining it is refused, and needless). */
function isOwnUserns(path: string): boolean {
  try {
    return readlinkSync(path) === readlinkSync("/proc/self/ns/user");
  } catch {
    return false;
  }
}

/**
 * Starts pasta's command in its new namespaces, held back until orzo says go; waits (bounded) until the
 * namespaces exist and the user namespace has its ID maps. Returns its PID and our end of the go pipe.
 */
function startLauncher(config: Config, id: Identity, f: Facts): { pid: number; go: number } {
  const [r, w] = pipe2(O_CLOEXEC);
  const proc = Bun.spawn(launcherArgv(id, f, config.netnsOnly, config.command), {
    // fd 3: where the launcher's shell waits for the go (chain.ts).
    stdio: ["inherit", "inherit", "inherit", r],
    env: process.env as Record<string, string>,
  });
  close(r);
  const own = readlinkSync("/proc/self/ns/net");
  const deadline = performance.now() + LAUNCHER_TIMEOUT_MS;
  for (;;) {
    const status = reapChild(proc.pid);
    if (status >= 0) throw new StartError(`the command's namespaces could not be made (util-linux unshare exited with status ${status})`);
    try {
      const ready = readlinkSync(`/proc/${proc.pid}/ns/net`) !== own && (config.netnsOnly || readFileSync(`/proc/${proc.pid}/gid_map`, "utf8") !== "");
      if (ready) return { pid: proc.pid, go: w };
    } catch {
      // Between fork and exec the launcher's files may not be readable yet.
    }
    if (performance.now() > deadline) throw new StartError(`the command's namespaces did not appear within ${LAUNCHER_TIMEOUT_MS} ms`);
    Bun.sleepSync(0.2);
  }
}

/** Lets fd survive the exec (it was opened close-on-exec, or marked so by cloexecFrom). */
function inherit(fd: number): void {
  fcntl(fd, F_SETFD, 0);
}

/** What starts stage 2: the exec chain, its environment, and the fds it must find at their numbers. */
interface Plan {
  readonly chain: string[];
  readonly env: Record<string, string>;
  readonly fds: number[];
}

/**
 * Replaces this process with the exec chain that ends in stage 2 of the same command line (args as given after
 * the program name). Returns only by throwing (StartError, or the failure of execve).
 */
export function execIsolated(config: Config, args: readonly string[]): never {
  const plan = planInstance(config, args, false);
  for (const fd of plan.fds) inherit(fd);
  return execve(plan.chain[0], plan.chain, Object.entries(plan.env).map(([k, v]) => `${k}=${v}`));
}

/**
 * Starts the exec chain as a child that goes on in the background, and resolves to the exit status for this
 * process: 0 once stage 2 reported ready, else stage 2's own status. Spawning the chain from here, rather than
 * orzo again, spares the background half a start of its own. Throws StartError before anything started.
 */
export function startIsolatedInBackground(config: Config, args: readonly string[]): Promise<number> {
  const plan = planInstance(config, args, true);
  return handOffToBackground(plan.chain, plan.fds, plan.env);
}

/** Stage 1's work for either way of starting stage 2 (see execIsolated); background: stage 2 will go there. */
function planInstance(config: Config, args: readonly string[], background: boolean): Plan {
  const exeFd = openExecutable();
  const f = facts(exeFd);
  const id = identity(config, f);
  const state: Stage2State = {
    exeFd,
    pidFileFd: config.pidFile !== undefined ? openPidFile(config.pidFile) : undefined,
    pcapFd: config.pcapFile !== undefined ? openPcapFile(config.pcapFile) : undefined,
    logFd: logFileFd(),
  };
  // In the background without -l, lines go to the system logger, as pasta's (not under -d: they went to stderr).
  const verbose = config.logLevel === "debug" || config.logLevel === "trace";
  if (background && state.logFd === undefined && !verbose) state.syslogFd = openSyslog();
  let chain: string[];
  if (config.mode === "passt") {
    // Bound as the caller, as passt does: the socket's directory may be the caller's alone.
    if (config.socketFd === undefined) {
      const listener = openPasstSocket(config.socketPath);
      state.listenFd = listener.fd;
      state.socketPath = listener.path;
      state.socketDirFd = listener.dirFd;
    }
    chain = passtChain(id, f, args);
  }
  else if (config.command.length > 0) {
    const launcher = startLauncher(config, id, f);
    state.launcherPid = launcher.pid;
    state.launcherGoFd = launcher.go;
    state.netnsFd = openNamespace(`/proc/${launcher.pid}/ns/net`, "command's network");
    state.utsnsFd = openNamespace(`/proc/${launcher.pid}/ns/uts`, "command's UTS");
    chain = pastaChain(id, f, config.netnsOnly ? undefined : `/proc/${launcher.pid}/ns/user`, args);
  } else {
    const pidNs = config.targetPid !== undefined ? `/proc/${config.targetPid}/ns` : undefined;
    state.netnsFd = openNamespace(config.netnsPath ?? `${pidNs}/net`, "network");
    const userns = config.usernsPath ?? (pidNs && !config.netnsOnly ? `${pidNs}/user` : undefined);
    const join = userns && !isOwnUserns(userns) ? userns : undefined;
    if (join === undefined && id.uid !== 0) {
      throw new StartError(
        f.euid === 0
          ? "a namespace that root owns can only be joined as root: started as root, orzo runs as nobody unless --runas 0 (as pasta)"
          : "no privileges over the namespace to join: give its user namespace (--userns, or the PID of a process in it)",
      );
    }
    chain = pastaChain(id, f, join, args, join === undefined || identityMapped(join, id.uid));
  }
  // Isolation stage 1: nothing crosses into stage 2 but stdio and the fds named here (an option's, such as --fd).
  cloexecFrom(3);
  const fds = [state.exeFd, state.listenFd, state.socketDirFd, state.pidFileFd, state.pcapFd, state.logFd, state.syslogFd, state.launcherGoFd, state.netnsFd, state.utsnsFd, config.socketFd]
    .filter((fd): fd is number => fd !== undefined);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k !== STAGE2_ENV && v !== undefined)) as Record<string, string>;
  env[STAGE2_ENV] = JSON.stringify(state);
  log.debug(`exec chain: ${chain.join(" ")}`);
  return { chain, env, fds };
}

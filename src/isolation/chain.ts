/**
 * Isolation, stages 2, 3 and the mount namespace (doc/isolation.md): the exec chain that puts the whole
 * process, every thread of it, where it must be before Bun starts.
 *
 * A Bun process runs several threads from its first line, and the calls that change identity, user namespace
 * or capability sets either fail in a multithreaded process (unshare(CLONE_NEWUSER), setns into a user
 * namespace) or change the calling thread alone (capset, PR_CAPBSET_DROP, unshare(CLONE_NEWNS)). So the first
 * orzo (stage 1) parses the command line, opens what needs its privileges, and replaces itself with execve(2):
 * util-linux's setpriv (identity), nsenter or unshare (user and mount namespaces) and setpriv again
 * (bounding, inheritable and ambient sets) each do their part single-threaded and exec the next, and the last
 * one starts orzo again (stage 2) with the same PID. No step stays behind as a waiting parent.
 *
 * This module only plans: pure functions from the configuration and the facts of the process to argument
 * vectors, so every case is testable without running anything.
 */
import type { RunAs } from "../cli/values.ts";

/** util-linux programs the chain uses, by absolute path. */
export interface Tools {
  readonly setpriv: string;
  readonly unshare: string;
  readonly nsenter: string;
}

/** What the plan depends on besides the configuration. */
export interface Facts {
  /** Effective IDs of stage 1. */
  readonly euid: number;
  readonly egid: number;
  /** Whether stage 1 runs in the initial user namespace (root there is real root). */
  readonly initialUserns: boolean;
  readonly tools: Tools;
  /** The command that starts orzo again (the executable, or Bun and the entry point from source). */
  readonly orzo: readonly string[];
}

/** The identity the instance runs as. */
export interface Identity {
  readonly uid: number;
  readonly gid: number;
}

/** The user nobody falls back to when the user database has none (its usual ID). */
export const NOBODY_ID = 65534;

/**
 * The identity to run as, as pasta picks it: --runas when given; otherwise the caller's own, unless that is
 * root in the initial user namespace, which becomes nobody (nobody: the caller's lookup of "nobody").
 */
export function chooseIdentity(runas: Identity | undefined, facts: Facts, nobody: Identity): Identity {
  if (runas) return runas;
  if (facts.euid === 0 && facts.initialUserns) return nobody;
  return { uid: facts.euid, gid: facts.egid };
}

/**
 * Capabilities kept in the bounding set (and so, for root, in the permitted and effective sets) of stage 2,
 * by mode. pasta: CAP_SYS_ADMIN to move the namespace thread into the target namespace and to pivot_root,
 * CAP_NET_ADMIN to make the tap and configure it through netlink (both after Bun started), and
 * CAP_NET_BIND_SERVICE to bind forwarded ports below 1024. passt: CAP_SYS_ADMIN alone, for pivot_root in its
 * own user and mount namespaces, which hold nothing else. Why they stay to the end: doc/isolation.md.
 */
export const KEPT_CAPS = {
  pasta: ["sys_admin", "net_admin", "net_bind_service"],
  passt: ["sys_admin"],
} as const;

/** The steps before stage 2 that change identity (as root only); empty when the identity stays. */
function identitySteps(id: Identity, facts: Facts): string[] {
  if (id.uid === facts.euid && id.gid === facts.egid) return [];
  return [facts.tools.setpriv, `--reuid=${id.uid}`, `--regid=${id.gid}`, "--clear-groups", "--"];
}

/** The last steps: a mount namespace of the process's own, the capability sets cut, then stage 2. */
function finalSteps(mode: keyof typeof KEPT_CAPS, facts: Facts, args: readonly string[]): string[] {
  const bounding = ["-all", ...KEPT_CAPS[mode].map((c) => `+${c}`)].join(",");
  return [
    facts.tools.unshare, "--mount", "--propagation", "private", "--",
    facts.tools.setpriv, "--inh-caps=-all", "--ambient-caps=-all", `--bounding-set=${bounding}`, "--",
    ...facts.orzo, ...args,
  ];
}

/**
 * The exec chain of pasta mode. usernsPath: the user namespace to join (the command's, made by the launcher,
 * or the target's), or undefined to stay in the caller's (--netns-only, or already the target's). mapped: the
 * identity is mapped in that namespace (it is then kept, and is root there when the namespace maps it to 0);
 * when it is not, orzo becomes root of the namespace, as nsenter does by default.
 */
export function pastaChain(id: Identity, facts: Facts, usernsPath: string | undefined, args: readonly string[], mapped = true): string[] {
  // Keeping credentials also spares setgroups, which nsenter 2.41 calls otherwise and a namespace with
  // setgroups denied (unshare -r) refuses.
  const join = usernsPath ? [facts.tools.nsenter, `--user=${usernsPath}`, ...(mapped ? ["--preserve-credentials"] : []), "--"] : [];
  return [...identitySteps(id, facts), ...join, ...finalSteps("pasta", facts, args)];
}

/** The exec chain of passt mode: a user namespace of its own (root inside maps to the identity), as passt. */
export function passtChain(id: Identity, facts: Facts, args: readonly string[]): string[] {
  return [...identitySteps(id, facts), facts.tools.unshare, "--user", "--map-root-user", "--", ...finalSteps("passt", facts, args)];
}

/**
 * The shell the launcher runs: it waits until orzo is ready (a line on fd 3; if orzo fails first, fd 3 ends
 * without one and the command never starts), then forks the first process of the new PID namespace, which
 * mounts a fresh /proc and becomes the command, as PID 1. The shell waits and exits with the command's status
 * (128 + the signal that ended it, by the shell's own rule). The shell's own stderr goes to /dev/null, so that
 * it does not report the command's death by a signal ("Killed"): the command gets the real one back on fd 4.
 */
export const LAUNCHER_SCRIPT =
  'read -r _ <&3 || exit 125; exec 3<&- 4>&2 2>/dev/null; (exec 2>&4 4>&-; mount -t proc proc /proc || echo "orzo: /proc not mounted afresh" >&2; exec "$@"); exit $?';

/** The status the launcher exits with when orzo went away before it was ready. */
export const LAUNCHER_ABANDONED = 125;

/**
 * The launcher of pasta's command: new network, UTS, IPC, PID and mount namespaces (and a user namespace in
 * which root is the identity, unless --netns-only), a fresh /proc, and the command as PID 1 once orzo is ready.
 * util-linux unshare makes the namespaces and becomes the shell (LAUNCHER_SCRIPT).
 */
export function launcherArgv(id: Identity, facts: Facts, netnsOnly: boolean, command: readonly string[]): string[] {
  return [
    ...identitySteps(id, facts),
    facts.tools.unshare, ...(netnsOnly ? [] : ["--user", "--map-root-user"]),
    "--net", "--uts", "--ipc", "--pid", "--mount", "--propagation", "private", "--",
    "/bin/sh", "-c", LAUNCHER_SCRIPT, "orzo-command", ...command,
  ];
}

/** The host name of pasta's namespace: -H, else the host's own with pasta's prefix (at most 64 bytes). */
export function namespaceHostname(configured: string | undefined, hostHostname: string): string {
  if (configured) return configured;
  return `pasta-${hostHostname}`.slice(0, 64);
}

/**
 * Resolves --runas to IDs, looking names up (lookUser, lookGroup: the user database, while files are still
 * reachable). A user named by a name that is root is refused, as by pasta: root is kept by giving 0. Throws an
 * Error with the reason.
 */
export function resolveRunas(r: RunAs, lookUser: (n: string) => Identity | undefined, lookGroup: (n: string) => number | undefined): Identity {
  let id: Identity;
  if (typeof r.user === "number") id = { uid: r.user, gid: r.user };
  else {
    const u = lookUser(r.user);
    if (!u) throw new Error(`--runas: no user named ${r.user}`);
    if (u.uid === 0) throw new Error(`--runas: ${r.user} is root (give 0 to keep running as root)`);
    id = u;
  }
  if (r.group === undefined) return id;
  if (typeof r.group === "number") return { uid: id.uid, gid: r.group };
  const gid = lookGroup(r.group);
  if (gid === undefined) throw new Error(`--runas: no group named ${r.group}`);
  return { uid: id.uid, gid };
}

/** Whether uid is mapped by a user namespace's uid_map text (inside, outside, count per line): its outside range. */
export function uidMapped(uidMap: string, uid: number): boolean {
  return uidMap.split("\n").some((line) => {
    const [, outside, count] = line.trim().split(/\s+/).map(Number);
    return Number.isFinite(outside) && Number.isFinite(count) && uid >= outside && uid < outside + count;
  });
}

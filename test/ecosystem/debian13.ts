/**
 * A Debian 13 (trixie) root for the ecosystem tests: the programs that users run orzo with (util-linux 2.41,
 * Podman 5, RootlessKit 2 and Debian 13's pasta as the reference today; qemu and libvirt later, issue 18), which
 * need Debian 13's libc and so cannot run on this Debian 12 machine directly.
 *
 * Built once with `debootstrap --variant=minbase trixie` from the machine's own Debian mirror (which serves the
 * trixie suite) into a cache directory (ORZO_DEBIAN13_CACHE, else ~/.cache/orzo-debian13): the root is
 * CACHE/root and CACHE/stamp records what it holds (DEBIAN13_PACKAGES). The build goes into a sibling directory
 * named after the building process and is renamed into place at the end, so an interrupted build is never taken
 * for a complete one, and a later run, or one that finds a different stamp, builds again.
 *
 * Entered as ../shared/reference/debian13-root.md describes, not with chroot(2) (the kernel refuses user
 * namespaces to a chrooted process): a holder process in a mount namespace of its own mounts proc, a private
 * /dev, tmpfs /run and /tmp, /sys with the cgroup v1 hierarchies and the caller's bind mounts into the root,
 * pivot_roots into it and waits; commands join its mount and network namespaces with nsenter. The holder runs
 * inside a network namespace the test made (a TestHost), so nothing run in the root reaches the machine's real
 * interfaces. The holder and every command join one cgroup (cgroups.ts), so close() ends what daemonized too.
 *
 * Run directly (`bun test/ecosystem/debian13.ts`), it builds the root if needed and prints its path.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { run, type RunResult } from "../helpers/netns.ts";
import { waitForLine } from "../helpers/process.ts";
import { alive, cgroupSpec, ProcessCgroup } from "./cgroups.ts";

/**
 * The packages installed besides minbase; one list, so that the tests of issue 18 can add theirs (qemu-system-x86
 * and libvirt next): changing it rebuilds. Only what debootstrap resolves from Depends comes along (no Recommends):
 * about 150 packages, 360 MB, built in under a minute here.
 */
export const DEBIAN13_PACKAGES = [
  "util-linux", "mount", "iproute2", "procps", "busybox-static", "socat",
  // Podman 5 and RootlessKit 2 with their helpers, and Debian 13's pasta as the reference (podman.test.ts).
  "podman", "crun", "conmon", "uidmap", "rootlesskit", "passt", "fuse-overlayfs", "slirp4netns", "netavark", "aardvark-dns",
  "nftables", "catatonit", "golang-github-containers-common",
] as const;

/** Bump when the build steps change (not the package list, which the stamp records itself). */
const BUILD_VERSION = 2;
const SUITE = "trixie";
/** A cold build takes a few minutes; this bounds a stuck mirror (callers add it to their own time limits). */
export const DEBIAN13_BUILD_TIMEOUT_MS = 20 * 60_000;
/** PATH inside the root: Debian's default, so Debian 13's programs come first. */
export const DEBIAN13_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The cache directory: the root is its `root`, and its `stamp` says what the root holds. */
export function debian13CacheDir(): string {
  return process.env.ORZO_DEBIAN13_CACHE ?? join(homedir(), ".cache", "orzo-debian13");
}

/** What a complete cache's stamp must say. */
function expectedStamp(): string {
  return `${JSON.stringify({ build: BUILD_VERSION, suite: SUITE, packages: [...DEBIAN13_PACKAGES].sort() })}\n`;
}

/** Whether dir holds a complete root of the current package list. */
function isComplete(dir: string): boolean {
  try {
    return readFileSync(join(dir, "stamp"), "utf8") === expectedStamp() && existsSync(join(dir, "root", "usr", "bin", "unshare"));
  } catch {
    return false;
  }
}

/** The machine's Debian mirror: the first non-security URI of its apt sources (deb822 or one-line format). */
export function debianMirror(): string {
  const deb822 = "/etc/apt/sources.list.d/debian.sources";
  if (existsSync(deb822)) {
    for (const stanza of readFileSync(deb822, "utf8").split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      if (uri && /^Types:.*\bdeb\b/m.test(stanza) && !/^Suites:.*-security/m.test(stanza)) return uri;
    }
  }
  const list = "/etc/apt/sources.list";
  if (existsSync(list)) {
    for (const line of readFileSync(list, "utf8").split("\n")) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (m && !m[2].endsWith("-security")) return m[1];
    }
  }
  throw new Error(`no Debian mirror found in ${deb822} or ${list}`);
}

/** Runs a host command to completion, bounded; throws with its output unless it succeeds. */
async function sh(argv: string[], timeoutMs: number, logFile?: string): Promise<string> {
  const proc = Bun.spawn(argv, {
    stdin: "ignore",
    stdout: logFile ? Bun.file(logFile) : "pipe",
    stderr: logFile ? Bun.file(`${logFile}.err`) : "pipe",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } as Record<string, string>,
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  try {
    const out = logFile ? "" : await new Response(proc.stdout as ReadableStream).text();
    const err = logFile ? "" : await new Response(proc.stderr as ReadableStream).text();
    const code = await proc.exited;
    if (code !== 0 || proc.signalCode) {
      const tail = logFile ? [logFile, `${logFile}.err`].map((f) => (existsSync(f) ? readFileSync(f, "utf8") : "")).join("").slice(-3000) : err || out;
      throw new Error(`${argv.slice(0, 4).join(" ")} … failed (${proc.signalCode ?? code}):\n${tail}`);
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/** debootstrap, installed with apt-get when missing (CI installs it beforehand). */
async function debootstrap(log: (line: string) => void): Promise<string> {
  const found = Bun.which("debootstrap", { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
  if (found) return found;
  log("debian13: installing debootstrap");
  await sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], 5 * 60_000).catch(async () => {
    await sh(["apt-get", "update", "-qq"], 5 * 60_000);
    await sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], 5 * 60_000);
  });
  const installed = Bun.which("debootstrap", { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" });
  if (!installed) throw new Error("apt-get installed debootstrap, yet it is not in /usr/sbin");
  return installed;
}

/**
 * The Debian 13 root, built first if the cache does not hold a complete one of DEBIAN13_PACKAGES (a cold build
 * takes minutes: its time goes to log). Returns the root directory.
 */
export async function debian13Root(log: (line: string) => void = () => {}): Promise<string> {
  const cache = debian13CacheDir();
  if (isComplete(cache)) return join(cache, "root");
  const parent = dirname(cache);
  mkdirSync(parent, { recursive: true });
  // Builds that an earlier run left behind when it was interrupted: their process is gone.
  const prefix = `${basename(cache)}.build-`;
  for (const name of readdirSync(parent)) {
    if (name.startsWith(prefix) && !alive(Number(name.slice(prefix.length)))) rmSync(join(parent, name), { recursive: true, force: true });
  }
  const work = join(parent, `${prefix}${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    const tool = await debootstrap(log);
    const mirror = debianMirror();
    const started = performance.now();
    log(`debian13: building a ${SUITE} root from ${mirror} into ${cache} (once; a few minutes)`);
    const root = join(work, "root");
    // --pdeathsig: if this process dies, debootstrap does too, instead of writing on into an abandoned build.
    await sh([hostTool("setpriv"), "--pdeathsig", "KILL", "--", tool, "--variant=minbase", `--include=${DEBIAN13_PACKAGES.join(",")}`, SUITE, root, mirror], DEBIAN13_BUILD_TIMEOUT_MS, join(work, "debootstrap.log"));
    // Name lookups inside stay on this machine (pasta's DNS forwarding goes to the host's resolver); tests that
    // enter the root with a test namespace see that namespace's resolv.conf instead.
    writeFileSync(join(root, "etc", "resolv.conf"), "nameserver 127.0.0.1\n");
    // minbase has no /etc/hosts, which RootlessKit's child copies (and Podman reads for its own).
    writeFileSync(join(root, "etc", "hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    mkdirSync(join(root, ".oldroot"), { recursive: true });
    rmSync(join(root, "var", "cache", "apt", "archives"), { recursive: true, force: true });
    mkdirSync(join(root, "var", "cache", "apt", "archives", "partial"), { recursive: true });
    for (const f of ["debootstrap.log", "debootstrap.log.err"]) rmSync(join(work, f), { force: true });
    writeFileSync(join(work, "stamp"), expectedStamp());
    install(work, cache);
    log(`debian13: built in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!isComplete(cache)) throw new Error(`${cache} is not a complete Debian 13 root after the build`);
  return join(cache, "root");
}

/** Renames a finished build into place; an outdated cache is moved aside first and removed. */
function install(work: string, cache: string): void {
  if (existsSync(cache)) {
    if (isComplete(cache)) return; // another run finished first: keep its root
    const old = `${cache}.old-${process.pid}`;
    renameSync(cache, old);
    rmSync(old, { recursive: true, force: true });
  }
  renameSync(work, cache);
}

/**
 * The holder: made by `unshare --mount --propagation private`, it mounts the root onto itself, proc, /sys, the
 * cgroup hierarchies ($DEBIAN13_CGROUPS, from cgroupSpec()), a private /dev, tmpfs /run and /tmp and the bind
 * mounts (pairs of source and target after the root), then pivot_roots into it, makes its mounts shared (rootless
 * Podman warns otherwise), says "ready PID" and waits until its stdin ends (the test closes it, or dies). Mount
 * points for binds outside /tmp are made in the cached root itself: empty directories, harmless to later runs.
 */
const HOLDER_SCRIPT = `set -e
root=$1; shift
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
if [ "$DEBIAN13_CGROUPS" = cgroup2 ]; then
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
elif [ -n "$DEBIAN13_CGROUPS" ]; then
  mount -t tmpfs -o mode=0755,nosuid,nodev,noexec cgroup "$root/sys/fs/cgroup"
  for c in $DEBIAN13_CGROUPS; do
    mkdir "$root/sys/fs/cgroup/\${c%%=*}"
    mount -t cgroup -o "\${c#*=}" cgroup "$root/sys/fs/cgroup/\${c%%=*}"
  done
fi
mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
node() { mknod -m 0666 "$root/dev/$1" c "$2" "$3"; }
node null 1 3; node zero 1 5; node full 1 7; node random 1 8; node urandom 1 9; node tty 5 0
mkdir "$root/dev/net" "$root/dev/pts" "$root/dev/shm"
mknod -m 0666 "$root/dev/net/tun" c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$root/tmp"
while [ $# -ge 2 ]; do
  if [ -d "$1" ]; then mkdir -p "$root$2"; else mkdir -p "$(dirname "$root$2")"; [ -e "$root$2" ] || : > "$root$2"; fi
  mount --rbind "$1" "$root$2"
  shift 2
done
cd "$root"
pivot_root . .oldroot
cd /
export PATH=${DEBIAN13_PATH}
umount -l /.oldroot
mount --make-rshared /
echo "ready $$"
read -r _ || true
`;

/** A bind mount into the root: a host path at the same path inside, or at another one. */
export type Bind = string | { source: string; target: string };

/** Options of a command run inside the root. */
export interface RootRunOptions {
  /** Added to the root's own environment (PATH, HOME, LC_ALL=C); nothing of the caller's passes. */
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** A running Debian 13 root: commands run in its mount namespace and in the test's network namespace. */
export interface Debian13 {
  /** The holder's PID (its mount and network namespaces are the commands'). */
  readonly holder: number;
  /** The argv that runs a command inside the root (for callers that spawn it themselves). */
  argv(command: readonly string[], env?: Record<string, string>): string[];
  /** Runs a command inside the root to completion, bounded; never throws for a non-zero status. */
  run(command: readonly string[], opts?: RootRunOptions): Promise<RunResult>;
  /** Starts a long-running command inside the root; close() kills it. */
  spawn(command: readonly string[], opts?: RootRunOptions): ReturnType<typeof Bun.spawn>;
  /** The PIDs of every process started in the root that is still running (daemons and the holder included). */
  processes(): number[];
  /**
   * Kills every process started in the root, what daemonized or outlived its command included (they all stay in
   * one cgroup), and the holder: the mount namespace goes with the last process in it.
   */
  close(): Promise<void>;
}

/** A host tool by absolute path (commands go through it before they are inside the root). */
function hostTool(name: string): string {
  const found = Bun.which(name, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin:/sbin:/bin` });
  if (!found) throw new Error(`${name} is needed on the host to enter the Debian 13 root`);
  return found;
}

/**
 * Enters the Debian 13 root (built first if needed) with a holder inside the network namespace netns (`ip netns`
 * name: a TestHost's), whose resolv.conf (/etc/netns/NAME/resolv.conf) the root sees when there is one. binds:
 * host paths to see inside (the orzo binary's directory, the test's scratch directory).
 */
export async function enterDebian13(opts: { netns: string; binds?: Bind[]; log?: (line: string) => void }): Promise<Debian13> {
  const root = await debian13Root(opts.log);
  const binds: [string, string][] = (opts.binds ?? []).map((b) => (typeof b === "string" ? [b, b] : [b.source, b.target]));
  const resolv = `/etc/netns/${opts.netns}/resolv.conf`;
  if (existsSync(resolv)) binds.push([resolv, "/etc/resolv.conf"]);
  for (const [source] of binds) if (!existsSync(source)) throw new Error(`bind source ${source} does not exist`);
  const nsenter = hostTool("nsenter");
  const cgroup = await ProcessCgroup.create();
  const holderProc = Bun.spawn(
    cgroup.wrap([hostTool("ip"), "netns", "exec", opts.netns, hostTool("unshare"), "--mount", "--propagation", "private", "--", "/bin/sh", "-c", HOLDER_SCRIPT, "debian13-holder", root, ...binds.flat()]),
    { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, DEBIAN13_CGROUPS: cgroupSpec() } },
  );
  const spawned: ReturnType<typeof Bun.spawn>[] = [];
  const stop = async () => {
    for (const p of spawned) p.kill("SIGKILL");
    holderProc.kill("SIGKILL");
    await cgroup.killAll();
    await Promise.all([...spawned, holderProc].map((p) => Promise.race([p.exited, Bun.sleep(5000)])));
  };
  let holder: number;
  try {
    const text = await waitForLine(holderProc.stdout as ReadableStream<Uint8Array>, /^ready \d+$/, 15_000).found;
    holder = Number(/^ready (\d+)$/m.exec(text)![1]);
  } catch (e) {
    await stop();
    // The holder is gone, so its stderr ends.
    const stderr = await Promise.race([new Response(holderProc.stderr as ReadableStream).text(), Bun.sleep(2000).then(() => "")]);
    throw new Error(`the Debian 13 holder did not start: ${(e as Error).message}\n${stderr}`);
  }
  const rootEnv = (env: Record<string, string> = {}) => ({ PATH: DEBIAN13_PATH, HOME: "/root", LC_ALL: "C", ...env });
  const argv = (command: readonly string[], env?: Record<string, string>) => cgroup.wrap([
    nsenter, "-t", String(holder), "-m", "-n", "--", "/usr/bin/env", "-i", ...Object.entries(rootEnv(env)).map(([k, v]) => `${k}=${v}`), ...command,
  ]);
  return {
    holder,
    argv,
    run: (command, o = {}) => run(argv(command, o.env), { timeoutMs: o.timeoutMs }),
    spawn(command, o = {}) {
      const p = Bun.spawn(argv(command, o.env), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      spawned.push(p);
      return p;
    },
    processes: () => cgroup.members(),
    close: stop,
  };
}

if (import.meta.main) {
  const started = performance.now();
  const root = await debian13Root((line) => console.error(line));
  console.log(`${root} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

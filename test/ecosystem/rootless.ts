/**
 * A rootless user in the Debian 13 root (debian13.ts) for the tests that run Podman 5 and RootlessKit 2 with a
 * pasta binary (issue 18): once with orzo, once with Debian 13's own pasta as the reference, in one run.
 *
 * The user (ECO_USER) and its /etc/subuid and /etc/subgid ranges exist only in this run: the files are written
 * into the test's scratch directory and bound over the root's, so the cached root stays as debootstrap made it.
 * Its home (Podman's storage) is in the scratch directory too, its XDG_RUNTIME_DIR in the root's private /run.
 * Each target has a containers.conf whose helper_binaries_dir starts with a directory holding only `pasta`, a link
 * to the target's binary; cgroup_manager cgroupfs and events_logger file (the root runs on cgroup v1 and without
 * systemd), pull_policy never (no registry is reachable): the image is built from the root's busybox-static and
 * socat and imported. Everything runs inside a TestHost's host namespace, so no traffic reaches the machine's
 * interfaces; close() ends every process the run started, rootless Podman's pause process and daemons included.
 */
import { chownSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { orzoBinary } from "../helpers/binary.ts";
import { type RunResult, TestHost } from "../helpers/netns.ts";
import { commandTmpDir } from "../helpers/process.ts";
import { DEBIAN13_PATH, debian13Root, enterDebian13, type Debian13 } from "./debian13.ts";

/** The rootless user: name and IDs inside the root, and the subordinate ranges Podman maps. */
export const ECO_USER = { name: "eco", uid: 2000, gid: 2000, subStart: 100_000, subCount: 65_536 } as const;
/** The local image: busybox-static (every applet) and socat with its libraries, nothing else. */
export const ECO_IMAGE = "localhost/orzo-eco:latest";
/** Bounds a Podman or RootlessKit command (the first one sets up the user's storage). */
export const USER_COMMAND_TIMEOUT_MS = 60_000;

/** A pasta binary under test: orzo, or Debian 13's pasta as the reference. */
export interface PastaTarget {
  /** Short name, in file names. */
  readonly id: "orzo" | "pasta";
  /** What test names call it. */
  readonly title: string;
  /** The binary inside the root that `pasta` links to. */
  readonly binary: string;
}

/** orzo (dist/orzo, bound into the root at its own path) and the reference, in the order the checks run. */
export function pastaTargets(): PastaTarget[] {
  return [
    { id: "orzo", title: "orzo", binary: orzoBinary() },
    { id: "pasta", title: "Debian 13's pasta (reference)", binary: "/usr/bin/pasta" },
  ];
}

/** Lines of a root file plus extra lines (passwd, group). */
function withLines(rootDir: string, file: string, extra: string): string {
  const text = readFileSync(join(rootDir, file), "utf8");
  return `${text}${text.endsWith("\n") || text === "" ? "" : "\n"}${extra}\n`;
}

/** The Debian 13 root entered with the rootless user in place, and ways to run commands as that user. */
export class RootlessRoot {
  private constructor(
    readonly host: TestHost,
    readonly root: Debian13,
    /** Scratch directory, at the same path inside the root. */
    readonly tmp: string,
    private readonly targets: PastaTarget[],
  ) {}

  /** The user's home (Podman's storage is under it). */
  get home(): string {
    return join(this.tmp, "home");
  }

  /** The user's XDG_RUNTIME_DIR inside the root. */
  get runtimeDir(): string {
    return `/run/user/${ECO_USER.uid}`;
  }

  /** The directory that holds the target's `pasta` and nothing else. */
  helperDir(target: PastaTarget): string {
    return join(this.tmp, `helpers-${target.id}`);
  }

  /** The target's containers.conf (CONTAINERS_CONF). */
  containersConf(target: PastaTarget): string {
    return join(this.tmp, "conf", `${target.id}.conf`);
  }

  /**
   * Makes a test host, the scratch directory with the user's files, enters the root and prepares the user's
   * runtime directory; with image, builds and imports ECO_IMAGE. Cleans up if any step fails.
   */
  static async create(tag: string, opts: { image: boolean; log?: (line: string) => void }): Promise<RootlessRoot> {
    const targets = pastaTargets();
    const rootDir = await debian13Root(opts.log);
    const host = await TestHost.create(tag);
    const tmp = commandTmpDir(`orzo-${tag}-`);
    let root: Debian13 | undefined;
    try {
      const u = ECO_USER;
      const etc = join(tmp, "etc");
      mkdirSync(etc);
      writeFileSync(join(etc, "passwd"), withLines(rootDir, "etc/passwd", `${u.name}:x:${u.uid}:${u.gid}::${join(tmp, "home")}:/bin/sh`));
      writeFileSync(join(etc, "group"), withLines(rootDir, "etc/group", `${u.name}:x:${u.gid}:`));
      for (const f of ["subuid", "subgid"]) writeFileSync(join(etc, f), `${u.name}:${u.subStart}:${u.subCount}\n`);
      mkdirSync(join(tmp, "home"), { mode: 0o700 });
      chownSync(join(tmp, "home"), u.uid, u.gid);
      mkdirSync(join(tmp, "conf"));
      for (const t of targets) {
        mkdirSync(join(tmp, `helpers-${t.id}`));
        symlinkSync(t.binary, join(tmp, `helpers-${t.id}`, "pasta"));
        writeFileSync(join(tmp, "conf", `${t.id}.conf`), containersConf(join(tmp, `helpers-${t.id}`)));
      }
      const binds = [dirname(orzoBinary()), tmp, ...["passwd", "group", "subuid", "subgid"].map((f) => ({ source: join(etc, f), target: `/etc/${f}` }))];
      root = await enterDebian13({ netns: host.name, binds, log: opts.log });
      const r = new RootlessRoot(host, root, tmp, targets);
      await r.mustRun(["install", "-d", "-o", String(u.uid), "-g", String(u.gid), "-m", "0700", r.runtimeDir]);
      if (opts.image) await r.buildImage(targets[0]);
      return r;
    } catch (e) {
      await root?.close();
      await host.destroy();
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Runs a command as root inside the root; throws with its output unless it succeeds. */
  async mustRun(command: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.root.run(command, { timeoutMs });
    if (r.code !== 0) throw new Error(`${command.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** The user's environment for a target; extra entries (PATH among them) override. */
  userEnv(target: PastaTarget, extra: Record<string, string> = {}): Record<string, string> {
    return {
      HOME: this.home, USER: ECO_USER.name, LOGNAME: ECO_USER.name, XDG_RUNTIME_DIR: this.runtimeDir,
      CONTAINERS_CONF: this.containersConf(target), PODMAN_IGNORE_CGROUPSV1_WARNING: "1", PATH: DEBIAN13_PATH, ...extra,
    };
  }

  /** Runs a command as the user to completion, bounded; never throws for a non-zero status. */
  runAsUser(target: PastaTarget, command: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
    return this.root.run(asUser(command), { env: this.userEnv(target, opts.env), timeoutMs: opts.timeoutMs ?? USER_COMMAND_TIMEOUT_MS });
  }

  /** Starts a long-running command as the user; close() ends it, and whatever it started, if it is still running. */
  spawnAsUser(target: PastaTarget, command: readonly string[], env: Record<string, string> = {}): ReturnType<typeof Bun.spawn> {
    return this.root.spawn(asUser(command), { env: this.userEnv(target, env) });
  }

  /** Runs podman as the user with the target's containers.conf. */
  podman(target: PastaTarget, args: readonly string[], timeoutMs = USER_COMMAND_TIMEOUT_MS): Promise<RunResult> {
    return this.runAsUser(target, ["podman", ...args], { timeoutMs });
  }

  /** Like podman(), but throws with the output unless it succeeds; returns stdout. */
  async mustPodman(target: PastaTarget, args: readonly string[], timeoutMs = USER_COMMAND_TIMEOUT_MS): Promise<string> {
    const r = await this.podman(target, args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Builds the image's tree from the root's busybox-static and socat (with the libraries ldd names) and imports it. */
  private async buildImage(target: PastaTarget): Promise<void> {
    const dir = join(this.tmp, "image");
    await this.mustRun(["sh", "-ec", [
      `d=${dir}`,
      'mkdir -p "$d/bin" "$d/usr/bin" "$d/etc" "$d/tmp" "$d/proc" "$d/sys" "$d/dev" "$d/data"',
      'cp /bin/busybox "$d/bin/"',
      'for a in $(/bin/busybox --list); do [ -e "$d/bin/$a" ] || ln -s busybox "$d/bin/$a"; done',
      'cp /usr/bin/socat "$d/usr/bin/"',
      'for l in $(ldd /usr/bin/socat | grep -o "/lib[^ ]*"); do mkdir -p "$d$(dirname "$l")"; cp -L "$l" "$d$l"; done',
      `tar -C "$d" -cf ${join(this.tmp, "image.tar")} .`,
      `chmod 0644 ${join(this.tmp, "image.tar")}`,
    ].join("\n")]);
    rmSync(dir, { recursive: true, force: true });
    await this.mustPodman(target, ["import", "-q", join(this.tmp, "image.tar"), ECO_IMAGE]);
  }

  /** Removes every container (bounded), then ends every process of the run, the namespaces and the scratch files. */
  async close(): Promise<void> {
    try {
      await this.podman(this.targets[0], ["rm", "-a", "-f", "-t", "0"], 30_000);
    } finally {
      await this.root.close();
      await this.host.destroy();
      rmSync(this.tmp, { recursive: true, force: true });
    }
  }
}

/** A command run as ECO_USER (its groups from the root's /etc/group). */
function asUser(command: readonly string[]): string[] {
  return ["setpriv", "--reuid", String(ECO_USER.uid), "--regid", String(ECO_USER.gid), "--init-groups", "--", ...command];
}

/** A containers.conf that finds `pasta` in helperDir first (Podman's own helper directories after it). */
function containersConf(helperDir: string): string {
  const dirs = [helperDir, "/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"];
  return [
    "[containers]",
    "",
    "[engine]",
    `helper_binaries_dir = [${dirs.map((d) => JSON.stringify(d)).join(", ")}]`,
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    'pull_policy = "never"',
    "",
  ].join("\n");
}

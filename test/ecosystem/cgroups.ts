/**
 * cgroups for the Debian 13 root (debian13.ts): which hierarchies its holder mounts for crun, and a cgroup that
 * every process started in the root joins, so that closing the root ends all of them. Podman, conmon, pasta and
 * RootlessKit daemonize, and rootless Podman keeps a pause process: none of them stays a child of the test, but
 * none can leave a cgroup that root made (a rootless process may not move itself out of it).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../helpers/netns.ts";

/** The cgroup mounts of this process's mount namespace: mount point, type, super options. */
function cgroupMounts(): { path: string; type: string; options: string[] }[] {
  const mounts: { path: string; type: string; options: string[] }[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER_OPTIONS
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const [type, , superOptions = ""] = right.split(" ");
    if (type === "cgroup" || type === "cgroup2") mounts.push({ path: left.split(" ")[4], type, options: superOptions.split(",") });
  }
  return mounts;
}

/**
 * What the holder mounts on the root's /sys/fs/cgroup (`ip netns exec` gave it a fresh /sys without them, and crun
 * refuses to start without): "NAME=OPTIONS …" for each cgroup v1 hierarchy of a hybrid or v1 host, leaving out its
 * cgroup2 part (crun refuses hybrid mode when cgroup2 has controllers; Podman then runs on v1), or "cgroup2" on a
 * host that has cgroup2 alone.
 */
export function cgroupSpec(): string {
  const mounts = cgroupMounts();
  const v1 = mounts.filter((m) => m.type === "cgroup");
  if (v1.length === 0) return mounts.length > 0 ? "cgroup2" : "";
  return v1.map((m) => {
    const options = m.options.filter((o) => o !== "rw" && o !== "ro");
    // A named hierarchy without controllers (name=systemd) is mounted with "none".
    if (options.every((o) => o.startsWith("name="))) options.unshift("none");
    return `${m.path.split("/").pop()}=${options.join(",")}`;
  }).join(" ");
}

/** Whether a process is alive (a signal 0 reaches it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const PREFIX = "orzo-debian13-";
let made = 0;

/** A cgroup that the processes of one root join: wrap() puts a command in it, killAll() ends every member. */
export class ProcessCgroup {
  private constructor(readonly dir: string) {}

  /** Makes the cgroup (in cgroup2 where it is mounted, else in the first v1 hierarchy); sweeps ones whose test died. */
  static async create(): Promise<ProcessCgroup> {
    const mounts = cgroupMounts();
    const base = (mounts.find((m) => m.type === "cgroup2") ?? mounts.find((m) => m.type === "cgroup"))?.path;
    if (!base) throw new Error("no cgroup hierarchy is mounted: the Debian 13 root needs one to end what runs in it");
    for (const name of readdirSync(base)) {
      const m = new RegExp(`^${PREFIX}(\\d+)-\\d+$`).exec(name);
      if (m && !alive(Number(m[1]))) await killMembers(join(base, name));
    }
    const dir = join(base, `${PREFIX}${process.pid}-${++made}`);
    mkdirSync(dir);
    return new ProcessCgroup(dir);
  }

  /** argv that joins the cgroup and then execs argv (same PID: a shell writes its own PID, then execs). */
  wrap(argv: readonly string[]): string[] {
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', join(this.dir, "cgroup.procs"), ...argv];
  }

  /** The PIDs in the cgroup now. */
  members(): number[] {
    return members(this.dir);
  }

  /** Kills every member, daemons included, waits (bounded) until none is left and removes the cgroup. */
  async killAll(timeoutMs = 10_000): Promise<void> {
    if (!(await killMembers(this.dir, timeoutMs))) throw new Error(`processes of ${this.dir} outlived SIGKILL: ${this.members().join(" ")}`);
  }
}

function members(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs a cgroup's members until it is empty (cgroup.kill where there is one, else each PID), then removes it. */
async function killMembers(dir: string, timeoutMs = 10_000): Promise<boolean> {
  const kill = join(dir, "cgroup.kill");
  const empty = await waitFor(() => {
    if (existsSync(kill)) writeFileSync(kill, "1");
    else {
      for (const pid of members(dir)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    return members(dir).length === 0;
  }, timeoutMs, 20);
  if (empty) {
    try {
      rmdirSync(dir);
    } catch {
      // a member's exit is still being accounted: the directory is swept by a later run
    }
  }
  return empty;
}

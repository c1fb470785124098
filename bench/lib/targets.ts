/**
 * What the benchmark measures against: the kernel alone (the veth pair of the test host, or loopback for the
 * splice paths) and the two tools under test, pasta and orzo, each attached with the same arguments to a fresh
 * namespace that the benchmark creates (`--netns NAME`) from inside the hermetic host namespace.
 *
 *   host namespace (TestHost): eth0 198.51.100.1/24 — veth — router namespace: eth0 198.51.100.254/24
 *   guest namespace (per instance): the tool's tap, configured by --config-net with the host's address
 *
 * Tap paths: the namespace dials the gateway 198.51.100.254 (mapped to the host's loopback by both tools), the
 * host dials its own address 198.51.100.1 on a -t port; neither peer is loopback, so nothing is spliced.
 * Splice paths: 127.0.0.1 on -t ports from the host, on -T ports from the namespace.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { run, TOPOLOGY } from "../../test/helpers/netns.ts";
import { Group, inNs, tail, waitUntil } from "./proc.ts";

/** The three things compared. */
export type TargetKind = "veth" | "pasta" | "orzo";

/** Which data path a scenario uses. */
export type PathKind = "tap" | "splice";

/** Ports of the servers: the namespace's are forwarded in with -t, the host's out with -T (splice). */
export const PORTS = {
  nsIperf: 5201,
  nsRr: 5211,
  nsCrr: 5221,
  nsHold: 5241,
  hostIperf: 5202,
  hostRr: 5212,
  hostCrr: 5222,
} as const;

const FORWARD_IN = [PORTS.nsIperf, PORTS.nsRr, PORTS.nsCrr, PORTS.nsHold];
const FORWARD_OUT = [PORTS.hostIperf, PORTS.hostRr, PORTS.hostCrr];

/** The two ends of one measurement and the addresses each dials to reach the other. */
export interface Sides {
  kind: TargetKind;
  path: PathKind;
  /** Namespace where the "namespace" end runs. */
  ns: string;
  /** Namespace where the "host" end runs. */
  host: string;
  /** What the namespace end dials to reach a server on the host end. */
  nsToHost: string;
  /** What the host end dials to reach a server on the namespace end. */
  hostToNs: string;
  /** The tool's process, for pasta and orzo. */
  instance?: Instance;
}

let nsCounter = 0;

/** Guest namespaces not yet removed, so that an interrupted run can remove them. */
export const liveGuests = new Set<string>();

/** Names the benchmark gives its namespaces: orzo-bench-{h,r,g}PID-N. */
export const NS_PATTERN = /^orzo-bench-[hrg](\d+)-/;

/** Sets per-namespace sysctls that keep connection-rate runs from running out of ports. */
export async function tuneNs(ns: string): Promise<void> {
  await run([...inNs(ns), "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=10000 65000"]);
}

/** A running pasta or orzo attached to a fresh namespace. */
export class Instance {
  /** PID from the pid file. */
  pid = 0;
  /** Milliseconds from spawn to a non-empty pid file. */
  startupMs = 0;

  private constructor(
    readonly kind: "pasta" | "orzo",
    readonly guest: string,
    readonly group: Group,
    readonly pidFile: string,
  ) {}

  /** The argument list both tools get (orzo after its "pasta" subcommand). */
  static args(pidFile: string, guest: string, mtu?: number): string[] {
    return [
      "--config-net", "-f",
      // Debian's pasta drops to "nobody" when run as root and then cannot enter a root-owned namespace.
      "--runas", "0",
      "-P", pidFile,
      "--netns", guest,
      "-t", FORWARD_IN.join(","),
      "-T", FORWARD_OUT.join(","),
      "-u", "none",
      "-U", "none",
      ...(mtu ? ["-m", String(mtu)] : []),
    ];
  }

  /** Starts the tool in the host namespace and waits (bounded) for its pid file and the namespace's addressing. */
  static async start(kind: "pasta" | "orzo", binary: string, hostNs: string, dir: string, opts: { mtu?: number; timeoutMs: number }): Promise<Instance> {
    const guest = `orzo-bench-g${process.pid}-${++nsCounter}`;
    const pidFile = join(dir, `${guest}.pid`);
    rmSync(pidFile, { force: true });
    const add = await run(["ip", "netns", "add", guest]);
    if (add.code !== 0) throw new Error(`ip netns add: ${tail(add.stderr)}`);
    liveGuests.add(guest);
    await tuneNs(guest);
    const argv = [...inNs(hostNs), binary, ...(kind === "orzo" ? ["pasta"] : []), ...Instance.args(pidFile, guest, opts.mtu)];
    const t0 = performance.now();
    const inst = new Instance(kind, guest, new Group(argv), pidFile);
    try {
      const readPid = () => {
        try {
          return Number(readFileSync(pidFile, "utf8").trim()) || 0;
        } catch {
          return 0;
        }
      };
      await waitUntil(() => readPid() > 0 || inst.group.code !== null, opts.timeoutMs, 1);
      inst.startupMs = performance.now() - t0;
      inst.pid = readPid();
      if (inst.pid === 0) {
        if (inst.group.code !== null) throw new Error(`${kind} exited (${inst.group.code}): ${tail(inst.group.stderr || inst.group.stdout)}`);
        throw new Error(`no pid file within ${opts.timeoutMs} ms`);
      }
      const configured = await waitUntil(async () => {
        const r = await run(["ip", "-n", guest, "-4", "route", "show", "default"], { timeoutMs: 2000 });
        return r.stdout.includes(TOPOLOGY.router4) || inst.group.code !== null;
      }, opts.timeoutMs, 5);
      if (inst.group.code !== null) throw new Error(`${kind} exited (${inst.group.code}): ${tail(inst.group.stderr || inst.group.stdout)}`);
      if (!configured) throw new Error("namespace has no IPv4 default route (--config-net)");
    } catch (e) {
      await inst.stop();
      throw e;
    }
    return inst;
  }

  /** Throws with the tool's last words if it is no longer running. */
  checkAlive(): void {
    if (this.group.code !== null) throw new Error(`${this.kind} exited (${this.group.code}): ${tail(this.group.stderr || this.group.stdout)}`);
  }

  /** Stops the tool (its process group, and the pid-file process should it have left the group) and removes the namespace. */
  async stop(): Promise<void> {
    await this.group.kill();
    if (this.pid > 0 && existsSync(`/proc/${this.pid}`)) {
      try {
        process.kill(this.pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
      await waitUntil(() => !existsSync(`/proc/${this.pid}`), 3000);
    }
    await run(["ip", "netns", "del", this.guest]);
    liveGuests.delete(this.guest);
    rmSync(this.pidFile, { force: true });
  }
}

/** The sides for the kernel-only ceiling: router ↔ host over the veth, or loopback within the host namespace. */
export function ceilingSides(hostNs: string, routerNs: string, path: PathKind): Sides {
  if (path === "splice") return { kind: "veth", path, ns: hostNs, host: hostNs, nsToHost: "127.0.0.1", hostToNs: "127.0.0.1" };
  return { kind: "veth", path, ns: routerNs, host: hostNs, nsToHost: TOPOLOGY.host4, hostToNs: TOPOLOGY.router4 };
}

/** The sides through a tool instance. */
export function toolSides(hostNs: string, inst: Instance, path: PathKind): Sides {
  if (path === "splice") return { kind: inst.kind, path, ns: inst.guest, host: hostNs, nsToHost: "127.0.0.1", hostToNs: "127.0.0.1", instance: inst };
  return { kind: inst.kind, path, ns: inst.guest, host: hostNs, nsToHost: TOPOLOGY.router4, hostToNs: TOPOLOGY.host4, instance: inst };
}

/** Sets the MTU of both ends of the test host's veth (the ceiling runs at the scenario's MTU). */
export async function setVethMtu(hostNs: string, routerNs: string, mtu: number): Promise<void> {
  for (const ns of [hostNs, routerNs]) {
    const r = await run(["ip", "-n", ns, "link", "set", "eth0", "mtu", String(mtu)]);
    if (r.code !== 0) throw new Error(`veth mtu ${mtu}: ${tail(r.stderr)}`);
  }
}

/** Removes namespaces left by earlier benchmark runs whose process is gone. */
export async function removeStaleNamespaces(): Promise<string[]> {
  const r = await run(["ip", "netns", "list"]);
  const removed: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const name = line.split(" ")[0];
    const m = NS_PATTERN.exec(name ?? "");
    if (!m || existsSync(`/proc/${m[1]}`)) continue;
    await run(["ip", "netns", "del", name]);
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

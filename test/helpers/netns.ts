/**
 * Hermetic test hosts: network namespaces that play the host orzo runs on, and its upstream router.
 *
 *   host namespace: lo up; eth0 198.51.100.1/24 and 2001:db8:1::1/64, default routes via the router;
 *                   its own /etc/resolv.conf (through /etc/netns/NAME/) naming the router as nameserver
 *   router namespace: eth0 198.51.100.254/24 and 2001:db8:1::fe/64, the remote peer for tests
 *
 * orzo runs inside the host namespace (`ip netns exec`), so it reads that namespace's addressing and never sees
 * the machine's own interfaces. destroy() removes everything, and tests call it in afterAll/finally.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";

/** Addresses of the test topology. */
export const TOPOLOGY = {
  host4: "198.51.100.1",
  router4: "198.51.100.254",
  prefix4: 24,
  host6: "2001:db8:1::1",
  router6: "2001:db8:1::fe",
  prefix6: 64,
  search: "orzo.test",
} as const;

/** The result of a command run to completion. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with a timeout; never throws for a non-zero status. */
export async function run(argv: string[], opts: { timeoutMs?: number; env?: Record<string, string>; stdin?: string } = {}): Promise<RunResult> {
  const proc = Bun.spawn(argv, {
    stdout: "pipe",
    stderr: "pipe",
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    env: opts.env ?? (process.env as Record<string, string>),
  });
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code: proc.signalCode ? -1 : code, stdout, stderr };
}

/** Runs a command and throws with its output unless it succeeds. */
export async function must(argv: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

let counter = 0;

/** A host namespace and a router namespace joined by a veth pair. */
export class TestHost {
  /** Name of the namespace that plays the host. */
  readonly name: string;
  /** Name of the router namespace. */
  readonly router: string;
  private readonly spawned: ReturnType<typeof Bun.spawn>[] = [];

  private constructor(tag: string) {
    const id = `${process.pid}-${++counter}`;
    this.name = `orzo-${tag}-h${id}`;
    this.router = `orzo-${tag}-r${id}`;
  }

  /** Creates the namespaces and their addressing. */
  static async create(tag = "t", opts: { ipv6?: boolean; pingSockets?: boolean } = {}): Promise<TestHost> {
    const h = new TestHost(tag);
    try {
      await h.setUp(opts.ipv6 !== false, opts.pingSockets !== false);
    } catch (e) {
      await h.destroy();
      throw e;
    }
    return h;
  }

  private async setUp(ipv6: boolean, pingSockets: boolean): Promise<void> {
    const T = TOPOLOGY;
    await must(["ip", "netns", "add", this.name]);
    await must(["ip", "netns", "add", this.router]);
    mkdirSync(`/etc/netns/${this.name}`, { recursive: true });
    writeFileSync(`/etc/netns/${this.name}/resolv.conf`, `nameserver ${T.router4}\nnameserver ${T.router6}\nsearch ${T.search}\n`);
    const inHost = ["ip", "-n", this.name];
    const inRouter = ["ip", "-n", this.router];
    await must([...inHost, "link", "set", "lo", "up"]);
    await must([...inRouter, "link", "set", "lo", "up"]);
    await must([...inHost, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", this.router]);
    for (const [ns, ip4, ip6] of [[inHost, T.host4, T.host6], [inRouter, T.router4, T.router6]] as const) {
      await must([...ns, "addr", "add", `${ip4}/${T.prefix4}`, "dev", "eth0"]);
      if (ipv6) await must([...ns, "addr", "add", `${ip6}/${T.prefix6}`, "dev", "eth0", "nodad"]);
      await must([...ns, "link", "set", "eth0", "up"]);
    }
    await must([...inHost, "route", "add", "default", "via", T.router4]);
    if (ipv6) await must([...inHost, "-6", "route", "add", "default", "via", T.router6]);
    // Unprivileged ping sockets, as distributions configure them (the kernel's default allows no group).
    if (pingSockets) await must([...this.prefix(), "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);
  }

  /** The argv prefix that runs a command inside the host namespace. */
  prefix(): string[] {
    return ["ip", "netns", "exec", this.name];
  }

  /** Runs a command in the host namespace to completion. */
  run(argv: string[], opts: { timeoutMs?: number; env?: Record<string, string>; stdin?: string } = {}): Promise<RunResult> {
    return run([...this.prefix(), ...argv], opts);
  }

  /** Runs a command in the router namespace to completion. */
  runRouter(argv: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return run(["ip", "netns", "exec", this.router, ...argv], opts);
  }

  /** Starts a long-running command in the host namespace; destroy() kills it. */
  spawn(argv: string[], opts: { env?: Record<string, string> } = {}): ReturnType<typeof Bun.spawn> {
    const p = Bun.spawn([...this.prefix(), ...argv], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: opts.env ?? (process.env as Record<string, string>) });
    this.spawned.push(p);
    return p;
  }

  /** Kills what was spawned and removes the namespaces. */
  async destroy(): Promise<void> {
    for (const p of this.spawned) p.kill("SIGKILL");
    await Promise.all(this.spawned.map((p) => Promise.race([p.exited, Bun.sleep(2000)])));
    await run(["ip", "netns", "del", this.name]);
    await run(["ip", "netns", "del", this.router]);
    rmSync(`/etc/netns/${this.name}`, { recursive: true, force: true });
  }
}

/** Polls until a predicate holds or the timeout passes; returns whether it held. Waits on a condition, not a time. */
export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (performance.now() > deadline) return false;
    await Bun.sleep(stepMs);
  }
}

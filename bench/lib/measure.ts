/**
 * One measurement each: a server on one side (waited for by its listening port), the client on the other, every
 * step bounded by a timeout; failures throw an Error whose message is the reason shown in the table.
 */
import { join } from "node:path";
import { Group, inNs, rssKb, runGroup, tail, waitListening, waitUntil } from "./proc.ts";
import { PORTS, type Sides } from "./targets.ts";

/** One measured value, with extra numbers kept in the JSON. */
export interface Sample {
  value: number;
  extra?: Record<string, number>;
}

/** What a measurement needs besides its sides. */
export interface Ctx {
  sides: Sides;
  /** Seconds of traffic per measurement. */
  duration: number;
  smoke: boolean;
  /** Whether to use sockperf for latency (else the built-in ping-pong). */
  sockperf: boolean;
}

/** Direction: "out" is namespace → host, "in" is host → namespace. */
export type Dir = "out" | "in";

const TOOL = join(import.meta.dir, "..", "tools", "tcp.ts");
const bunTool = (...args: string[]) => [process.execPath, TOOL, ...args];

/** Connect/listener timeouts: short in smoke mode so that what does not work fails fast. */
const waitMs = (ctx: Ctx) => (ctx.smoke ? 1000 : 5000);

/** How long a client may run for `seconds` of traffic before it is killed. */
const clientMs = (ctx: Ctx, seconds: number) => (seconds + (ctx.smoke ? 2.5 : 20)) * 1000;

/** Unmeasured connections before the connection rate is counted, as iperf3 -O 1 omits the first second. */
const CRR_WARMUP_SECONDS = 2;
/** Seconds of traffic for the TS tools, which take fractions: shorter in smoke mode. */
const toolSeconds = (ctx: Ctx) => (ctx.smoke ? 0.5 : ctx.duration);

/** Where the server runs, where the client runs and what it dials, for a direction. */
function ends(ctx: Ctx, dir: Dir, nsPort: number, hostPort: number) {
  const s = ctx.sides;
  return dir === "out"
    ? { serverNs: s.host, clientNs: s.ns, addr: s.nsToHost, port: hostPort }
    : { serverNs: s.ns, clientNs: s.host, addr: s.hostToNs, port: nsPort };
}

/** Waits for the tool's forwarding listener when the path goes through one (-t on the host, -T in the namespace). */
async function forwarderReady(ctx: Ctx, dir: Dir, port: number): Promise<void> {
  const s = ctx.sides;
  if (!s.instance) return;
  if (dir === "in") await waitListening(s.host, port, `${s.kind} -t forwarder`, { timeoutMs: waitMs(ctx) });
  // Any address: pasta binds 127.0.0.1 and ::1, orzo the wildcard on lo; the namespace's own servers use other ports.
  else if (s.path === "splice") await waitListening(s.ns, port, `${s.kind} -T forwarder`, { timeoutMs: waitMs(ctx) });
}

/** Runs fn with a server started in ns and listening on port; the server is always ended afterwards. */
async function withServer<T>(argv: string[], ns: string, port: number, what: string, fn: (server: Group) => Promise<T>): Promise<T> {
  const server = new Group([...inNs(ns), ...argv]);
  try {
    await waitListening(ns, port, what, { server, timeoutMs: 10_000 });
    return await fn(server);
  } finally {
    await server.kill();
  }
}

/** Runs a client to completion; throws with a reason if it timed out or failed. */
async function client(argv: string[], timeoutMs: number, what: string) {
  const r = await runGroup(argv, timeoutMs);
  if (r.timedOut) throw new Error(`${what} timed out after ${Math.round(timeoutMs / 1000)} s`);
  return r;
}

interface IperfEnd {
  error?: string;
  end?: {
    sum_sent?: { bits_per_second: number; retransmits?: number };
    sum_received?: { bits_per_second: number; lost_percent?: number; lost_packets?: number; packets?: number };
    sum?: { lost_percent?: number };
  };
}

function parseIperf(r: { code: number; stdout: string; stderr: string }): IperfEnd {
  let j: IperfEnd;
  try {
    j = JSON.parse(r.stdout) as IperfEnd;
  } catch {
    throw new Error(`iperf3 (${r.code}): ${tail(r.stderr || r.stdout)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  if (!j.end?.sum_received) throw new Error(`iperf3 gave no result (${r.code}): ${tail(r.stderr)}`);
  return j;
}

/** TCP throughput with iperf3 (Gbit/s received). */
export async function iperfTcp(ctx: Ctx, dir: Dir, streams: number): Promise<Sample> {
  const e = ends(ctx, dir, PORTS.nsIperf, PORTS.hostIperf);
  return withServer(["iperf3", "-s", "-1", "-p", String(e.port)], e.serverNs, e.port, "iperf3 server", async () => {
    await forwarderReady(ctx, dir, e.port);
    const omit = ctx.smoke ? [] : ["-O", "1"];
    const r = await client([...inNs(e.clientNs), "iperf3", "-c", e.addr, "-p", String(e.port), "-t", String(ctx.duration), ...omit,
      "-P", String(streams), "-J", "--connect-timeout", String(waitMs(ctx))], clientMs(ctx, ctx.duration), "iperf3");
    const j = parseIperf(r);
    return { value: j.end!.sum_received!.bits_per_second / 1e9, extra: { retransmits: j.end!.sum_sent?.retransmits ?? 0 } };
  });
}

/** UDP throughput namespace → host with iperf3 at full speed (Gbit/s received, loss in extra). */
export async function iperfUdp(ctx: Ctx, length: number): Promise<Sample> {
  const e = ends(ctx, "out", PORTS.nsIperf, PORTS.hostIperf);
  return withServer(["iperf3", "-s", "-1", "-p", String(e.port)], e.serverNs, e.port, "iperf3 server", async () => {
    const r = await client([...inNs(e.clientNs), "iperf3", "-c", e.addr, "-p", String(e.port), "-u", "-b", "0", "-l", String(length),
      "-t", String(ctx.duration), "-J", "--connect-timeout", String(waitMs(ctx))], clientMs(ctx, ctx.duration), "iperf3");
    const j = parseIperf(r);
    const rx = j.end!.sum_received!;
    if (rx.bits_per_second === 0) throw new Error(`nothing received (${rx.lost_packets ?? "?"} datagrams lost)`);
    return { value: rx.bits_per_second / 1e9, extra: { lossPercent: rx.lost_percent ?? j.end!.sum?.lost_percent ?? 0 } };
  });
}

/** TCP request/response round trip (µs, median), with sockperf ping-pong or the built-in ping-pong. */
export async function pingPong(ctx: Ctx, dir: Dir): Promise<Sample> {
  const e = ends(ctx, dir, PORTS.nsRr, PORTS.hostRr);
  const server = ctx.sockperf ? ["sockperf", "server", "--tcp", "-i", "0.0.0.0", "-p", String(e.port)] : bunTool("rr-server", String(e.port));
  return withServer(server, e.serverNs, e.port, "ping-pong server", async () => {
    await forwarderReady(ctx, dir, e.port);
    if (!ctx.sockperf) {
      const seconds = toolSeconds(ctx);
      const r = await client([...inNs(e.clientNs), ...bunTool("rr-client", e.addr, String(e.port), String(seconds), String(waitMs(ctx)))], clientMs(ctx, seconds), "ping-pong client");
      if (r.code !== 0) throw new Error(`ping-pong: ${tail(r.stderr || r.stdout)}`);
      const j = JSON.parse(r.stdout) as { medianUs: number; avgUs: number; rtts: number };
      return { value: j.medianUs, extra: { avgUs: j.avgUs, roundTrips: j.rtts } };
    }
    // sockperf spends about 2.5 s besides the test itself (warm-up, then a fixed 2 s pause).
    const r = await client([...inNs(e.clientNs), "sockperf", "ping-pong", "--tcp", "-i", e.addr, "-p", String(e.port), "-t", String(ctx.duration),
      "-m", "64", "--full-rtt"], clientMs(ctx, ctx.duration + 3), "sockperf");
    const text = `${r.stdout}\n${r.stderr}`;
    const p50 = /percentile 50\.000 =\s*([\d.]+)/.exec(text);
    const avg = /avg-rtt=([\d.]+)/.exec(text);
    const obs = /Total (\d+) observations/.exec(text);
    if (!p50) throw new Error(`sockperf (${r.code}): ${tail(r.stderr || r.stdout)}`);
    return { value: Number(p50[1]), extra: { avgUs: avg ? Number(avg[1]) : NaN, roundTrips: obs ? Number(obs[1]) : NaN } };
  });
}

/** Connection rate (connections/s): connect, 1-byte request, 1-byte reply, close, one after another. */
export async function connRate(ctx: Ctx, dir: Dir): Promise<Sample> {
  const e = ends(ctx, dir, PORTS.nsCrr, PORTS.hostCrr);
  return withServer(bunTool("crr-server", String(e.port)), e.serverNs, e.port, "connection-rate server", async () => {
    await forwarderReady(ctx, dir, e.port);
    const seconds = toolSeconds(ctx);
    const warmup = ctx.smoke ? [] : [String(CRR_WARMUP_SECONDS)];
    const r = await client([...inNs(e.clientNs), ...bunTool("crr-client", e.addr, String(e.port), String(seconds), String(waitMs(ctx)), ...warmup)],
      clientMs(ctx, seconds), "connection-rate client");
    let j: { transactions: number; seconds: number; errors: number; firstError: string };
    try {
      j = JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
    } catch {
      throw new Error(`connection-rate client (${r.code}): ${tail(r.stderr || r.stdout)}`);
    }
    if (j.transactions === 0) throw new Error(`no connection completed: ${j.firstError}`);
    return { value: j.transactions / j.seconds, extra: { transactions: j.transactions, errors: j.errors } };
  });
}

/**
 * Reads the tool's resident memory (MiB) once it has stopped changing (bounded wait): every process of the
 * instance (the pid-file process and its descendants; shared pages count once per process), that process alone,
 * and the anonymous part of the whole.
 */
async function settledRss(ctx: Ctx): Promise<{ self: number; tree: number; anon: number }> {
  const inst = ctx.sides.instance;
  if (!inst) throw new Error("no process to measure");
  let last = -1;
  let rss = { self: 0, tree: 0, anonTree: 0 };
  await waitUntil(() => {
    rss = rssKb(inst.pid);
    const steady = rss.tree === last;
    last = rss.tree;
    return steady;
  }, ctx.smoke ? 500 : 2000, 100);
  inst.checkAlive();
  if (rss.self === 0) throw new Error(`no VmRSS for PID ${inst.pid}`);
  return { self: rss.self / 1024, tree: rss.tree / 1024, anon: rss.anonTree / 1024 };
}

/** Resident memory right after start-up. */
export async function idleRss(ctx: Ctx): Promise<Sample> {
  const rss = await settledRss(ctx);
  return { value: rss.tree, extra: { selfMiB: rss.self, allMiB: rss.tree, anonMiB: rss.anon } };
}

/** Resident memory with N connections held open through a -t port (tap or splice path by the sides). */
export async function heldRss(ctx: Ctx, n: number): Promise<Sample> {
  const e = ends(ctx, "in", PORTS.nsHold, PORTS.nsHold);
  return withServer(bunTool("hold-server", String(e.port)), e.serverNs, e.port, "hold server", async () => {
    await forwarderReady(ctx, "in", e.port);
    const before = await settledRss(ctx);
    const limitS = ctx.smoke ? 10 : 60;
    const holder = new Group([...inNs(e.clientNs), ...bunTool("hold-client", e.addr, String(e.port), String(n), String(waitMs(ctx)))], { stdin: "pipe" });
    try {
      const ready = await holder.waitForOutput(/^ready \d+/m, limitS * 1000);
      if (!ready) throw new Error(holder.code !== null ? `holder: ${tail(holder.stderr || holder.stdout)}` : `${n} connections not open within ${limitS} s`);
      const rss = await settledRss(ctx);
      return { value: rss.tree, extra: { selfMiB: rss.self, allMiB: rss.tree, anonMiB: rss.anon, idleMiB: before.tree, perConnectionKiB: ((rss.tree - before.tree) * 1024) / n } };
    } finally {
      holder.closeStdin();
      await holder.kill(2000);
    }
  });
}

/** Milliseconds from spawn to the pid file. */
export async function startup(ctx: Ctx): Promise<Sample> {
  const inst = ctx.sides.instance;
  if (!inst) throw new Error("no process to measure");
  return { value: inst.startupMs };
}

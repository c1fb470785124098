/**
 * `bun run bench`: orzo against the reference pasta (and the kernel alone) in one run, in hermetic namespaces.
 *
 *   bun run bench [--smoke] [--reps N] [--duration S] [--only SUBSTR[,SUBSTR…]] [--targets veth,orzo,pasta]
 *                 [--latency-tool sockperf|builtin]
 *
 * Repetitions are interleaved (kernel, orzo, pasta, then the next scenario; then the next repetition), each
 * measurement on a fresh tool instance. Prints a table, writes bench/results/latest.json (plus a timestamped
 * copy) and bench/results/latest.svg. Failed measurements are results ("failed: reason"), not errors: the exit
 * status is non-zero only when the harness itself breaks.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { orzoBinary } from "../test/helpers/binary.ts";
import { run, TestHost } from "../test/helpers/netns.ts";
import type { Ctx, Sample } from "./lib/measure.ts";
import { liveGroups, tail } from "./lib/proc.ts";
import { type ScenarioResult, summarise, svg, table, type TargetResult } from "./lib/report.ts";
import { ceilingSides, Instance, liveGuests, removeStaleNamespaces, setVethMtu, type TargetKind, toolSides, tuneNs } from "./lib/targets.ts";
import { type Scenario, SCENARIOS } from "./scenarios.ts";

const { values: opts } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    reps: { type: "string" },
    duration: { type: "string" },
    only: { type: "string" },
    targets: { type: "string" },
    "latency-tool": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (opts.help) {
  console.log("usage: bun run bench [--smoke] [--reps N] [--duration S] [--only SUBSTR[,SUBSTR…]] [--targets veth,orzo,pasta] [--latency-tool sockperf|builtin]");
  process.exit(0);
}

const smoke = opts.smoke!;
const reps = Number(opts.reps ?? (smoke ? 1 : 3));
const duration = Number(opts.duration ?? (smoke ? 1 : 5));
if (!Number.isInteger(reps) || reps < 1) fail(`--reps must be a positive integer, not ${opts.reps}`);
// iperf3 and sockperf take whole seconds.
if (!Number.isInteger(duration) || duration < 1) fail(`--duration must be a whole number of seconds ≥ 1, not ${opts.duration}`);
// The smoke run leaves out the kernel ceiling to stay within its budget (--targets puts it back).
const targets = (opts.targets ?? (smoke ? "orzo,pasta" : "veth,orzo,pasta")).split(",").map((t) => t.trim()).filter(Boolean) as TargetKind[];
for (const t of targets) if (!["veth", "pasta", "orzo"].includes(t)) fail(`unknown target ${t} (veth, pasta, orzo)`);
const only = (opts.only ?? "").split(",").map((s) => s.trim()).filter(Boolean);
const scenarios = SCENARIOS.filter((s) => only.length === 0 || only.some((o) => s.id.includes(o) || s.title.includes(o)));
if (scenarios.length === 0) fail(`--only ${opts.only} matches no scenario; ids: ${SCENARIOS.map((s) => s.id).join(" ")}`);

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** The path of a command, or "" when it is not installed. */
function which(cmd: string): string {
  const r = Bun.spawnSync(["sh", "-c", `command -v ${cmd}`], { stdout: "pipe", stderr: "ignore" });
  return r.exitCode === 0 ? r.stdout.toString().trim() : "";
}

/** Installs missing Debian packages (apt-get update only when a plain install fails). */
async function ensurePackages(wanted: Record<string, string>): Promise<void> {
  const missing = Object.entries(wanted).filter(([cmd]) => !which(cmd)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  log(`bench: installing ${missing.join(" ")}`);
  const env = { ...(process.env as Record<string, string>), DEBIAN_FRONTEND: "noninteractive" };
  const install = () => run(["apt-get", "install", "-y", "--no-install-recommends", ...missing], { timeoutMs: 300_000, env });
  if ((await install()).code !== 0) {
    await run(["apt-get", "update"], { timeoutMs: 300_000, env });
    const r = await install();
    if (r.code !== 0) log(`bench: apt-get install ${missing.join(" ")} failed: ${tail(r.stderr)}`);
  }
}

function version(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return tail(`${r.stdout.toString()}\n${r.stderr.toString()}`.split("\n").filter((l) => l.trim() && !l.startsWith("Failed to send"))[0] ?? "", 80);
}

if (process.getuid?.() !== 0) fail("needs root (it creates network namespaces)");
await ensurePackages({ iperf3: "iperf3", pasta: "passt", ss: "iproute2", setsid: "util-linux" });
if ((opts["latency-tool"] ?? (smoke ? "builtin" : "sockperf")) === "sockperf") await ensurePackages({ sockperf: "sockperf" });
for (const cmd of ["iperf3", "ss", "setsid"]) if (!which(cmd)) fail(`${cmd} is missing and could not be installed`);
const pastaPath = which("pasta");
// sockperf pauses 2 s in every run, too slow for the smoke run's budget: smoke uses the built-in ping-pong.
const latencyChoice = opts["latency-tool"] ?? (smoke ? "builtin" : "sockperf");
if (!["sockperf", "builtin"].includes(latencyChoice)) fail(`--latency-tool is sockperf or builtin, not ${latencyChoice}`);
const useSockperf = latencyChoice === "sockperf" && which("sockperf") !== "";

let orzoPath = "";
let orzoError = "";
if (targets.includes("orzo")) {
  try {
    orzoPath = orzoBinary();
  } catch (e) {
    orzoError = `build: ${tail(String((e as Error).message ?? e))}`;
  }
}

const stale = await removeStaleNamespaces();
if (stale.length) log(`bench: removed stale namespaces ${stale.join(" ")}`);

const tmp = mkdtempSync(join(tmpdir(), "orzo-bench-"));
let host: TestHost | undefined;
let cleaning: Promise<void> | undefined;

/** Ends every process and namespace the run made; safe to call more than once. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const g of liveGroups) g.signal("SIGKILL");
    for (const ns of liveGuests) await run(["ip", "netns", "del", ns]);
    await host?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    log(`bench: ${sig}, cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

const results = new Map<string, Partial<Record<TargetKind, TargetResult>>>();
const harnessErrors: string[] = [];

/** One measurement of one scenario on one target, with a fresh tool instance; throws the failure reason. */
async function measureOnce(s: Scenario, kind: TargetKind): Promise<Sample> {
  const base = { duration, smoke, sockperf: useSockperf };
  if (kind === "veth") {
    if (s.path === "tap") await setVethMtu(host!.name, host!.router, s.mtu);
    return s.measure({ ...base, sides: ceilingSides(host!.name, host!.router, s.path) });
  }
  if (kind === "orzo" && !orzoPath) throw new Error(orzoError || "orzo binary missing");
  if (kind === "pasta" && !pastaPath) throw new Error("pasta is not installed");
  const binary = kind === "orzo" ? orzoPath : pastaPath;
  const inst = await Instance.start(kind, binary, host!.name, tmp, { mtu: s.mtu === 65520 ? undefined : s.mtu, timeoutMs: smoke ? 5000 : 10_000 });
  try {
    const ctx: Ctx = { ...base, sides: toolSides(host!.name, inst, s.path) };
    const sample = await s.measure(ctx);
    inst.checkAlive();
    return sample;
  } finally {
    await inst.stop();
  }
}

/** Bounds a whole measurement as a last resort; on expiry every child process is killed. */
async function bounded(p: Promise<Sample>, ms: number): Promise<Sample> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      for (const g of liveGroups) g.signal("SIGKILL");
      reject(new Error(`measurement did not finish within ${Math.round(ms / 1000)} s`));
    }, ms);
  });
  try {
    return await Promise.race([p, expiry]);
  } finally {
    clearTimeout(timer);
  }
}

const started = new Date();
try {
  host = await TestHost.create("bench", { pingSockets: false });
  await tuneNs(host.name);
  await tuneNs(host.router);
  log(`bench: ${scenarios.length} scenarios × ${targets.join("/")} × ${reps} rep(s), ${duration} s each; latency with ${useSockperf ? "sockperf ping-pong" : "the built-in ping-pong"}`);
  for (let rep = 1; rep <= reps; rep++) {
    for (const s of scenarios) {
      const entry = results.get(s.id) ?? {};
      results.set(s.id, entry);
      for (const kind of targets) {
        if (kind === "veth" && s.ceiling === null) continue;
        const t = (entry[kind] ??= { samples: [], failures: [] });
        const label = `[${rep}/${reps}] ${s.id} ${kind === "veth" ? (s.ceiling === "lo" ? "lo" : "veth") : kind}`;
        const t0 = performance.now();
        const took = () => `(${((performance.now() - t0) / 1000).toFixed(1)} s)`;
        try {
          const sample = await bounded(measureOnce(s, kind), (duration + 120) * 1000);
          t.samples.push(sample);
          log(`${label}: ${sample.value.toFixed(s.unit === "Gbit/s" ? 2 : 1)} ${s.unit} ${took()}`);
        } catch (e) {
          const err = e as Error;
          if (err instanceof TypeError || err instanceof ReferenceError || err instanceof RangeError) harnessErrors.push(`${s.id} ${kind}: ${err.stack ?? err}`);
          const reason = String(err?.message ?? err).replace(/\s+/g, " ").trim();
          t.failures.push(reason);
          log(`${label}: failed: ${reason} ${took()}`);
        }
      }
    }
  }
} catch (e) {
  harnessErrors.push(String((e as Error)?.stack ?? e));
} finally {
  await cleanUp();
}

// A scenario that failed for every tool, the kernel included, points at the harness, not at a tool: in the smoke
// run (CI's guard against rot) that fails the run, as a harness error does.
if (smoke) {
  for (const [id, entry] of results) {
    const ran = Object.values(entry).filter((t) => t !== undefined);
    if (ran.length > 0 && ran.every((t) => t.samples.length === 0)) harnessErrors.push(`${id}: failed for every target: ${ran[0].failures[0]}`);
  }
}

const summaries: ScenarioResult[] = scenarios.filter((s) => results.has(s.id)).map((s) => summarise(s, results.get(s.id)!));
console.log("");
console.log(table(summaries, new Map(scenarios.map((s) => [s.id, s.detail]))));

const latencyTool = useSockperf ? `sockperf ping-pong (${version(["sockperf", "--version"])}), 64-byte messages, median RTT` : "built-in TS ping-pong (bench/tools/tcp.ts), 64-byte messages, median RTT";
console.log(`\nlatency: ${latencyTool}; connection rate: bench/tools/tcp.ts crr-client, one connection at a time${smoke ? "" : " after 2 s unmeasured"}`);
const doc = {
  version: 1,
  date: started.toISOString(),
  machine: { kernel: version(["uname", "-r"]), cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "" },
  tools: {
    pasta: `${pastaPath} (${version(["dpkg-query", "-W", "-f", "${Version}", "passt"]) || version([pastaPath || "pasta", "--version"])})`,
    orzo: orzoPath ? version([orzoPath, "--version"]) : orzoError || "not run",
    iperf3: version(["iperf3", "--version"]),
    latency: latencyTool,
    connectionRate: "bench/tools/tcp.ts crr-client: connect, 1-byte request, 1-byte reply, close; one at a time" + (smoke ? "" : ", counted after a 2 s warm-up"),
  },
  options: { smoke, reps, duration, only, targets },
  arguments: `pasta | dist/orzo pasta ${Instance.args("PIDFILE", "NETNS").join(" ")} [-m 1500 in the MTU 1500 scenarios], run in the host namespace`,
  note: "speedup: orzo relative to pasta, > 1 means orzo is better (orzo/pasta for throughput and rates, pasta/orzo for latency, memory and time). veth = kernel veth pair (tap scenarios) or loopback (splice scenarios).",
  scenarios: summaries,
  harnessErrors,
};
const dir = join(import.meta.dir, "results");
mkdirSync(dir, { recursive: true });
const json = `${JSON.stringify(doc, null, 2)}\n`;
writeFileSync(join(dir, "latest.json"), json);
writeFileSync(join(dir, `${started.toISOString().replace(/[:.]/g, "-")}.json`), json);
writeFileSync(join(dir, "latest.svg"), svg(summaries, `${started.toISOString().slice(0, 16)}Z, ${reps} rep(s) × ${duration} s, ${cpus().length} CPUs, ${smoke ? "smoke" : "full"} run; pasta ${doc.tools.pasta}`));
console.log(`\nwrote ${join(dir, "latest.json")} and latest.svg`);
if (harnessErrors.length) {
  console.error(`bench: harness errors:\n${harnessErrors.join("\n")}`);
  process.exit(1);
}
process.exit(0);

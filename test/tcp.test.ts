import { commandTmpDir } from "./helpers/process.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readRss } from "./helpers/process.ts";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { run, TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";

/** A remote peer behind the router (not on the host's link), so nothing is mapped or spliced. */
const REMOTE4 = "192.0.2.1";
const REMOTE6 = "2001:db8:2::1";
const peer = join(import.meta.dir, "fixtures", "tcp-peer.ts");
const bun = process.execPath;

let host: TestHost;
let orzo: string;
let tmp: string;
const files: Record<string, { path: string; size: number; sha: string }> = {};
let nextPort = 5000;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("tcp");
  await host.runRouter(["ip", "addr", "add", `${REMOTE4}/32`, "dev", "lo"]);
  await host.runRouter(["ip", "addr", "add", `${REMOTE6}/128`, "dev", "lo"]);
  tmp = commandTmpDir("orzo-tcp-");
  chmodSync(tmp, 0o777); // the rootless tests run as nobody
  for (const [name, size] of [["2k", 2048], ["5k", 5120], ["100m", 100 << 20]] as const) {
    const data = new Uint8Array(size);
    for (let off = 0; off < size; off += 65536) crypto.getRandomValues(data.subarray(off, Math.min(size, off + 65536)));
    const path = join(tmp, name);
    writeFileSync(path, data);
    files[name] = { path, size, sha: createHash("sha256").update(data).digest("hex") };
  }
});
afterAll(async () => {
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

type Ns = "host" | "router";
const nsName = (ns: Ns) => (ns === "host" ? host.name : host.router);

/** Waits until something listens on a TCP port in a namespace. */
async function listening(ns: Ns, port: number): Promise<void> {
  const ok = await waitFor(async () => (await run(["ip", "netns", "exec", nsName(ns), "ss", "-Hltn", `sport = :${port}`])).stdout.trim() !== "", 10_000);
  if (!ok) throw new Error(`nothing listens on port ${port} in ${ns}`);
}

/** Starts `socat -u TCPx-LISTEN:port SYSTEM:"sha256sum > out"` in a namespace; returns the output path. */
async function shaServer(ns: Ns, v6: boolean, port: number, bindAddr?: string): Promise<{ out: string; done: Promise<number> }> {
  const out = join(tmp, `sha-${port}`);
  const bindOpt = bindAddr ? `,bind=${bindAddr}` : "";
  const p = Bun.spawn(["ip", "netns", "exec", nsName(ns), "timeout", "60", "socat", "-u", `TCP${v6 ? 6 : 4}-LISTEN:${port},reuseaddr${bindOpt}`, `SYSTEM:sha256sum > ${out}`], { stdout: "ignore", stderr: "pipe" });
  await listening(ns, port);
  return { out, done: p.exited };
}

function sha(out: string): string {
  return existsSync(out) ? readFileSync(out, "utf8").split(" ")[0] : "";
}

/** Runs `orzo pasta --config-net ARGS -- sh -c SCRIPT` in the host namespace. */
function pasta(args: string[], script: string, timeoutMs = 60_000) {
  return host.run([orzo, "pasta", "--config-net", ...args, "--", "sh", "-c", script], { timeoutMs });
}

/** A namespace-side script prefix that starts a command in the background and waits until it listens. */
function inNsListening(cmd: string, port: number | number[], readyFile: string): string {
  const ports = Array.isArray(port) ? port : [port];
  const check = ports.map((p) => `ss -Hltn "sport = :${p}" | grep -q .`).join(" && ");
  return `${cmd} & while ! { ${check}; }; do sleep 0.01; done; touch ${readyFile}; wait`;
}

async function nsToHost(v6: boolean, file: string, dest: "remote" | "gateway", args: string[] = []): Promise<void> {
  const port = nextPort++;
  const server = await shaServer(dest === "remote" ? "router" : "host", v6, port);
  const target = dest === "remote" ? (v6 ? `[${REMOTE6}]` : REMOTE4) : v6 ? `[${TOPOLOGY.router6}]` : TOPOLOGY.router4;
  const r = await pasta(args, `socat -u OPEN:${files[file].path} TCP${v6 ? 6 : 4}:${target}:${port}`);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  await server.done;
  expect(sha(server.out)).toBe(files[file].sha);
}

async function hostToNs(v6: boolean, file: string, args: string[] = [], from: Ns = "router"): Promise<void> {
  const port = nextPort++;
  const out = join(tmp, `sha-${port}`);
  const ready = join(tmp, `ready-${port}`);
  const ns = pasta([...args, "-t", String(port)], inNsListening(`socat -u TCP${v6 ? 6 : 4}-LISTEN:${port} SYSTEM:'sha256sum > ${out}'`, port, ready));
  expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
  const dst = v6 ? `[${TOPOLOGY.host6}]` : TOPOLOGY.host4;
  const argv = ["socat", "-u", `OPEN:${files[file].path}`, `TCP${v6 ? 6 : 4}:${dst}:${port}`];
  const c = from === "router" ? await host.runRouter(argv, { timeoutMs: 60_000 }) : await host.run(argv, { timeoutMs: 60_000 });
  expect(c.code).toBe(0);
  expect((await ns).code).toBe(0);
  expect(sha(out)).toBe(files[file].sha);
}

describe("TCP transfers with checksums", () => {
  for (const v6 of [false, true]) {
    const ip = v6 ? "IPv6" : "IPv4";
    for (const size of ["2k", "5k", "100m"]) {
      test(`${ip} namespace to a remote host: ${size}`, () => nsToHost(v6, size, "remote"));
      test(`${ip} host to namespace over -t: ${size}`, () => hostToNs(v6, size));
    }
    test(`${ip} namespace to the gateway address reaches the host's loopback`, () => nsToHost(v6, "5k", "gateway"));
    test(`${ip} from the host's own address over -t (it appears from the gateway)`, () => hostToNs(v6, "5k", [], "host"));
    test(`${ip} at MTU 1500 (segmentation offloaded), 100m both ways`, async () => {
      await nsToHost(v6, "100m", "remote", ["-m", "1500"]);
      await hostToNs(v6, "100m", ["-m", "1500"]);
    });
  }
});

describe("TCP connection handling", () => {
  test("half-close: the reply sent after EOF reaches the client, both directions", async () => {
    const port = nextPort++;
    const reply = files["5k"];
    const server = Bun.spawn(["ip", "netns", "exec", host.router, "timeout", "20", "socat", `TCP4-LISTEN:${port},reuseaddr`, `SYSTEM:cat >/dev/null; cat ${reply.path}`], { stdout: "ignore", stderr: "ignore" });
    await listening("router", port);
    const r = await pasta([], `socat -t 10 - TCP4:${REMOTE4}:${port} < ${files["2k"].path} | sha256sum`);
    expect(r.code).toBe(0);
    expect(r.stdout.split(" ")[0]).toBe(reply.sha);
    await server.exited;

    const port2 = nextPort++;
    const ready = join(tmp, `ready-${port2}`);
    const ns = pasta(["-t", String(port2)], inNsListening(`socat TCP4-LISTEN:${port2} SYSTEM:'cat >/dev/null; cat ${reply.path}'`, port2, ready));
    expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
    const c = await host.runRouter(["sh", "-c", `socat -t 10 - TCP4:${TOPOLOGY.host4}:${port2} < ${files["2k"].path} | sha256sum`]);
    expect(c.stdout.split(" ")[0]).toBe(reply.sha);
    expect((await ns).code).toBe(0);
  });

  test("a connection to a closed port is refused within 100 ms", async () => {
    for (const target of [REMOTE4, TOPOLOGY.router4, REMOTE6]) {
      const r = await pasta([], `${bun} ${peer} refused ${target} 1`);
      const out = JSON.parse(r.stdout.trim()) as { code: string; ms: number };
      expect(out.code).toBe("ECONNREFUSED");
      expect(out.ms).toBeLessThan(100);
    }
  });

  test("500 parallel connections each transfer data intact", async () => {
    const port = nextPort++;
    const server = Bun.spawn(["ip", "netns", "exec", host.router, bun, peer, "echo-server", String(port)], { stdout: "pipe", stderr: "inherit" });
    try {
      await listening("router", port);
      const r = await pasta([], `${bun} ${peer} parallel ${REMOTE4} ${port} 500 20000`, 60_000);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.trim())).toEqual({ ok: 500, n: 500 });
    } finally {
      server.kill("SIGKILL");
    }
  });

  test("10,000 connections opened and closed leave no flows or fds behind", async () => {
    const port = nextPort++;
    const pidFile = join(tmp, `pid-${port}`);
    const server = Bun.spawn(["ip", "netns", "exec", host.router, bun, peer, "echo-server", String(port)], { stdout: "pipe", stderr: "inherit" });
    try {
      await listening("router", port);
      const rounds = Array.from({ length: 20 }, () => `${bun} ${peer} parallel ${REMOTE4} ${port} 500 100 >> ${tmp}/rounds-${port}`).join(" && ");
      // The fd count of orzo before, and once it is back to that (or after 5 s of polling) at the end.
      const fds = `ls /proc/$(cat ${pidFile})/fd | wc -l`;
      const settle = `for i in $(seq 100); do [ $(${fds}) -le $(cat ${tmp}/fd0-${port}) ] && break; sleep 0.05; done`;
      const script = `${fds} > ${tmp}/fd0-${port}; ${rounds}; ${settle}; ${fds} > ${tmp}/fd1-${port}`;
      const r = await host.run([orzo, "pasta", "--config-net", "-d", "-P", pidFile, "--", "sh", "-c", script], { timeoutMs: 120_000 });
      expect(r.code).toBe(0);
      const rounds_ = readFileSync(`${tmp}/rounds-${port}`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { ok: number });
      expect(rounds_.length).toBe(20);
      expect(rounds_.every((x) => x.ok === 500)).toBe(true);
      const fd0 = Number(readFileSync(`${tmp}/fd0-${port}`, "utf8"));
      const fd1 = Number(readFileSync(`${tmp}/fd1-${port}`, "utf8"));
      expect(fd1).toBe(fd0);
      const stats = /tcp (\{[^}]*\})/.exec(r.stderr);
      expect(stats).not.toBeNull();
      const s = JSON.parse(stats![1]) as { opened: number; closed: number };
      expect(s.opened).toBe(10_000);
      expect(s.closed).toBe(10_000);
    } finally {
      server.kill("SIGKILL");
    }
  }, 150_000);
});

/** Runs orzo with a pid file and samples its resident memory until it exits; returns status, stderr and RSS. */
async function pastaSampled(args: string[], script: string): Promise<{ code: number; rss: number[] }> {
  const pidFile = join(tmp, `pid-${nextPort++}`);
  const p = host.spawn([orzo, "pasta", "--config-net", "-P", pidFile, ...args, "--", "sh", "-c", script]);
  // The file is made at start and written once orzo is ready.
  expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"), 10_000)).toBe(true);
  const pid = Number(readFileSync(pidFile, "utf8"));
  const rss: number[] = [];
  const timer = setInterval(() => {
    const kb = readRss(pid);
    if (kb > 0) rss.push(kb);
  }, 100);
  const code = await Promise.race([p.exited, Bun.sleep(60_000).then(() => -1)]);
  clearInterval(timer);
  return { code, rss };
}

/** What the slow reader printed: bytes read in all, bytes read while slow, and their sha256. */
interface SlowRead {
  total: number;
  slowBytes: number;
  sha256: string;
}

/**
 * The reader took 100 MiB intact, and while it read slowly the sender's backlog (the whole file, far more than the
 * kernel's socket buffers hold) stayed in the kernel: orzo's resident memory never rose more than 32 MiB above its
 * first sample. An orzo that buffered the backlog would grow by about 100 MiB; the allowance covers the one-time
 * steps of first-touched frame buffers and freshly compiled code (up to about 13 MiB seen here).
 */
function expectIntactAndFlat(out: SlowRead, rss: number[]): void {
  expect(out.total).toBe(files["100m"].size);
  expect(out.sha256).toBe(files["100m"].sha);
  // Slow for the whole slow phase: 1 KiB per 10 ms is at most a few hundred KiB.
  expect(out.slowBytes).toBeGreaterThan(0);
  expect(out.slowBytes).toBeLessThan(1 << 20);
  const series = `resident KiB every 100 ms: ${rss.join(",")}`;
  expect(rss.length, series).toBeGreaterThan(10);
  expect(Math.max(...rss) - rss[0], series).toBeLessThan(32 * 1024);
}

describe("TCP with a slow reader", () => {
  const slowMs = 3000;
  test("namespace to host: the host reads 1 KiB every 10 ms, data intact, memory flat", async () => {
    const port = nextPort++;
    const reader = Bun.spawn(["ip", "netns", "exec", host.router, bun, peer, "slow-reader", String(port), String(files["100m"].size), String(slowMs)], {
      stdout: "pipe",
      stderr: "inherit",
    });
    await listening("router", port);
    const r = await pastaSampled([], `socat -u OPEN:${files["100m"].path} TCP4:${REMOTE4}:${port}`);
    const out = JSON.parse((await new Response(reader.stdout).text()).trim().split("\n").at(-1)!) as SlowRead;
    expect(r.code).toBe(0);
    expectIntactAndFlat(out, r.rss);
  });

  test("host to namespace: the namespace reads 1 KiB every 10 ms, data intact, memory flat", async () => {
    const port = nextPort++;
    const result = join(tmp, `slow-${port}`);
    const ready = join(tmp, `ready-${port}`);
    const reader = `${bun} ${peer} slow-reader ${port} ${files["100m"].size} ${slowMs} > ${result}`;
    const run_ = pastaSampled(["-t", String(port)], inNsListening(reader, port, ready));
    expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
    const c = await host.runRouter(["socat", "-u", `OPEN:${files["100m"].path}`, `TCP4:${TOPOLOGY.host4}:${port}`], { timeoutMs: 30_000 });
    expect(c.code).toBe(0);
    const r = await run_;
    expect(r.code).toBe(0);
    expectIntactAndFlat(JSON.parse(readFileSync(result, "utf8").trim().split("\n").at(-1)!) as SlowRead, r.rss);
  });
});

describe("-t port specifications", () => {
  /** Runs orzo with forwarding specs and a namespace script, keeps it until `release` is called. */
  async function holding(args: string[], nsScript: string) {
    const ready = join(tmp, `ready-${nextPort++}`);
    const done = join(tmp, `done-${nextPort++}`);
    const p = pasta(args, `${nsScript} touch ${ready}; n=0; while [ ! -e ${done} ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done`);
    expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
    return {
      release: async () => {
        writeFileSync(done, "");
        return p;
      },
    };
  }
  const hostListening = async (): Promise<string> => (await host.run(["ss", "-Hltn"])).stdout;

  test("mapping, ranges and a bound address carry data to the mapped port", async () => {
    const out = (p: number) => join(tmp, `map-${p}`);
    const server = (p: number) => `socat -u TCP4-LISTEN:${p} SYSTEM:'sha256sum > ${out(p)}' & while ! ss -Hltn "sport = :${p}" | grep -q .; do sleep 0.01; done;`;
    const h = await holding(["-t", "18080:8080", "-t", "18090-18091:8090-8091", "-t", `${TOPOLOGY.host4}/18100:8100`], `${server(8080)} ${server(8091)} ${server(8100)}`);
    const listeners = await hostListening();
    expect(listeners).toContain(`${TOPOLOGY.host4}:18100`);
    expect(listeners).not.toMatch(/\*:18100|0\.0\.0\.0:18100/);
    for (const [hostPort, nsPort] of [[18080, 8080], [18091, 8091], [18100, 8100]]) {
      const c = await host.runRouter(["socat", "-u", `OPEN:${files["5k"].path}`, `TCP4:${TOPOLOGY.host4}:${hostPort}`]);
      expect(c.code).toBe(0);
      expect(await waitFor(() => sha(out(nsPort)) !== "", 5_000)).toBe(true);
      expect(sha(out(nsPort))).toBe(files["5k"].sha);
    }
    expect((await h.release()).code).toBe(0);
  });

  test("exclusions leave ports unforwarded", async () => {
    const h = await holding(["-t", "18110-18112,~18111"], "");
    const listeners = await hostListening();
    expect(listeners).toMatch(/:18110\s/);
    expect(listeners).toMatch(/:18112\s/);
    expect(listeners).not.toMatch(/:18111\s/);
    expect((await h.release()).code).toBe(0);
  });

  test("a port that cannot be bound is reported and orzo exits 1", async () => {
    const blocker = host.spawn(["socat", "TCP-LISTEN:18120,reuseaddr", "-"]);
    await listening("host", 18120);
    const r = await pasta(["-t", "18120"], "true");
    blocker.kill("SIGKILL");
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("18120");
  });

  test("malformed specs are one line and exit 1", async () => {
    for (const spec of ["70000", "8080-80", "1-3:5-8", "abc", "none,80"]) {
      const r = await host.run([orzo, "pasta", "-t", spec, "--", "true"]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("spliced loopback connections", () => {
  for (const v6 of [false, true]) {
    const lo = v6 ? "::1" : "127.0.0.1";
    const ip = v6 ? "IPv6" : "IPv4";
    for (const size of ["5k", "100m"]) {
      test(`${ip} host loopback to namespace over -t: ${size}`, async () => {
        const port = nextPort++;
        const out = join(tmp, `sha-${port}`);
        const ready = join(tmp, `ready-${port}`);
        const ns = pasta(["-d", "-t", String(port)], inNsListening(`socat -u TCP${v6 ? 6 : 4}-LISTEN:${port} SYSTEM:'sha256sum > ${out}'`, port, ready));
        expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
        const c = await host.run(["socat", "-u", `OPEN:${files[size].path}`, `TCP${v6 ? 6 : 4}:${v6 ? "[::1]" : lo}:${port}`], { timeoutMs: 60_000 });
        expect(c.code).toBe(0);
        const r = await ns;
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("(TCP_SPLICE)");
        expect(sha(out)).toBe(files[size].sha);
      });

      test(`${ip} namespace loopback to host over -T: ${size}`, async () => {
        const port = nextPort++;
        const server = await shaServer("host", v6, port, v6 ? "[::1]" : lo);
        const r = await pasta(["-d", "-T", String(port)], `socat -u OPEN:${files[size].path} TCP${v6 ? 6 : 4}:${v6 ? "[::1]" : lo}:${port}`);
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("(TCP_SPLICE)");
        await server.done;
        expect(sha(server.out)).toBe(files[size].sha);
      });
    }
  }

  test("a spliced connection whose target refuses is reset at once, IPv4 and IPv6", async () => {
    for (const lo of ["127.0.0.1", "::1"]) {
      const port = nextPort++;
      const r = await pasta(["-d", "-T", String(port)], `${bun} ${peer} reset ${lo} ${port}`);
      const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { how: string; ms: number };
      expect(out.how).toBe("ECONNRESET");
      expect(out.ms).toBeLessThan(500);
      expect(r.stderr).toContain("connect: errno 111");
    }
  });

  test("half-close carries across the splice both ways", async () => {
    const port = nextPort++;
    const reply = files["5k"];
    const server = host.spawn(["socat", `TCP4-LISTEN:${port},bind=127.0.0.1,reuseaddr`, `SYSTEM:cat >/dev/null; cat ${reply.path}`]);
    await listening("host", port);
    const r = await pasta(["-T", String(port)], `socat -t 10 - TCP4:127.0.0.1:${port} < ${files["2k"].path} | sha256sum`);
    expect(r.stdout.split(" ")[0]).toBe(reply.sha);
    server.kill();

    const port2 = nextPort++;
    const ready = join(tmp, `ready-${port2}`);
    const ns = pasta(["-t", String(port2)], inNsListening(`socat TCP4-LISTEN:${port2} SYSTEM:'cat >/dev/null; cat ${reply.path}'`, port2, ready));
    expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
    const c = await host.run(["sh", "-c", `socat -t 10 - TCP4:127.0.0.1:${port2} < ${files["2k"].path} | sha256sum`]);
    expect(c.stdout.split(" ")[0]).toBe(reply.sha);
    expect((await ns).code).toBe(0);
  });

  test("a receiver that stops and resumes reading loses nothing", async () => {
    const port = nextPort++;
    const reader = host.spawn([bun, peer, "slow-reader", String(port), String(files["100m"].size), "2000"]);
    await listening("host", port);
    const r = await pasta(["-T", String(port)], `socat -u OPEN:${files["100m"].path} TCP4:127.0.0.1:${port}`);
    expect(r.code).toBe(0);
    const out = JSON.parse((await new Response(reader.stdout as ReadableStream).text()).trim().split("\n").at(-1)!) as SlowRead;
    expect(out).toEqual({ total: files["100m"].size, slowBytes: out.slowBytes, sha256: files["100m"].sha });
    expect(out.slowBytes).toBeLessThan(1 << 20);
  });

  test("200 parallel spliced connections complete intact", async () => {
    const port = nextPort++;
    const server = host.spawn([bun, peer, "echo-server", String(port)]);
    await listening("host", port);
    const r = await pasta(["-T", String(port)], `${bun} ${peer} parallel 127.0.0.1 ${port} 200 50000`);
    server.kill();
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ ok: 200, n: 200 });
  });
});

describe("automatic forwarding", () => {
  test("-t auto: a server started in the namespace later is reachable from the host within the scan interval; -T auto the other way", async () => {
    const port = nextPort++;
    const hostPort = nextPort++;
    const out = join(tmp, `auto-${port}`);
    const hostServer = await shaServer("host", false, hostPort, "127.0.0.1");
    const ready = join(tmp, `ready-${port}`);
    // The namespace's server starts only after orzo is up (this is the command it runs).
    const ns = pasta(["-d"], `${inNsListening(`socat -u TCP4-LISTEN:${port} SYSTEM:'sha256sum > ${out}'`, port, ready)}`);
    expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
    const started = performance.now();
    let connected = false;
    while (!connected && performance.now() - started < 3000) {
      connected = (await host.runRouter(["socat", "-u", `OPEN:${files["5k"].path}`, `TCP4:${TOPOLOGY.host4}:${port}`])).code === 0;
    }
    expect(connected).toBe(true);
    expect(performance.now() - started).toBeLessThan(2500);
    const r = await ns;
    expect(r.code).toBe(0);
    expect(sha(out)).toBe(files["5k"].sha);
    expect(r.stderr).toContain(`tcp port ${port} bound on the other side, listening`);
    // -T auto: the host's loopback server was forwarded into the namespace at start.
    const r2 = await pasta([], `socat -u OPEN:${files["5k"].path} TCP4:127.0.0.1:${hostPort}`);
    expect(r2.code).toBe(0);
    await hostServer.done;
    expect(sha(hostServer.out)).toBe(files["5k"].sha);
  });
});

describe("TCP rootless", () => {
  const nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
  test("as uid 65534: tap path both ways and the splice path", async () => {
    const port = nextPort++;
    const server = await shaServer("router", false, port);
    const r = await host.run([...nobody, orzo, "pasta", "--config-net", "--", "socat", "-u", `OPEN:${files["100m"].path}`, `TCP4:${REMOTE4}:${port}`], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    await server.done;
    expect(sha(server.out)).toBe(files["100m"].sha);

    // Two servers in the namespace: one reached over the tap path (from the router), one spliced (host loopback).
    const [p2, p3] = [nextPort++, nextPort++];
    const ready = join(tmp, `ready-${p2}`);
    const server2 = `socat -u TCP4-LISTEN:${p2} SYSTEM:'sha256sum > ${tmp}/sha-${p2}'`;
    const ns = host.run([...nobody, orzo, "pasta", "--config-net", "-t", `${p2},${p3}`, "--", "sh", "-c", inNsListening(`${server2} & socat -u TCP4-LISTEN:${p3} SYSTEM:'sha256sum > ${tmp}/sha-${p3}'`, [p2, p3], ready)], { timeoutMs: 30_000 });
    expect(await waitFor(() => existsSync(ready), 10_000)).toBe(true);
    expect((await host.runRouter(["socat", "-u", `OPEN:${files["5k"].path}`, `TCP4:${TOPOLOGY.host4}:${p2}`])).code).toBe(0);
    expect((await host.run(["socat", "-u", `OPEN:${files["5k"].path}`, `TCP4:127.0.0.1:${p3}`])).code).toBe(0);
    expect((await ns).code).toBe(0);
    expect([sha(join(tmp, `sha-${p2}`)), sha(join(tmp, `sha-${p3}`))]).toEqual([files["5k"].sha, files["5k"].sha]);
  });
});

/**
 * UDP port forwarding end to end: `orzo pasta --config-net` in a test host namespace with -u (host ports into the
 * namespace, over the tap from a remote peer, spliced from the host's loopback), -U (the namespace's loopback to
 * the host's) and automatic forwarding; real peers (socat echo servers, a many-socket client) on both sides.
 *
 * The namespace gets addresses of its own (10.0.2.15, fd00::15), so the router's datagrams to the host's address
 * reach it through a -u listener and the tap, and the host's loopback is spliced to 10.0.2.15 / fd00::15.
 */
import { commandTmpDir } from "./helpers/process.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY, waitFor, type RunResult } from "./helpers/netns.ts";

const OWN_ADDRESSES = ["-a", "10.0.2.15/24", "-g", "10.0.2.2", "-a", "fd00::15/64", "-g", "fd00::2"];
const bun = process.execPath;

let host: TestHost;
let orzo: string;
let tmp: string;
let nextPort = 7100;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("udpfwd");
  tmp = commandTmpDir("orzo-udpfwd-");
}, 120_000);
afterAll(async () => {
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The command of a UDP echo server on address:port ("::" serves IPv4 too). */
function echoServer(port: number, address = "::"): string {
  return `${bun} ${join(import.meta.dir, "fixtures", "udp-echo.ts")} ${address} ${port}`;
}

/** Starts an echo server in the host namespace and waits until its port is bound. */
async function hostEchoServer(port: number, address: string): Promise<void> {
  host.spawn(echoServer(port, address).split(" "));
  const bound = await waitFor(async () => (await host.run(["ss", "-Hlun", `src ${address.includes(":") ? `[${address}]` : address}:${port}`])).stdout.trim() !== "", 5000);
  if (!bound) throw new Error(`the host's echo server on ${address}:${port} did not start`);
}

/**
 * Runs orzo with ARGS and a namespace script that starts `server` and waits until the UDP ports are bound there;
 * orzo and the script stay until release() (or 30 s).
 */
async function holding(args: string[], server: string, ports: number[]): Promise<{ release: () => Promise<RunResult> }> {
  const id = nextPort++;
  const ready = join(tmp, `ready-${id}`);
  const done = join(tmp, `done-${id}`);
  const bound = ports.map((p) => `ss -Hlun "sport = :${p}" | grep -q .`).join(" && ");
  const wait = `n=0; while [ ! -e ${done} ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done`;
  const script = `${server} & pid=$!; while ! { ${bound}; }; do sleep 0.01; done; touch ${ready}; ${wait}; kill $pid`;
  const p = host.run([orzo, "pasta", "--config-net", ...OWN_ADDRESSES, ...args, "--", "sh", "-c", script], { timeoutMs: 45_000 });
  const ok = await waitFor(() => existsSync(ready), 10_000);
  if (!ok) throw new Error(`the namespace's servers did not start: ${JSON.stringify(await Promise.race([p, Bun.sleep(100)]))}`);
  return {
    release: async () => {
      writeFileSync(done, "");
      return p;
    },
  };
}

const roundtrip = join(import.meta.dir, "fixtures", "udp-roundtrip.ts");
const INTACT = { size: 60_000, received: 60_000, intact: true };

/** Sends one 60,000-byte datagram from the router or the host to an echo server; returns what the round trip found. */
async function echo(from: "router" | "host", address: string, port: number): Promise<unknown> {
  const cmd = [bun, roundtrip, address, String(port), "60000"];
  const r = from === "router" ? await host.runRouter(cmd, { timeoutMs: 15_000 }) : await host.run(cmd, { timeoutMs: 15_000 });
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout);
}

describe("-u: host ports into the namespace", () => {
  test("from a remote peer over the tap, IPv4 and IPv6, a 60,000-byte datagram echoed intact", async () => {
    const port = nextPort++;
    const h = await holding(["-d", "-u", String(port)], echoServer(port), [port]);
    expect(await echo("router", TOPOLOGY.host4, port)).toEqual(INTACT);
    expect(await echo("router", TOPOLOGY.host6, port)).toEqual(INTACT);
    const r = await h.release();
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`HOST [${TOPOLOGY.router4}]`);
    expect(r.stderr).toMatch(new RegExp(`=> TAP \\[${TOPOLOGY.router4}\\]:[0-9]+ -> \\[10\\.0\\.2\\.15\\]:${port}`));
    expect(r.stderr).toMatch(new RegExp(`=> TAP \\[${TOPOLOGY.router6}\\]:[0-9]+ -> \\[fd00::15\\]:${port}`));
  });

  test("a mapped port: host port P reaches the namespace's port Q", async () => {
    const [hostPort, nsPort] = [nextPort++, nextPort++];
    const h = await holding(["-u", `${hostPort}:${nsPort}`], echoServer(nsPort), [nsPort]);
    expect(await echo("router", TOPOLOGY.host4, hostPort)).toEqual(INTACT);
    expect((await h.release()).code).toBe(0);
  });

  test("from the host's loopback, spliced to the namespace's address, IPv4 and IPv6, intact", async () => {
    const port = nextPort++;
    const h = await holding(["-d", "-u", String(port)], echoServer(port), [port]);
    expect(await echo("host", "127.0.0.1", port)).toEqual(INTACT);
    expect(await echo("host", "::1", port)).toEqual(INTACT);
    const r = await h.release();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`HOST \\[127\\.0\\.0\\.1\\]:[0-9]+ -> \\[127\\.0\\.0\\.1\\]:${port} => SPLICE \\[10\\.0\\.2\\.15\\]:[0-9]+ -> \\[10\\.0\\.2\\.15\\]:${port}`));
    expect(r.stderr).toMatch(new RegExp(`HOST \\[::1\\]:[0-9]+ -> \\[::1\\]:${port} => SPLICE \\[fd00::15\\]:[0-9]+ -> \\[fd00::15\\]:${port}`));
  });

  test("--host-lo-to-ns-lo: the host's loopback reaches a server bound to the namespace's loopback", async () => {
    const port = nextPort++;
    const h = await holding(["--host-lo-to-ns-lo", "-u", String(port)], echoServer(port, "127.0.0.1"), [port]);
    expect(await echo("host", "127.0.0.1", port)).toEqual(INTACT);
    expect((await h.release()).code).toBe(0);
  });

  test("200 flows at once through one -u port, two datagrams each, every echo intact", async () => {
    const port = nextPort++;
    const h = await holding(["-u", String(port)], echoServer(port), [port]);
    const client = join(import.meta.dir, "fixtures", "udp-client.ts");
    const c = await host.runRouter([bun, client, TOPOLOGY.host4, String(port), "200", "1200", "2", "40"], { timeoutMs: 60_000 });
    expect(c.stderr).toBe("");
    expect(JSON.parse(c.stdout)).toEqual({ sent: 400, intact: 400, corrupt: 0, missing: 0 });
    expect((await h.release()).code).toBe(0);
  }, 90_000);
});

describe("-U: the namespace's loopback to the host's", () => {
  test("to a host loopback echo server, IPv4 and IPv6, a 60,000-byte datagram intact", async () => {
    const port = nextPort++;
    await hostEchoServer(port, "127.0.0.1");
    await hostEchoServer(port, "::1");
    const script = `${bun} ${roundtrip} 127.0.0.1 ${port} 60000 && ${bun} ${roundtrip} ::1 ${port} 60000`;
    const r = await host.run([orzo, "pasta", "-d", "--config-net", ...OWN_ADDRESSES, "-U", String(port), "--", "sh", "-c", script], { timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").map((l) => JSON.parse(l))).toEqual([INTACT, INTACT]);
    expect(r.stderr).toMatch(new RegExp(`SPLICE \\[127\\.0\\.0\\.1\\]:[0-9]+ -> \\[127\\.0\\.0\\.1\\]:${port} => HOST \\[127\\.0\\.0\\.1\\]:[0-9]+ -> \\[127\\.0\\.0\\.1\\]:${port}`));
    expect(r.stderr).toMatch(new RegExp(`SPLICE \\[::1\\]:[0-9]+ -> \\[::1\\]:${port} => HOST \\[::1\\]:[0-9]+ -> \\[::1\\]:${port}`));
  });
});

describe("automatic UDP forwarding", () => {
  test("-u auto: a server started in the namespace after orzo is reachable from a remote peer within 2 s", async () => {
    const port = nextPort++;
    // No -u: auto is pasta's default. The server starts only once orzo runs (it is orzo's command).
    const h = await holding(["-d"], echoServer(port), [port]);
    const started = performance.now();
    let answered = false;
    while (!answered && performance.now() - started < 4000) {
      // Short waits: the host's ICMP errors for a port not yet forwarded are rate-limited, so silence is common.
      const r = await host.runRouter([bun, roundtrip, TOPOLOGY.host4, String(port), "100", "200"]);
      answered = r.code === 0 && (JSON.parse(r.stdout) as { intact: boolean }).intact;
    }
    const elapsed = performance.now() - started;
    expect(answered).toBe(true);
    expect(elapsed).toBeLessThan(2500);
    const r = await h.release();
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`udp port ${port} bound on the other side, listening`);
  });

  test("-U auto: a host loopback server is reachable from the namespace; orzo's own listeners are not forwarded back", async () => {
    const port = nextPort++;
    await hostEchoServer(port, "127.0.0.1");
    // The command runs past two scans of the namespace, where -u auto must leave orzo's -U listener alone.
    const script = `${bun} ${roundtrip} 127.0.0.1 ${port} 1000; sleep 2.2`;
    const r = await host.run([orzo, "pasta", "-d", "--config-net", ...OWN_ADDRESSES, "--", "sh", "-c", script], { timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ size: 1000, received: 1000, intact: true });
    expect(r.stderr).toContain(`udp port ${port} bound on the other side, listening`);
    // -U auto listens on the port in the namespace; -u auto must not listen on it on the host in turn.
    expect(r.stderr.match(new RegExp(`udp port ${port} bound on the other side`, "g"))?.length).toBe(1);
  });
});

describe("-u port specifications", () => {
  test("malformed specs are one line and exit 1", async () => {
    for (const spec of ["70000", "8080-80", "1-3:5-8", "abc", "none,80", "0.0.0.0/81:[::1]/81"]) {
      const r = await host.run([orzo, "pasta", "-u", spec, "--", "true"]);
      expect({ spec, code: r.code }).toEqual({ spec, code: 1 });
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  test("a port that cannot be bound is reported in one line and orzo exits 1", async () => {
    const port = nextPort++;
    const reply = join(import.meta.dir, "fixtures", "udp-reply.ts");
    host.spawn([bun, reply, "0.0.0.0", String(port), "1"]);
    expect(await waitFor(async () => (await host.run(["ss", "-Hlun", `sport = :${port}`])).stdout.trim() !== "", 5000)).toBe(true);
    const r = await host.run([orzo, "pasta", "-u", String(port), "--", "true"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`UDP port ${port}`);
  });
});

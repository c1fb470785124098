/**
 * Options end to end: `orzo pasta` in a test host namespace, and what the namespace's own tools see. The protocol
 * switches (--no-tcp, --no-udp, --no-icmp, -4) against a TCP and a UDP echo through the gateway (which means the
 * host's loopback, where socat answers), ping and ping -6; the address mappings; the interface and copy options of
 * --config-net; --freebind; --no-netns-quit. The in-process tests of the switches are in options-effects.test.ts.
 *
 * The host namespace gets more than the usual test host: a second address on eth0 (198.51.100.2), a route to
 * 192.0.2.0/24 through the router, and a second interface, side0 (a veth pair's end, 203.0.113.1/24, a default route of its
 * own with a lower priority), to take as a template.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { must, run, TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";

const TCP_ECHO = 7101;
const UDP_ECHO = 7102;
/** A UDP echo on the host's own address (7102 listens on its loopback). */
const UDP_ECHO_HOST = 7103;
const GATEWAY4 = TOPOLOGY.router4;

let host: TestHost;
let orzo: string;
let tmp: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("opts");
  tmp = mkdtempSync(join(tmpdir(), "orzo-opts-"));
  const ip = ["ip", "-n", host.name];
  await must([...ip, "addr", "add", "198.51.100.2/24", "dev", "eth0"]);
  await must([...ip, "route", "add", "192.0.2.0/24", "via", TOPOLOGY.router4]);
  await must([...ip, "link", "add", "side0", "type", "veth", "peer", "name", "side1"]);
  await must([...ip, "addr", "add", "203.0.113.1/24", "dev", "side0"]);
  await must([...ip, "link", "set", "side0", "up"]);
  await must([...ip, "link", "set", "side1", "up"]);
  await must([...ip, "route", "add", "default", "via", "203.0.113.254", "dev", "side0", "metric", "500"]);
  host.spawn(["socat", `TCP4-LISTEN:${TCP_ECHO},bind=127.0.0.1,fork,reuseaddr`, "PIPE"]);
  host.spawn(["socat", `UDP4-RECVFROM:${UDP_ECHO},bind=127.0.0.1,fork`, "PIPE"]);
  host.spawn(["socat", `UDP4-RECVFROM:${UDP_ECHO_HOST},bind=${TOPOLOGY.host4},fork`, "PIPE"]);
  const ready = await waitFor(async () => {
    const out = (await host.run(["ss", "-Hltun"])).stdout;
    return [`127.0.0.1:${TCP_ECHO} `, `127.0.0.1:${UDP_ECHO} `, `${TOPOLOGY.host4}:${UDP_ECHO_HOST} `].every((s) => out.includes(s));
  }, 5000, 20);
  if (!ready) throw new Error("echo servers not listening in time");
}, 60_000);
afterAll(async () => {
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Runs `orzo pasta ARGS -- sh -c SCRIPT` in the host namespace; returns its stdout, after checking it succeeded. */
async function inPasta(args: string[], script: string): Promise<string> {
  const r = await host.run([orzo, "pasta", ...args, "--", "sh", "-c", script], { timeoutMs: 30_000 });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

/** A shell line that prints the UDP echo of "udp" from ADDRESS:PORT (nothing when none comes within a second). */
const udpEcho = (address: string, port: number) => `echo udp | socat -t 1 - UDP4:${address}:${port} 2>/dev/null`;

/** What the namespace's tools get with these options: each probe is true when it worked. */
async function probes(options: string[]) {
  const script = [
    `t=$(echo tcp | socat -t 1 - TCP4:${GATEWAY4}:${TCP_ECHO},connect-timeout=2 2>/dev/null)`,
    `u=$(${udpEcho(GATEWAY4, UDP_ECHO)})`,
    `ping -c 1 -W 2 ${GATEWAY4} >/dev/null 2>&1 && p=1 || p=0`,
    `ping -6 -c 1 -W 2 ${TOPOLOGY.router6} >/dev/null 2>&1 && p6=1 || p6=0`,
    `a6=$(ip -6 -o addr show scope global | wc -l)`,
    `echo "tcp=$t udp=$u ping=$p ping6=$p6 v6=$a6"`,
  ].join("\n");
  const out = await inPasta(["--config-net", ...options], script);
  const got = Object.fromEntries(out.trim().split(" ").map((kv) => kv.split("=")));
  return { tcp: got.tcp === "tcp", udp: got.udp === "udp", ping: got.ping === "1", ping6: got.ping6 === "1", ipv6Addresses: Number(got.v6) };
}

describe("protocol switches in a pasta namespace", () => {
  test("without switches everything works; --no-tcp and --no-udp stop their protocol only", async () => {
    expect(await probes([])).toEqual({ tcp: true, udp: true, ping: true, ping6: true, ipv6Addresses: 1 });
    expect(await probes(["--no-tcp"])).toEqual({ tcp: false, udp: true, ping: true, ping6: true, ipv6Addresses: 1 });
    expect(await probes(["--no-udp"])).toEqual({ tcp: true, udp: false, ping: true, ping6: true, ipv6Addresses: 1 });
  }, 60_000);

  test("--no-icmp stops ping (and NDP, so ping -6 too); -4 leaves the namespace without IPv6", async () => {
    expect(await probes(["--no-icmp"])).toEqual({ tcp: true, udp: true, ping: false, ping6: false, ipv6Addresses: 1 });
    expect(await probes(["-4"])).toEqual({ tcp: true, udp: true, ping: true, ping6: false, ipv6Addresses: 0 });
  }, 60_000);
});

describe("addressing options in a pasta namespace", () => {
  test("--map-host-loopback and --map-guest-addr: those addresses reach the host's loopback and its own address", async () => {
    const out = await inPasta(["--config-net", "--map-host-loopback", "10.0.2.98", "--map-guest-addr", "10.0.2.99"], [
      `echo "loopback=$(${udpEcho("10.0.2.98", UDP_ECHO)})"`,
      `echo "own=$(${udpEcho("10.0.2.99", UDP_ECHO_HOST)})"`,
      // The gateway is no longer the host's loopback: this goes to the router, where nothing answers.
      `echo "gateway=$(${udpEcho(GATEWAY4, UDP_ECHO)})"`,
    ].join("\n"));
    expect(out).toBe("loopback=udp\nown=udp\ngateway=\n");
  }, 30_000);

  test("-i takes another host interface as the template; --ns-mac-addr sets the tap's MAC", async () => {
    const out = await inPasta(["--config-net", "-4", "-i", "side0", "--ns-mac-addr", "02:42:00:00:00:07"], [
      // Not /sys: under ip netns exec, that is the host namespace's.
      "ip -br link show dev side0 | awk '{print $3}'",
      "ip -4 -o addr show dev side0 | awk '{print $4}'",
    ].join("\n"));
    expect(out).toBe("02:42:00:00:00:07\n203.0.113.1/24\n");
  }, 30_000);

  test("--config-net copies every address and route of the template; --no-copy-addrs and --no-copy-routes only one of each", async () => {
    const script = "ip -4 -o addr show dev eth0 | awk '{print $4}' | sort | tr '\\n' ' '; echo; ip -4 route | grep -c 192.0.2.0/24; true";
    expect(await inPasta(["--config-net"], script)).toBe("198.51.100.1/24 198.51.100.2/24 \n1\n");
    expect(await inPasta(["--config-net", "--no-copy-addrs"], script)).toBe("198.51.100.1/24 \n1\n");
    expect(await inPasta(["--config-net", "--no-copy-routes"], script)).toBe("198.51.100.1/24 198.51.100.2/24 \n0\n");
  }, 30_000);

  test("--freebind: -t listens on an address the host does not have (yet); without it that is an error", async () => {
    const spec = ["-t", "192.0.2.77/7105"];
    const without = await host.run([orzo, "pasta", ...spec, "--", "true"]);
    expect(without.code).toBe(1);
    expect(without.stderr).toContain("7105");
    expect(await inPasta([...spec, "--freebind"], "echo ok")).toBe("ok\n");
  }, 30_000);
});

describe("--no-netns-quit", () => {
  test("the namespace file removed, orzo goes on serving the namespace", async () => {
    const ns = `orzo-nq-${process.pid}`;
    const pidFile = join(tmp, "nq.pid");
    await must(["ip", "netns", "add", ns]);
    // Something in the namespace keeps it alive once the file is gone, and is how the test gets back in.
    const holder = Bun.spawn(["ip", "netns", "exec", ns, "sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    let pid = 0;
    try {
      expect(await waitFor(() => { try { return readFileSync(`/proc/${holder.pid}/comm`, "utf8").trim() === "sleep"; } catch { return false; } }, 5000)).toBe(true);
      // --runas 0: where orzo starts as root and runs as nobody, a namespace root made needs root (as in pasta).
      const r = await host.run([orzo, "pasta", "--runas", "0", "--config-net", "-4", "--no-netns-quit", "--netns", ns, "-P", pidFile]);
      expect(r.code).toBe(0);
      pid = Number(readFileSync(pidFile, "utf8").trim());
      await must(["ip", "netns", "del", ns]);
      const ping = await run(["nsenter", "-t", String(holder.pid), "-n", "ping", "-c", "1", "-W", "2", GATEWAY4]);
      expect(ping.code).toBe(0);
      expect(existsSync(`/proc/${pid}`)).toBe(true);
    } finally {
      holder.kill("SIGKILL");
      if (pid > 0) process.kill(pid, "SIGTERM");
      await run(["ip", "netns", "del", ns]);
    }
    expect(await waitFor(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
  }, 30_000);
});

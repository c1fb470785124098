/**
 * -o/--outbound and --outbound-if4/--outbound-if6 end to end: `orzo pasta` in a test host namespace, and what the
 * peer in the router namespace sees of the namespace's TCP, UDP and ping traffic: the source address and the
 * interface it came through (for TCP, socat listeners that print their peer's address, or listeners bound to each
 * of the router's interfaces that print its name; for UDP datagrams and echo requests, tcpdump on every
 * interface of the router).
 *
 * Besides the usual test host: a second address on each side of eth0 (198.51.100.2 and 2001:db8:1::2 on the
 * host, 198.51.100.253 and 2001:db8:1::fd on the router, which is not the gateway and so not the host's
 * loopback), and a second veth pair, eth1 (203.0.113.1/24 and 2001:db8:2::1/64 on the host, .254 and ::fe on the
 * router), with routes of lower priority than eth0's (IPv6 routes take metric 1024 by default). The router has 192.0.2.1 and 2001:db8:99::1 on its loopback,
 * reached through eth0 unless a socket is bound to eth1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { must, TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";
import { collectText } from "./helpers/process.ts";

const PEER4 = "198.51.100.253";
const PEER6 = "2001:db8:1::fd";
const SERVICE4 = "192.0.2.1";
const SERVICE6 = "2001:db8:99::1";
/** Router ports: TCP printing the peer's address, TCP printing the receiving interface, UDP captured. */
const TCP_PEER = 7201;
const TCP_IF = 7203;
const UDP = 7202;
/** A TCP service on the host's loopback that prints its peer: the gateway reaches it. */
const TCP_LOOPBACK = 7205;

let host: TestHost;
let orzo: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("outb");
  const ip = ["ip", "-n", host.name];
  const rip = ["ip", "-n", host.router];
  await must([...ip, "addr", "add", "198.51.100.2/24", "dev", "eth0"]);
  await must([...ip, "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad"]);
  await must([...rip, "addr", "add", `${PEER4}/24`, "dev", "eth0"]);
  await must([...rip, "addr", "add", `${PEER6}/64`, "dev", "eth0", "nodad"]);
  await must([...ip, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", host.router]);
  for (const [ns, v4, v6] of [[ip, "203.0.113.1", "2001:db8:2::1"], [rip, "203.0.113.254", "2001:db8:2::fe"]] as const) {
    await must([...ns, "addr", "add", `${v4}/24`, "dev", "eth1"]);
    await must([...ns, "addr", "add", `${v6}/64`, "dev", "eth1", "nodad"]);
    await must([...ns, "link", "set", "eth1", "up"]);
  }
  await must([...rip, "addr", "add", `${SERVICE4}/32`, "dev", "lo"]);
  await must([...rip, "addr", "add", `${SERVICE6}/128`, "dev", "lo"]);
  await must([...ip, "route", "add", "192.0.2.0/24", "via", TOPOLOGY.router4, "dev", "eth0"]);
  await must([...ip, "route", "add", "192.0.2.0/24", "via", "203.0.113.254", "dev", "eth1", "metric", "100"]);
  await must([...ip, "route", "add", "default", "via", "203.0.113.254", "dev", "eth1", "metric", "500"]);
  await must([...ip, "-6", "route", "add", "2001:db8:99::/64", "via", TOPOLOGY.router6, "dev", "eth0"]);
  await must([...ip, "-6", "route", "add", "2001:db8:99::/64", "via", "2001:db8:2::fe", "dev", "eth1", "metric", "2000"]);
  await must([...ip, "-6", "route", "add", "default", "via", "2001:db8:2::fe", "dev", "eth1", "metric", "3000"]);

  const inRouter = (argv: string[]) => host.spawn(["ip", "netns", "exec", host.router, ...argv]);
  for (const v of ["4", "6"]) {
    // IPv6 listeners take IPv6 only, so that the IPv4 ones can have the same ports.
    const only = v === "6" ? ",ipv6only=1" : "";
    inRouter(["socat", `TCP${v}-LISTEN:${TCP_PEER},fork,reuseaddr${only}`, "SYSTEM:echo $SOCAT_PEERADDR"]);
    for (const dev of ["eth0", "eth1"]) {
      inRouter(["socat", `TCP${v}-LISTEN:${TCP_IF},fork,reuseaddr,so-bindtodevice=${dev}${only}`, `SYSTEM:echo ${dev}`]);
    }
  }
  host.spawn(["socat", `TCP4-LISTEN:${TCP_LOOPBACK},bind=127.0.0.1,fork,reuseaddr`, "SYSTEM:echo $SOCAT_PEERADDR"]);
  const ready = await waitFor(async () => {
    const r = (await host.runRouter(["ss", "-Hltn"])).stdout;
    const h = (await host.run(["ss", "-Hltn"])).stdout;
    const ports = [TCP_PEER, TCP_IF].map((p) => r.split("\n").filter((l) => l.includes(`:${p} `)).length);
    return ports.join() === "2,4" && h.includes(`127.0.0.1:${TCP_LOOPBACK} `);
  }, 5000, 20);
  if (!ready) throw new Error("router services not listening in time");
}, 60_000);
afterAll(async () => {
  await host?.destroy();
});

/** Runs `orzo pasta --config-net ARGS -- sh -c SCRIPT` in the host namespace; returns its stdout once it succeeded. */
async function inPasta(args: string[], script: string): Promise<string> {
  const r = await host.run([orzo, "pasta", "--config-net", ...args, "--", "sh", "-c", script], { timeoutMs: 30_000 });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

/** The canonical text of an IPv6 address as socat prints it ("[2001:0db8:...]"); other text as it is. */
const canonical = (text: string) => (text.startsWith("[") ? new URL(`http://${text}/`).hostname : text);

/**
 * A shell script that, for each address (IPv4 or IPv6), prints what the router's TCP service on port answers,
 * then sends a UDP datagram and an echo request there.
 */
function probes(addresses: string[], port: number): string {
  return addresses.flatMap((address) => {
    const v = address.includes(":") ? "6" : "4";
    const a = v === "6" ? `[${address}]` : address;
    return [
      `socat -t 2 - TCP${v}:${a}:${port},connect-timeout=2 </dev/null 2>/dev/null || echo none`,
      `echo x | socat -u - UDP${v}:${a}:${UDP}`,
      `ping -${v} -c 1 -W 2 ${address} >/dev/null 2>&1 || echo no-reply`,
    ];
  }).join("\n");
}

/** What tcpdump showed of a UDP datagram or an echo request: the interface it came in on and its source. */
interface Seen {
  readonly dev: string;
  readonly src: string;
  readonly what: "udp" | "echo";
}

/**
 * Runs fn while tcpdump captures UDP datagrams to port UDP and echo requests on every interface of the router;
 * returns fn's result and the first `expected` packets seen (a UDP datagram may pass the echo request sent after it).
 */
async function capturing<T>(expected: number, fn: () => Promise<T>): Promise<[T, Seen[]]> {
  const filter = `udp port ${UDP} or icmp[icmptype] == icmp-echo or (icmp6 and ip6[40] == 128)`;
  const dump = host.spawn(["ip", "netns", "exec", host.router, "tcpdump", "-i", "any", "-n", "-t", "-l", "--immediate-mode", filter]);
  try {
    const stderr = collectText(dump.stderr as ReadableStream<Uint8Array>);
    const stdout = collectText(dump.stdout as ReadableStream<Uint8Array>);
    expect(await waitFor(() => stderr().includes("listening on"), 5000)).toBe(true);
    const result = await fn();
    // "eth1  In  IP 203.0.113.1.40000 > 192.0.2.1.7202: UDP, length 2", "eth0  In  IP6 2001:db8:1::2 > …: ICMP6, echo request"
    const seen = () => stdout().split("\n").flatMap((line): Seen[] => {
      const m = /^(\S+)\s+In\s+IP6? (\S+) > /.exec(line);
      if (!m) return [];
      const udp = line.includes(": UDP");
      return [{ dev: m[1], src: udp ? m[2].replace(/\.\d+$/, "") : m[2], what: udp ? "udp" : "echo" }];
    });
    expect(await waitFor(() => seen().length >= expected, 5000)).toBe(true);
    return [result, seen().slice(0, expected)];
  } finally {
    dump.kill("SIGKILL");
  }
}

describe("-o/--outbound", () => {
  test("TCP, UDP and ping toward the host side leave from the -o address of their IP version", async () => {
    for (const [a4, a6] of [[TOPOLOGY.host4, TOPOLOGY.host6], ["198.51.100.2", "2001:db8:1::2"]]) {
      const [out, seen] = await capturing(4, () => inPasta(["-o", a4, "--outbound", a6], probes([PEER4, PEER6], TCP_PEER)));
      expect(out.trim().split("\n").map(canonical)).toEqual([a4, `[${a6}]`]);
      expect(seen.map((p) => `${p.dev} ${p.src} ${p.what}`).sort()).toEqual([
        `eth0 ${a4} echo`, `eth0 ${a4} udp`, `eth0 ${a6} echo`, `eth0 ${a6} udp`,
      ]);
    }
  }, 60_000);

  test("the gateway still reaches the host's loopback, from the loopback", async () => {
    const out = await inPasta(["-4", "-o", "198.51.100.2"], `socat -t 2 - TCP4:${TOPOLOGY.router4}:${TCP_LOOPBACK} </dev/null`);
    expect(out).toBe("127.0.0.1\n");
  }, 30_000);
});

describe("--outbound-if4 and --outbound-if6", () => {
  test("TCP, UDP and ping leave through that interface, which is the template too", async () => {
    const script = `${probes([SERVICE4, SERVICE6], TCP_IF)}\nip -4 -o addr show scope global | awk '{print $4}'`;
    for (const [args, dev, addresses] of [[[], "eth0", "198.51.100.1/24\n198.51.100.2/24"], [["--outbound-if4", "eth1", "--outbound-if6", "eth1"], "eth1", "203.0.113.1/24"]] as const) {
      const [out, seen] = await capturing(4, () => inPasta([...args], script));
      expect(out).toBe(`${dev}\n${dev}\n${addresses}\n`);
      expect(seen.map((p) => `${p.dev} ${p.what}`).sort()).toEqual([`${dev} echo`, `${dev} echo`, `${dev} udp`, `${dev} udp`]);
    }
  }, 60_000);
});

describe("bad values", () => {
  test("a bad address, an address of the wrong IP version, an unknown interface: one line, status 1", async () => {
    const cases: [string[], string][] = [
      [["-o", "198.51.100.300"], "orzo: invalid value for -o: '198.51.100.300' is not an IPv4 or IPv6 address\n"],
      [["-o", "127.0.0.1"], "orzo: invalid value for -o: '127.0.0.1' is a loopback address\n"],
      [["--outbound", "::ffff:198.51.100.2"], "orzo: invalid value for --outbound: '::ffff:198.51.100.2' is an IPv4-mapped IPv6 address: give the IPv4 address\n"],
      [["-4", "-o", "2001:db8:1::2"], "orzo: option '--outbound 2001:db8:1::2' is IPv6, which '--ipv4-only' switches off\n"],
      [["--outbound-if6", "eth1", "-4"], "orzo: option '--outbound-if6' conflicts with '--ipv4-only'\n"],
      [["--outbound-if4", "nosuch0"], "orzo: --outbound-if4: the host has no interface named 'nosuch0'\n"],
      [["-i", "eth0", "--outbound-if6", "nosuch0"], "orzo: --outbound-if6: the host has no interface named 'nosuch0'\n"],
    ];
    // passt's socket file outlives a failure where stage 2 runs as nobody: it goes with the directory.
    const dir = mkdtempSync(join(tmpdir(), "orzo-outb-"));
    try {
      for (const [args, stderr] of cases) {
        for (const mode of ["pasta", "passt"]) {
          const r = await host.run([orzo, mode, ...args, ...(mode === "pasta" ? ["--", "true"] : ["-1", "-s", join(dir, "passt.socket")])]);
          expect({ mode, args, r }).toEqual({ mode, args, r: { code: 1, stdout: "", stderr } });
          rmSync(join(dir, "passt.socket"), { force: true });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

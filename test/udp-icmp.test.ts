/**
 * ICMP errors for UDP end to end: `orzo pasta --config-net` in a test host namespace, a UDP client in the
 * namespace, and the router namespace's kernel as the node that reports the errors.
 *
 * Behind the router is a second link, nb0 (a veth pair whose other end answers nothing), with an MTU of 1280 and
 * fast neighbour timeouts: a datagram to an address there either exceeds the link's MTU (the router answers
 * "fragmentation needed" / "packet too big" with 1280) or finds no neighbour (the router answers "host
 * unreachable" / "address unreachable"). A closed port on the router itself gets "port unreachable". Each case
 * is observed from the client's side: the errno of its next recv and, where it sets IP_RECVERR, the ICMP error
 * its own kernel took from orzo's message.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { must, TestHost, TOPOLOGY } from "./helpers/netns.ts";

const FIXTURE = join(import.meta.dir, "fixtures", "udp-icmp-error.ts");
const CLOSED = 7999;
const BEHIND4 = "203.0.113.9";
const BEHIND6 = "2001:db8:3::9";
const BIG4 = "203.0.113.10";
const BIG6 = "2001:db8:3::10";

let host: TestHost;
let orzo: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("icmp");
  const r = ["ip", "-n", host.router];
  await must([...r, "link", "add", "nb0", "mtu", "1280", "type", "veth", "peer", "name", "nb1"]);
  await must([...r, "addr", "add", "203.0.113.254/24", "dev", "nb0"]);
  await must([...r, "addr", "add", "2001:db8:3::fe/64", "dev", "nb0", "nodad"]);
  await must([...r, "link", "set", "nb0", "up"]);
  await must([...r, "link", "set", "nb1", "up"]);
  const sysctls = [
    "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.neigh.nb0.retrans_time_ms=100", "net.ipv6.neigh.nb0.retrans_time_ms=100",
  ];
  await must(["ip", "netns", "exec", host.router, "sysctl", "-qw", ...sysctls]);
}, 60_000);
afterAll(async () => {
  await host?.destroy();
});

/** Runs the fixture once per argument list in one `orzo pasta --config-net` namespace; returns its JSON lines. */
async function inNamespace(runs: string[][]): Promise<Record<string, unknown>[]> {
  const script = runs.map((a) => [process.execPath, FIXTURE, ...a].join(" ")).join(" && ");
  const r = await host.run([orzo, "pasta", "--config-net", "--", "sh", "-c", script], { timeoutMs: 30_000 });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout.trim().split("\n").map((line) => JSON.parse(line));
}

describe("ICMP errors for UDP flows from the namespace", () => {
  test("a closed port on the router: the client's next recv fails with ECONNREFUSED within 2 s, IPv4 and IPv6", async () => {
    const [v4, v6] = await inNamespace([
      [TOPOLOGY.router4, String(CLOSED), "32"],
      [TOPOLOGY.router6, String(CLOSED), "32"],
    ]);
    for (const r of [v4, v6]) {
      expect(r.errno).toBe("ECONNREFUSED");
      expect(r.ms as number).toBeLessThan(2000);
    }
  }, 60_000);

  test("host unreachable, and fragmentation needed / packet too big with the router's MTU, as the client's kernel reads them", async () => {
    const got = await inNamespace([
      ["--recverr", BEHIND4, String(CLOSED), "32"],
      ["--recverr", BEHIND6, String(CLOSED), "32"],
      ["--recverr", BIG4, String(CLOSED), "1400"],
      ["--recverr", BIG6, String(CLOSED), "1400"],
    ]);
    // Origin 2 is ICMP, 3 ICMPv6; the offender is the router, as the namespace sees it.
    expect(got).toEqual([
      { errno: "EHOSTUNREACH", ms: expect.any(Number), origin: 2, type: 3, code: 1, info: 0, offender: TOPOLOGY.router4 },
      { errno: "EHOSTUNREACH", ms: expect.any(Number), origin: 3, type: 1, code: 3, info: 0, offender: TOPOLOGY.router6 },
      { errno: "EMSGSIZE", ms: expect.any(Number), origin: 2, type: 3, code: 4, info: 1280, offender: TOPOLOGY.router4 },
      { errno: "EMSGSIZE", ms: expect.any(Number), origin: 3, type: 2, code: 0, info: 1280, offender: TOPOLOGY.router6 },
    ]);
    for (const r of got) expect(r.ms as number).toBeLessThan(2000);
  }, 60_000);
});

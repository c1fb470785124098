/**
 * Protocol switches end to end: `orzo pasta --config-net` in a test host namespace, with and without each of
 * --no-tcp, --no-udp, --no-icmp and -4, and what the namespace's own tools get: a TCP and a UDP echo through the
 * gateway (which means the host's loopback, where socat answers), ping and ping -6, and the IPv6 addresses on the
 * tap. The in-process tests of each switch are in options-effects.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";

const TCP_ECHO = 7101;
const UDP_ECHO = 7102;
const GATEWAY4 = TOPOLOGY.router4;

let host: TestHost;
let orzo: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("opts");
  host.spawn(["socat", `TCP4-LISTEN:${TCP_ECHO},bind=127.0.0.1,fork,reuseaddr`, "PIPE"]);
  host.spawn(["socat", `UDP4-RECVFROM:${UDP_ECHO},bind=127.0.0.1,fork`, "PIPE"]);
  const ready = await waitFor(async () => {
    const out = (await host.run(["ss", "-Hltun"])).stdout;
    return out.includes(`127.0.0.1:${TCP_ECHO} `) && out.includes(`127.0.0.1:${UDP_ECHO} `);
  }, 5000, 20);
  if (!ready) throw new Error("echo servers not listening in time");
}, 60_000);
afterAll(async () => {
  await host?.destroy();
});

/** What the namespace's tools get with these options: each probe is true when it worked. */
async function probes(options: string[]) {
  const script = [
    `t=$(echo tcp | socat -t 1 - TCP4:${GATEWAY4}:${TCP_ECHO},connect-timeout=2 2>/dev/null)`,
    `u=$(echo udp | socat -t 1 - UDP4:${GATEWAY4}:${UDP_ECHO} 2>/dev/null)`,
    `ping -c 1 -W 2 ${GATEWAY4} >/dev/null 2>&1 && p=1 || p=0`,
    `ping -6 -c 1 -W 2 ${TOPOLOGY.router6} >/dev/null 2>&1 && p6=1 || p6=0`,
    `a6=$(ip -6 -o addr show scope global | wc -l)`,
    `echo "tcp=$t udp=$u ping=$p ping6=$p6 v6=$a6"`,
  ].join("\n");
  const r = await host.run([orzo, "pasta", "--config-net", ...options, "--", "sh", "-c", script], { timeoutMs: 30_000 });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const got = Object.fromEntries(r.stdout.trim().split(" ").map((kv) => kv.split("=")));
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

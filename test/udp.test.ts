/**
 * UDP end to end: `orzo pasta --config-net` in a test host namespace, real peers on both sides (socat echo
 * servers and dnsmasq on the host, socat, busybox nslookup and a many-socket client in the namespace).
 *
 * The namespace gets addresses of its own (10.0.2.15, fd00::15) instead of copies of the host's, so that the
 * host's own addresses are reachable from it as remote ones; its gateways 10.0.2.2 and fd00::2 mean the host's
 * loopback.
 */
import { commandTmpDir } from "./helpers/process.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";
import { replyPattern } from "./fixtures/udp-reply.ts";

const OWN_ADDRESSES = ["-a", "10.0.2.15/24", "-g", "10.0.2.2", "-a", "fd00::15/64", "-g", "fd00::2"];
const ECHO4 = 7004;
const ECHO6 = 7006;

let host: TestHost;
let orzo: string;
let tmp: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("udp");
  tmp = commandTmpDir("orzo-udp-");
  host.spawn(["socat", "-b", "65536", `UDP4-RECVFROM:${ECHO4},fork`, "PIPE"]);
  host.spawn(["socat", "-b", "65536", `UDP6-RECVFROM:${ECHO6},fork,ipv6only=1`, "PIPE"]);
  await waitForUdpPorts([ECHO4, ECHO6]);
}, 120_000);
afterAll(async () => {
  await host?.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

/** Waits until UDP sockets are bound to these ports in the host namespace. */
async function waitForUdpPorts(ports: number[]): Promise<void> {
  const ok = await waitFor(async () => {
    const out = (await host.run(["ss", "-Hlun"])).stdout;
    return ports.every((p) => new RegExp(`:${p}\\s`).test(out));
  }, 5000, 20);
  if (!ok) throw new Error(`UDP ports ${ports.join(", ")} not bound in time`);
}

/** Runs `orzo pasta ARGS -- sh -c SCRIPT` in the host namespace. */
function pasta(args: string[], script: string, timeoutMs = 30_000) {
  return host.run([orzo, "pasta", ...args, "--", "sh", "-c", script], { timeoutMs });
}

describe("UDP from the namespace", () => {
  test("echo through the host's address and through the gateway (the host's loopback), IPv4 and IPv6, 60,000 bytes intact", async () => {
    const data = new Uint8Array(60_000);
    crypto.getRandomValues(data);
    writeFileSync(join(tmp, "d60k"), data);
    const targets = [
      ["host4", `UDP4:${TOPOLOGY.host4}:${ECHO4}`],
      ["gw4", `UDP4:10.0.2.2:${ECHO4}`],
      ["host6", `UDP6:[${TOPOLOGY.host6}]:${ECHO6}`],
      ["gw6", `UDP6:[fd00::2]:${ECHO6}`],
    ];
    const script = targets.map(([name, addr]) => `socat -b 65536 -t 3 - ${addr} < ${tmp}/d60k > ${tmp}/${name} &`).join("\n") + "\nwait";
    const r = await pasta(["--config-net", ...OWN_ADDRESSES], script);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const [name] of targets) {
      const got = readFileSync(join(tmp, name));
      expect({ name, length: got.length }).toEqual({ name, length: data.length });
      expect(Buffer.compare(got, data)).toBe(0);
    }
  }, 60_000);

  test("the largest datagrams the host can send, 65,507 bytes over IPv4 and 65,527 over IPv6, reach the namespace intact", async () => {
    const reply = join(import.meta.dir, "fixtures", "udp-reply.ts");
    host.spawn([process.execPath, reply, "0.0.0.0", "7010", "65507"]);
    host.spawn([process.execPath, reply, "::", "7011", "65527"]);
    await waitForUdpPorts([7010, 7011]);
    const r = await pasta(["--config-net", ...OWN_ADDRESSES], [
      `echo 4 | socat -b 70000 -t 3 - UDP4:10.0.2.2:7010 > ${tmp}/big4 &`,
      `echo 6 | socat -b 70000 -t 3 - UDP6:[${TOPOLOGY.host6}]:7011 > ${tmp}/big6 &`,
      "wait",
    ].join("\n"));
    expect(r.stderr).toBe("");
    for (const [name, size] of [["big4", 65507], ["big6", 65527]] as const) {
      const got = readFileSync(join(tmp, name));
      expect({ name, length: got.length }).toEqual({ name, length: size });
      expect(Buffer.compare(got, replyPattern(size))).toBe(0);
    }
  }, 60_000);

  test("200 flows at once, two datagrams each, every echo intact", async () => {
    // One process answers everything: socat's fork per datagram loses replies under a burst of 200 new peers.
    host.spawn([process.execPath, join(import.meta.dir, "fixtures", "udp-echo.ts"), "0.0.0.0", "7020"]);
    await waitForUdpPorts([7020]);
    const client = join(import.meta.dir, "fixtures", "udp-client.ts");
    const r = await pasta(["--config-net", ...OWN_ADDRESSES], `${process.execPath} ${client} ${TOPOLOGY.host4} 7020 200 1200 2 40`, 60_000);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ sent: 400, intact: 400, corrupt: 0, missing: 0 });
  }, 90_000);

  test("DNS to the --dns-forward addresses is answered by the host's resolver, from the forward addresses", async () => {
    host.spawn([
      "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
      "--listen-address=::1", "--port=53", "--user=root", "--pid-file=", "--log-facility=-",
      "--address=/test.orzo.test/192.0.2.7", "--address=/test.orzo.test/2001:db8:99::7",
    ]);
    await waitForUdpPorts([53]);
    const r = await pasta(
      ["--config-net", "--dns-forward", "169.254.0.1", "--dns-forward", "fd00::53", "--dns-host", "127.0.0.1", "--dns-host", "::1"],
      "busybox nslookup test.orzo.test 169.254.0.1; echo ===; busybox nslookup test.orzo.test fd00::53",
    );
    const [over4, over6] = r.stdout.split("===\n");
    for (const [out, server] of [[over4, "169.254.0.1:53"], [over6, "[fd00::53]:53"]]) {
      expect(out).toContain(`Address:\t${server}`);
      expect(out).toMatch(/Address: 192\.0\.2\.7$/m);
      expect(out).toMatch(/Address: 2001:db8:99::7$/m);
    }
  }, 60_000);
});

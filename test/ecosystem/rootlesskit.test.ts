/**
 * RootlessKit 2 with `--net=pasta --port-driver=implicit`, as rootless Podman and rootless Docker use it (issue
 * 18), with orzo as the `pasta` that RootlessKit finds first in PATH, and every check again with Debian 13's pasta
 * as the reference in the same run. RootlessKit runs pasta with a tap0 of 10.0.2.100/24, the gateway 10.0.2.2
 * (the host's loopback: no --disable-host-loopback) and `-t auto -u auto`, which is how the implicit port driver
 * publishes what the child listens on. The host side is the test host namespace (rootless.ts); transfers are
 * compared by sha256.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TOPOLOGY } from "../helpers/netns.ts";
import { DEBIAN13_BUILD_TIMEOUT_MS, DEBIAN13_PATH } from "./debian13.ts";
import { exited, fetchSha, hashService, randomFile, serveFile, waitBound } from "./host-services.ts";
import { pastaTargets, RootlessRoot, type PastaTarget } from "./rootless.ts";

const CASE_TIMEOUT_MS = 120_000;
const GATEWAY = "10.0.2.2";

let eco: RootlessRoot;
let big: string;
let bigSha: string;

/** Ports of one target's checks, apart from the other target's. */
function ports(target: PastaTarget) {
  const base = target.id === "orzo" ? 18_400 : 18_500;
  return { down: base + 1, up: base + 2, childLo: base + 11, childHost: base + 12 };
}

beforeAll(async () => {
  eco = await RootlessRoot.create("rlk", { image: false, log: (line) => console.error(line) });
  mkdirSync(join(eco.tmp, "data"));
  big = join(eco.tmp, "data", "big");
  bigSha = randomFile(big, 16 << 20);
  for (const t of pastaTargets()) {
    const p = ports(t);
    serveFile(eco.host, "127.0.0.1", p.down, big);
    hashService(eco.host, "127.0.0.1", p.up);
    await waitBound(eco.root.holder, "tcp", [p.down, p.up]);
  }
}, DEBIAN13_BUILD_TIMEOUT_MS + 120_000);
afterAll(async () => {
  await eco?.close();
});

/** The rootlesskit command line, the child's shell script last; pasta is found through PATH. */
function rootlesskit(script: string): string[] {
  return ["rootlesskit", "--net=pasta", "--port-driver=implicit", "sh", "-c", script];
}

/** PATH with the target's `pasta` first, as a user who installs orzo as pasta has it. */
function pathFor(target: PastaTarget): Record<string, string> {
  return { PATH: `${eco.helperDir(target)}:${DEBIAN13_PATH}` };
}

for (const target of pastaTargets()) {
  describe(`RootlessKit --net=pasta with ${target.title}`, () => {
    const p = ports(target);

    test("tap0 has 10.0.2.100/24, the default route via 10.0.2.2, MTU 65520 and no IPv6 address (--ipv4-only)", async () => {
      const r = await eco.runAsUser(target, rootlesskit("command -v pasta; ip addr show dev tap0; echo ===; ip route; echo ===; cat /sys/class/net/tap0/mtu"), { env: pathFor(target) });
      expect(r.code, r.stderr).toBe(0);
      const [addr, route, mtu] = r.stdout.split("===\n");
      expect(addr.split("\n")[0]).toBe(join(eco.helperDir(target), "pasta"));
      expect(addr).toMatch(/^\s+inet 10\.0\.2\.100\/24 /m);
      expect(addr).not.toMatch(/^\s+inet6 .* scope global/m);
      expect(route).toMatch(new RegExp(`^default via ${GATEWAY.replaceAll(".", "\\.")} dev tap0`, "m"));
      expect(mtu.trim()).toBe("65520");
    }, CASE_TIMEOUT_MS);

    test("16 MiB each way between the child and host services through 10.0.2.2 (the host's loopback)", async () => {
      const r = await eco.runAsUser(target, rootlesskit([
        `socat -u TCP:${GATEWAY}:${p.down} - | sha256sum`,
        // The answer is the hash the host service computed once it had everything.
        `socat -t 30 - TCP:${GATEWAY}:${p.up} < ${big}`,
      ].join(" && ")), { env: pathFor(target) });
      expect(r.code, r.stderr).toBe(0);
      const [toChild, toHost] = r.stdout.split("\n").map((line) => line.split(/\s/)[0]);
      expect({ toChild, toHost }).toEqual({ toChild: bigSha, toHost: bigSha });
    }, CASE_TIMEOUT_MS);

    test("ports the child listens on are reachable from the host, on its loopback and on its address", async () => {
      // Each listener serves one connection. The child, whose end takes its namespace and what is still in flight
      // there with it, then waits until the host has everything and the test says so.
      const done = join(eco.tmp, `done-${target.id}`);
      const kit = eco.spawnAsUser(target, rootlesskit([
        `socat -U TCP-LISTEN:${p.childLo},reuseaddr OPEN:${big},rdonly &`,
        `socat -U TCP-LISTEN:${p.childHost},reuseaddr OPEN:${big},rdonly &`,
        "wait",
        `while [ ! -e ${done} ]; do sleep 0.05; done`,
      ].join("\n")), pathFor(target));
      try {
        // pasta's `-t auto` sees the child's listeners within about a second and listens on the host.
        await waitBound(eco.root.holder, "tcp", [p.childLo, p.childHost], 15_000);
        expect({ via: "127.0.0.1", sha: await fetchSha(eco.host, "127.0.0.1", p.childLo) }).toEqual({ via: "127.0.0.1", sha: bigSha });
        expect({ via: TOPOLOGY.host4, sha: await fetchSha(eco.host, TOPOLOGY.host4, p.childHost) }).toEqual({ via: TOPOLOGY.host4, sha: bigSha });
      } finally {
        writeFileSync(done, "");
      }
      expect(await exited(kit)).toBe(0);
    }, CASE_TIMEOUT_MS);
  });
}

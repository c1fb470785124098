/**
 * pasta --splice-only end to end: no tap device in the namespace, and forwarding by splicing alone. A file goes
 * from the host's loopback into the namespace through -t and one from the namespace's loopback to the host's
 * through -T, compared by SHA-256; a connection to the -t port from an address that cannot be spliced (the host's
 * own) is refused at once instead of waiting for a guest that is not there.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";
import { commandTmpDir } from "./helpers/process.ts";

const PORT_IN = 7301;
const PORT_OUT = 7302;
const SIZE = 4 << 20;

let host: TestHost;
let orzo: string;
let dir: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("splo");
  dir = commandTmpDir("orzo-splo-");
}, 30_000);
afterAll(async () => {
  await host?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sha256 = (path: string) => (existsSync(path) ? createHash("sha256").update(readFileSync(path)).digest("hex") : "missing");

describe("--splice-only", () => {
  test("the namespace has only lo; spliced -t and -T carry files both ways; what cannot be spliced is refused", async () => {
    writeFileSync(join(dir, "to-ns"), randomBytes(SIZE));
    writeFileSync(join(dir, "to-host"), randomBytes(SIZE));
    const fromNs = join(dir, "from-ns");
    const hostServer = host.spawn(["socat", "-u", `TCP4-LISTEN:${PORT_OUT},bind=127.0.0.1,reuseaddr`, `CREATE:${fromNs}`]);
    expect(await waitFor(async () => (await host.run(["ss", "-Hltn"])).stdout.includes(`127.0.0.1:${PORT_OUT} `), 5000)).toBe(true);
    const script = [
      `ip -o link show | awk -F': ' '{print $2}' > ${dir}/links`,
      `socat -u TCP4-LISTEN:${PORT_IN},bind=127.0.0.1 CREATE:${dir}/from-host & server=$!`,
      // Bounded: 200 looks 50 ms apart.
      `i=0; until ss -Hltn | grep -q '127.0.0.1:${PORT_IN} '; do i=$((i+1)); [ $i -gt 200 ] && exit 3; sleep 0.05; done`,
      `touch ${dir}/ready`,
      `socat -u FILE:${dir}/to-host TCP4:127.0.0.1:${PORT_OUT} || exit 4`,
      "wait $server",
    ].join("\n");
    const pasta = host.spawn([orzo, "pasta", "--splice-only", "-t", String(PORT_IN), "-T", String(PORT_OUT), "-u", "none", "-U", "none", "--", "sh", "-c", script]);
    const exited = pasta.exited;
    expect(await Promise.race([waitFor(() => existsSync(join(dir, "ready")), 10_000), exited.then(() => false)])).toBe(true);

    // socat reports a reset as a warning (-d shows it) and exits 0.
    const refused = await host.run(["socat", "-d", "-t", "2", "-", `TCP4:${TOPOLOGY.host4}:${PORT_IN}`], { stdin: "x\n", timeoutMs: 5000 });
    expect(refused.stderr).toContain("Connection reset by peer");

    const sent = await host.run(["socat", "-u", `FILE:${join(dir, "to-ns")}`, `TCP4:127.0.0.1:${PORT_IN}`], { timeoutMs: 20_000 });
    expect(sent.code).toBe(0);
    expect(await Promise.race([exited, Bun.sleep(20_000).then(() => "timeout")])).toBe(0);
    expect(await Promise.race([hostServer.exited, Bun.sleep(5000).then(() => "timeout")])).toBe(0);
    expect(readFileSync(join(dir, "links"), "utf8")).toBe("lo\n");
    expect(sha256(join(dir, "from-host"))).toBe(sha256(join(dir, "to-ns")));
    expect(sha256(fromNs)).toBe(sha256(join(dir, "to-host")));
  }, 60_000);

  test("--splice-only and --no-splice exclude each other; passt does not take --splice-only", async () => {
    const both = await host.run([orzo, "pasta", "--splice-only", "--no-splice", "--", "true"]);
    expect(both).toEqual({ code: 1, stdout: "", stderr: "orzo: option '--splice-only' conflicts with '--no-splice'\n" });
    const passt = await host.run([orzo, "passt", "--splice-only"]);
    expect(passt).toEqual({ code: 1, stdout: "", stderr: "orzo: option '--splice-only' is for pasta mode only\n" });
  }, 30_000);
});

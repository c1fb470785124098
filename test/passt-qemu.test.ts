/**
 * passt mode with a real guest: qemu (TCG unless ORZO_QEMU_ACCEL says otherwise) boots the Debian kernel and
 * busybox initramfs of test/guest/build.ts, connected to `orzo passt` by `-netdev stream`. orzo runs in a test
 * host namespace, and so do the host-side peers (socat), so all traffic stays between the guest and that namespace.
 *
 * The guest runs one script (appended to the cached initramfs as /test.sh) and reports on its serial console
 * with "ORZO ..." marker lines, which the test waits for in order: the DHCP lease, a ping to the gateway, TCP to
 * a host server and back, a host connection to a guest server over -t, and UDP both ways (-u inbound). Data are
 * random on both sides and compared by SHA-256.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";
import { waitForLine } from "./helpers/process.ts";
import { cpioArchive, guestImage } from "./guest/build.ts";

const TCP_BYTES = 4 << 20;
const UDP_BYTES = 5120;
const PORT = { tcpUp: 10010, tcpDown: 10011, tcpIn: 10001, udpUp: 10020, udpIn: 10021, closed: 10099 } as const;

let host: TestHost;
let orzo: string;
let tmp: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("qemu");
  tmp = mkdtempSync(join(tmpdir(), "orzo-qemu-"));
});
afterAll(async () => {
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The guest's script: each step reports a marker line; the host side waits for them in order. */
const GUEST_SCRIPT = `
mark() { echo "ORZO $*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
listening() { i=0; while ! netstat -l"$1"n | grep -q ":$2 " && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; }
udhcpc -i eth0 -f -q -n -t 10 -T 1 -O mtu -s /udhcpc.sh || mark "dhcp failed"
gw=$(cat /tmp/router)
ping -c 1 -W 5 "$gw" >/dev/null && mark "ping ok" || mark "ping failed"
head -c ${TCP_BYTES} /dev/urandom > /tmp/up
mark "tcp-up sha=$(sha /tmp/up)"
socat -u FILE:/tmp/up TCP:"$gw":${PORT.tcpUp} && mark "tcp-up sent"
socat -u TCP:"$gw":${PORT.tcpDown} CREATE:/tmp/down && mark "tcp-down sha=$(sha /tmp/down)"
timeout 60 socat -u TCP-LISTEN:${PORT.tcpIn},reuseaddr CREATE:/tmp/in & p=$!
listening t ${PORT.tcpIn}; mark "tcp-in listening"
wait $p && mark "tcp-in sha=$(sha /tmp/in)"
head -c ${UDP_BYTES} /dev/urandom > /tmp/udp-up
mark "udp-up sha=$(sha /tmp/udp-up)"
socat -u -b 65536 FILE:/tmp/udp-up UDP:"$gw":${PORT.udpUp} && mark "udp-up sent"
timeout 30 socat -u -b 65536 UDP-RECVFROM:${PORT.udpIn} CREATE:/tmp/udp-in & p=$!
listening u ${PORT.udpIn}; mark "udp-in listening"
wait $p && mark "udp-in sha=$(sha /tmp/udp-in)"
# A closed port on the host (behind the gateway address): the port unreachable comes back as ECONNREFUSED.
t0=$(date +%s)
(echo a; sleep 0.5; echo b; sleep 0.5; echo c) | timeout 5 socat - UDP:"$gw":${PORT.closed} 2>/tmp/refused
grep -q "Connection refused" /tmp/refused && mark "udp-refused in $(( $(date +%s) - t0 )) s" || mark "udp-refused none"
global6() { ip -6 addr show dev eth0 scope global | grep -o 'inet6 [0-9a-f:]*' | cut -d' ' -f2 | tr '\\n' ' '; }
i=0; while [ -z "$(global6)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mark "ipv6 [$(global6)]"
mark done
`;

/** A random file and its SHA-256. */
function randomFile(name: string, size: number): { path: string; sha: string } {
  const data = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) crypto.getRandomValues(data.subarray(off, Math.min(size, off + 65536)));
  const path = join(tmp, name);
  writeFileSync(path, data);
  return { path, sha: createHash("sha256").update(data).digest("hex") };
}

/** The SHA-256 of a file a host-side peer wrote ("" while it is not there). */
function shaOf(path: string): string {
  return existsSync(path) ? createHash("sha256").update(readFileSync(path)).digest("hex") : "";
}

/** Waits until something listens on a port in the test host ("t" TCP, "u" UDP). */
async function listening(proto: "t" | "u", port: number): Promise<void> {
  const ok = await waitFor(async () => (await host.run(["ss", `-Hl${proto}n`, `sport = :${port}`])).stdout.trim() !== "", 10_000);
  if (!ok) throw new Error(`nothing listens on ${proto === "t" ? "TCP" : "UDP"} port ${port}`);
}

/** The serial console, read as it comes: marker() waits for the next line matching a pattern. */
class Console {
  text = "";
  private done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    void (async () => {
      for await (const chunk of stream) this.text += decoder.decode(chunk, { stream: true });
      this.done = true;
    })();
  }

  /** The first capture group (or whole match) of the first "ORZO" line matching re, waiting up to timeoutMs. */
  async marker(re: RegExp, timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      // Complete lines only: a line still arriving could match with half its value.
      for (const line of this.text.slice(0, this.text.lastIndexOf("\n") + 1).split("\n")) {
        const m = line.startsWith("ORZO ") ? re.exec(line.slice(5).trim()) : null;
        if (m) return m[1] ?? m[0];
      }
      if (this.done) throw new Error(`the guest stopped before a line matching ${re}:\n${this.text}`);
      if (performance.now() > deadline) throw new Error(`no line matching ${re} within ${timeoutMs} ms:\n${this.text}`);
      await Bun.sleep(20);
    }
  }
}

test("a qemu guest over -netdev stream: DHCP, ping, TCP and UDP both ways (inbound through -t and -u), SLAAC", async () => {
  if (!Bun.which("qemu-system-x86_64")) throw new Error("qemu-system-x86_64 is needed: apt-get install qemu-system-x86");
  const started = performance.now();
  // Built on first use (a few seconds, from Debian packages), then cached across runs.
  const image = guestImage((line) => console.error(line));
  const sock = join(tmp, "qemu.sock");
  const down = randomFile("tcp-down", TCP_BYTES);
  const udpDown = randomFile("udp-down", UDP_BYTES);
  const upOut = join(tmp, "tcp-up.out");
  const udpOut = join(tmp, "udp-up.out");
  const initrd = join(tmp, "run.cpio");
  const extra = cpioArchive([{ path: "test.sh", mode: 0o100644, data: new TextEncoder().encode(GUEST_SCRIPT) }]);
  writeFileSync(initrd, Buffer.concat([readFileSync(image.initrd), extra]));

  host.spawn(["socat", "-u", `TCP4-LISTEN:${PORT.tcpUp},bind=127.0.0.1,reuseaddr`, `CREATE:${upOut}`]);
  host.spawn(["socat", "-u", `OPEN:${down.path}`, `TCP4-LISTEN:${PORT.tcpDown},bind=127.0.0.1,reuseaddr`]);
  host.spawn(["socat", "-u", "-b", "65536", `UDP4-RECVFROM:${PORT.udpUp},bind=127.0.0.1`, `CREATE:${udpOut}`]);
  await listening("t", PORT.tcpUp);
  await listening("t", PORT.tcpDown);
  await listening("u", PORT.udpUp);
  expect((await host.run(["ss", "-Hlun", `sport = :${PORT.closed}`])).stdout.trim()).toBe("");

  const passt = host.spawn([orzo, "passt", "-f", "-1", "-s", sock, "-t", String(PORT.tcpIn), "-u", String(PORT.udpIn)]);
  const passtErr = waitForLine(passt.stderr as ReadableStream<Uint8Array>, /addr\.path=/, 15_000);
  await passtErr.found;
  const accel = process.env.ORZO_QEMU_ACCEL ?? "tcg";
  const qemu = host.spawn([
    "timeout", "170", "qemu-system-x86_64", "-accel", accel, "-m", "256", "-smp", "1", "-nodefaults", "-no-user-config",
    "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", image.kernel, "-initrd", initrd,
    "-append", "console=ttyS0 quiet panic=-1",
    "-netdev", `stream,id=n,server=off,addr.type=unix,addr.path=${sock}`, "-device", "virtio-net-pci,netdev=n,romfile=",
  ]);
  const serial = new Console(qemu.stdout as ReadableStream<Uint8Array>);
  const log = (what: string) => console.error(`qemu test: ${what} at ${((performance.now() - started) / 1000).toFixed(1)} s`);
  try {
    log(`booting (${accel})`);
    const lease = await serial.marker(/^lease (.*)$/, 90_000);
    log("leased");
    expect(lease).toContain(`ip=${TOPOLOGY.host4} subnet=255.255.255.0 router=${TOPOLOGY.router4} dns=${TOPOLOGY.router4} mtu=65520`);
    expect(await serial.marker(/^ping (\w+)$/, 15_000)).toBe("ok");

    const upSha = await serial.marker(/^tcp-up sha=(\w+)$/, 30_000);
    await serial.marker(/^tcp-up sent$/, 60_000);
    expect(await waitFor(() => shaOf(upOut) === upSha, 10_000)).toBe(true);
    expect(await serial.marker(/^tcp-down sha=(\w+)$/, 60_000)).toBe(down.sha);
    log("TCP guest to host and back");

    await serial.marker(/^tcp-in listening$/, 30_000);
    const sent = await host.run(["socat", "-u", `OPEN:${down.path}`, `TCP4:127.0.0.1:${PORT.tcpIn}`], { timeoutMs: 60_000 });
    expect(sent.stderr).toBe("");
    expect(await serial.marker(/^tcp-in sha=(\w+)$/, 60_000)).toBe(down.sha);
    log("TCP host to guest over -t");

    const udpSha = await serial.marker(/^udp-up sha=(\w+)$/, 30_000);
    await serial.marker(/^udp-up sent$/, 30_000);
    expect(await waitFor(() => shaOf(udpOut) === udpSha, 10_000)).toBe(true);
    await serial.marker(/^udp-in listening$/, 30_000);
    expect((await host.run(["socat", "-u", "-b", "65536", `OPEN:${udpDown.path}`, `UDP4-SENDTO:127.0.0.1:${PORT.udpIn}`])).code).toBe(0);
    expect(await serial.marker(/^udp-in sha=(\w+)$/, 30_000)).toBe(udpDown.sha);
    log("UDP both ways");
    // ICMP errors for UDP: the host's port unreachable reaches the guest's socket, within 2 s.
    expect(await serial.marker(/^udp-refused (.*)$/, 30_000)).toMatch(/^in [0-2] s$/);

    // SLAAC from orzo's router advertisement: the host's /64.
    expect(await serial.marker(/^ipv6 \[(.*)\]$/, 30_000)).toContain("2001:db8:1:");
    await serial.marker(/^done$/, 30_000);
    // The guest powers off, qemu closes the socket, and orzo (-1) exits with status 0.
    expect(await Promise.race([passt.exited, Bun.sleep(30_000).then(() => "timeout")])).toBe(0);
    expect(await Promise.race([qemu.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
    log("done");
  } catch (e) {
    qemu.kill();
    passt.kill();
    console.error(`orzo's stderr:\n${await passtErr.rest()}`);
    throw e;
  } finally {
    qemu.kill();
    passt.kill();
    rmSync(sock, { force: true });
  }
}, 175_000);

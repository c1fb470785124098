/**
 * --pcap: the record format (what the writer wrote, parsed back), the decorators on a link, drops on a full file,
 * and end to end: pasta (TCP, UDP, ARP/NDP, DHCP with busybox udhcpc), passt (the stream-socket test guest), an
 * unwritable path, and a full disk (a 64 KiB tmpfs in a private mount namespace) that must not stop traffic.
 * Captures are read back with tcpdump. Peers run in the hermetic test host (test/helpers/netns.ts).
 */
import { commandTmpDir } from "./helpers/process.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { O_CLOEXEC, O_WRONLY } from "../src/syscalls/constants.ts";
import { close, open } from "../src/syscalls/io.ts";
import { Mem } from "../src/syscalls/mem.ts";
import type { FrameSink } from "../src/tap/link.ts";
import { LinkCapture, openPcapFile, PcapWriter } from "../src/tap/pcap.ts";
import { EventLoop } from "../src/loop.ts";
import { rd16 } from "../src/wire/bytes.ts";
import { ARP_OP, ARP_REPLY, ARP_REQUEST, arpEmit } from "../src/wire/arp.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ethEmit, MAC_BROADCAST } from "../src/wire/ethernet.ts";
import { IPPROTO_UDP } from "../src/wire/ip.ts";
import { ipv4Emit } from "../src/wire/ipv4.ts";
import { udpEmit, udpSetChecksum4 } from "../src/wire/udp.ts";
import { orzoBinary } from "./helpers/binary.ts";
import { run, TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";
import { waitForLine } from "./helpers/process.ts";
import { CLIENT_MAC, OUR_MAC, RecordingLink, UDHCPC_DISCOVER_BROADCAST, UDHCPC_REQUEST_BROADCAST } from "./helpers/services.ts";
import { ScriptedTcp, StreamGuest } from "./helpers/stream-guest.ts";

const fixtures = join(import.meta.dir, "fixtures");
const tcpPeer = join(fixtures, "tcp-peer.ts");
const TCP_PORT = 9301;
const UDP_PORT = 9302;
let host: TestHost;
let orzo: string;
let tmp: string;
let files = 0;

beforeAll(async () => {
  orzo = orzoBinary();
  tmp = commandTmpDir("orzo-pcap-");
  host = await TestHost.create("pcap");
  const tcp = host.spawn([process.execPath, tcpPeer, "echo-server", String(TCP_PORT)]);
  await waitForLine(tcp.stdout as ReadableStream<Uint8Array>, /listening/, 10_000).found;
  host.spawn([process.execPath, join(fixtures, "udp-echo.ts"), "0.0.0.0", String(UDP_PORT)]);
  const udpUp = await waitFor(async () => (await host.run(["ss", "-Hlun", `sport = :${UDP_PORT}`])).stdout.trim() !== "", 10_000);
  if (!udpUp) throw new Error("the UDP echo server did not start");
});
afterAll(async () => {
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A fresh path for a capture file. */
const capturePath = () => join(tmp, `c${++files}.pcap`);

/** One record of a capture file. */
interface PcapRecord {
  sec: number;
  usec: number;
  len: number;
  data: Uint8Array;
}

/** Parses a whole capture file, checking the header and that it ends exactly after a whole record. */
function parsePcap(bytes: Uint8Array): PcapRecord[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  // The magic is in host order: its bytes as the host lays out 0xa1b2c3d4.
  expect(Buffer.from(bytes.subarray(0, 4)).toString("hex")).toBe(le ? "d4c3b2a1" : "a1b2c3d4");
  expect([v.getUint16(4, le), v.getUint16(6, le), v.getInt32(8, le), v.getUint32(12, le)]).toEqual([2, 4, 0, 0]);
  expect([v.getUint32(16, le), v.getUint32(20, le)]).toEqual([65535, 1]);
  const records: PcapRecord[] = [];
  let at = 24;
  while (at < bytes.length) {
    expect(bytes.length - at).toBeGreaterThanOrEqual(16);
    const caplen = v.getUint32(at + 8, le);
    const len = v.getUint32(at + 12, le);
    expect(caplen).toBe(Math.min(len, 65535));
    expect(at + 16 + caplen).toBeLessThanOrEqual(bytes.length);
    records.push({ sec: v.getUint32(at, le), usec: v.getUint32(at + 4, le), len, data: bytes.slice(at + 16, at + 16 + caplen) });
    at += 16 + caplen;
  }
  return records;
}

/** A frame of len bytes whose bytes count up from seed. */
function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i) & 0xff;
  return b;
}

/** `tcpdump -r FILE -nn -e [-v]`: the lines it prints; fails the test if tcpdump does. */
async function tcpdump(file: string, verbose = false): Promise<string[]> {
  const r = await run(["tcpdump", "-r", file, "-nn", "-e", ...(verbose ? ["-v"] : [])]);
  expect(r.stderr).not.toContain("truncated");
  expect(r.code).toBe(0);
  return r.stdout.split("\n").filter((l) => l !== "");
}

/** True when some line matches every pattern. */
const hasLine = (lines: string[], ...patterns: RegExp[]) => lines.some((l) => patterns.every((p) => p.test(l)));
const esc = (s: string) => s.replace(/[.:]/g, "\\$&");

describe("pcap: the file and its records", () => {
  test("header in host order, 2.4, snaplen 65535, Ethernet; records with time, caplen and length", () => {
    const path = capturePath();
    const fd = openPcapFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(path).size).toBe(24);
    const w = new PcapWriter(fd);
    const mem = new Mem(70_000);
    const frames = [pattern(60, 1), pattern(1514, 2), pattern(70_000, 3)];
    const before = Date.now();
    for (const f of frames) {
      mem.bytes.set(f, 0);
      w.record(mem.addr, f.length, performance.now());
    }
    // Records are held until the writer flushes: no write per frame.
    expect(statSync(path).size).toBe(24);
    w.flush();
    const after = Date.now();
    close(fd);
    const records = parsePcap(readFileSync(path));
    expect(records.map((r) => r.len)).toEqual([60, 1514, 70_000]);
    for (const [i, r] of records.entries()) {
      expect(Buffer.compare(r.data, frames[i].subarray(0, 65535))).toBe(0);
      expect(r.usec).toBeLessThan(1_000_000);
      const ms = r.sec * 1000 + r.usec / 1000;
      expect(ms).toBeGreaterThanOrEqual(before - 1);
      expect(ms).toBeLessThanOrEqual(after + 1);
    }
    expect(w.stats).toEqual({ frames: 3, dropped: 0, failedWrites: 0 });
  });

  test("a full buffer is written before the record that does not fit", () => {
    const path = capturePath();
    const fd = openPcapFile(path);
    const w = new PcapWriter(fd);
    const mem = new Mem(65535);
    mem.bytes.set(pattern(65535, 9));
    let held = 0;
    while (statSync(path).size === 24 && held < 1000) {
      w.record(mem.addr, 65535, performance.now());
      held++;
    }
    // Many records went out in one write, all whole: those held before the one that did not fit.
    expect(held).toBeGreaterThan(16);
    expect(statSync(path).size).toBe(24 + (held - 1) * (16 + 65535));
    w.flush();
    close(fd);
    expect(parsePcap(readFileSync(path)).length).toBe(held);
  });

  test("a file that takes nothing (/dev/full) drops and counts records, and throws nothing", () => {
    const fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    try {
      const w = new PcapWriter(fd);
      const mem = new Mem(100);
      for (let i = 0; i < 3; i++) w.record(mem.addr, 100, performance.now());
      w.flush();
      w.record(mem.addr, 100, performance.now());
      w.flush();
      expect(w.stats).toEqual({ frames: 0, dropped: 4, failedWrites: 2 });
    } finally {
      close(fd);
    }
  });

  test("an unwritable path is an error naming the path and the reason", () => {
    expect(() => openPcapFile(join(tmp, "no-such-dir", "x.pcap"))).toThrow(/^--pcap .*x\.pcap: ENOENT/);
    expect(() => openPcapFile(tmp)).toThrow(/EISDIR/);
  });
});

describe("pcap: the decorators on a link", () => {
  test("frames from the guest are recorded and handed on; frames to it are recorded as flushed, arena-full flushes too", () => {
    const path = capturePath();
    const loop = new EventLoop();
    try {
      const capture = new LinkCapture(loop, openPcapFile(path));
      const seen: number[] = [];
      const inner: FrameSink = { frame: (_b, _a, _off, len) => void seen.push(len), flushInput: () => seen.push(-1) };
      const sink = capture.sink(inner);
      const input = new Mem(2000);
      input.bytes.set(pattern(100, 40), 500);
      sink.frame(input.bytes, input.addr, 500, 100, performance.now());
      sink.flushInput();
      expect(seen).toEqual([100, -1]);

      const link = capture.link(new RecordingLink(1 << 16, 64));
      link.send(pattern(200, 50), 0, 200);
      link.send(pattern(40_000, 60), 0, 40_000);
      // The 64 KiB arena has no room for a second 40000-byte frame: reserving it flushes from inside the link.
      link.send(pattern(40_000, 70), 0, 40_000);
      expect(link.frames.length).toBe(2);
      link.flush();
      link.up = false;
      link.send(pattern(80, 80), 0, 80);
      link.flush();
      link.up = true;
      link.send(pattern(30, 90), 0, 30);
      link.flush();
      expect(link.frames.length).toBe(5);
      capture.writer.flush();
      close(capture.writer.fd);

      const records = parsePcap(readFileSync(path));
      // Not connected: the frame is not recorded (a real link drops it). Short frames are recorded padded, as sent.
      expect(records.map((r) => r.len)).toEqual([100, 200, 40_000, 40_000, 60]);
      const expected = [pattern(100, 40), pattern(200, 50), pattern(40_000, 60), pattern(40_000, 70), pattern(30, 90)];
      for (const [i, r] of records.entries()) expect(Buffer.compare(r.data.subarray(0, expected[i].length), expected[i])).toBe(0);
    } finally {
      loop.close();
    }
  });
});

/** Runs `orzo pasta ARGS -- sh -c SCRIPT` in the test host. */
function pasta(args: string[], script: string, timeoutMs = 30_000) {
  return host.run([orzo, "pasta", ...args, "--", "sh", "-c", script], { timeoutMs });
}

/** The namespace side of the TCP and UDP exchanges: echoes from the host's servers through the gateway address. */
const exchanges = (tcpBytes: number) =>
  `${process.execPath} ${tcpPeer} parallel ${TOPOLOGY.router4} ${TCP_PORT} 1 ${tcpBytes} && ` +
  `${process.execPath} ${join(fixtures, "udp-roundtrip.ts")} ${TOPOLOGY.router4} ${UDP_PORT} 1000`;

describe("pcap: pasta", () => {
  test("--config-net: ARP and NDP, a TCP handshake and UDP both ways are in the capture, as tcpdump reads it", async () => {
    const file = capturePath();
    const r = await pasta(["--config-net", "--pcap", file], exchanges(200_000));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('{"ok":1,"n":1}');
    expect(r.stdout).toContain('"intact":true');
    const lines = await tcpdump(file);
    const gw = esc(TOPOLOGY.router4);
    const guest = esc(TOPOLOGY.host4);
    expect(hasLine(lines, /ARP/, /Request who-has/)).toBe(true);
    expect(hasLine(lines, /ARP/, /Reply/)).toBe(true);
    expect(hasLine(lines, /ICMP6, neighbor (solicitation|advertisement)/)).toBe(true);
    // Direction by source MAC: orzo's is 9a:55:9a:55:9a:55.
    expect(hasLine(lines, /^\S+ (?!9a:55:9a:55:9a:55)\S+ > 9a:55/, new RegExp(`${guest}\\.\\d+ > ${gw}\\.${TCP_PORT}: Flags \\[S\\]`))).toBe(true);
    expect(hasLine(lines, /^\S+ 9a:55:9a:55:9a:55 > /, new RegExp(`${gw}\\.${TCP_PORT} > ${guest}\\.\\d+: Flags \\[S\\.\\]`))).toBe(true);
    expect(hasLine(lines, new RegExp(`${guest}\\.\\d+ > ${gw}\\.${UDP_PORT}: UDP, length 1000`))).toBe(true);
    expect(hasLine(lines, /^\S+ 9a:55:9a:55:9a:55 > /, new RegExp(`${gw}\\.${UDP_PORT} > ${guest}\\.\\d+: UDP, length 1000`))).toBe(true);
    // The echoed TCP data went both ways.
    expect(hasLine(lines, new RegExp(`${guest}\\.\\d+ > ${gw}\\.${TCP_PORT}: Flags \\[\\.?P?\\.?\\], seq \\d+:\\d+`))).toBe(true);
    expect(hasLine(lines, new RegExp(`${gw}\\.${TCP_PORT} > ${guest}\\.\\d+: Flags \\[\\.?P?\\.?\\], seq \\d+:\\d+`))).toBe(true);
  });

  test("busybox udhcpc: DISCOVER, OFFER, REQUEST and ACK are in the capture", async () => {
    const file = capturePath();
    const r = await pasta(["--pcap", file], `ip link set eth0 up && busybox udhcpc -i eth0 -f -q -n -t 5 -T 1 -s ${fixtures}/udhcpc-script.sh`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`ip=${TOPOLOGY.host4} `);
    const lines = await tcpdump(file, true);
    const text = lines.join("\n");
    for (const type of ["Discover", "Offer", "Request", "ACK"]) expect(text).toContain(`DHCP-Message (53), length 1: ${type}`);
    expect(hasLine(lines, /0\.0\.0\.0\.68 > 255\.255\.255\.255\.67: BOOTP\/DHCP, Request/)).toBe(true);
    expect(hasLine(lines, /\.67 > .*\.68: BOOTP\/DHCP, Reply/)).toBe(true);
  });

  test("an unwritable path (no such directory, a directory) is exit status 1 and one line, with nothing left running", async () => {
    for (const [path, reason] of [[join(tmp, "missing", "x.pcap"), "ENOENT"], [tmp, "EISDIR"]]) {
      for (const mode of ["pasta", "passt"]) {
        const args = mode === "pasta" ? ["pasta", "--pcap", path, "--", "true"] : ["passt", "-f", "-s", join(tmp, "never.sock"), "--pcap", path];
        const r = await host.run([orzo, ...args], { timeoutMs: 10_000 });
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toBe(`orzo: --pcap ${path}: ${reason} (${reason === "ENOENT" ? "No such file or directory" : "Is a directory"})\n`);
      }
    }
    expect(processesNaming(tmp)).toEqual([]);
  });

  test("a full disk (64 KiB tmpfs): traffic goes on, drops are counted and logged, the file stays readable", async () => {
    const dir = join(tmp, "small");
    mkdirSync(dir);
    const out = join(tmp, "small-copy.pcap");
    // The tmpfs exists only in this shell's mount namespace: the capture is copied out before it goes.
    const script = [
      `mount -t tmpfs -o size=64k tmpfs ${dir}`,
      `${orzo} pasta --config-net --pcap ${dir}/cap.pcap -- sh -c '${exchanges(2_000_000)}'`,
      "s=$?",
      `cp ${dir}/cap.pcap ${out}`,
      "exit $s",
    ].join("\n");
    const r = await host.run(["unshare", "-m", "sh", "-c", script], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('{"ok":1,"n":1}');
    expect(r.stdout).toContain('"intact":true');
    const drops = /pcap: writing the capture failed \((ENOSPC|\d+ of \d+ bytes written).*\): (\d+) frames dropped so far/.exec(r.stderr);
    expect(drops).not.toBeNull();
    expect(Number(drops![2])).toBeGreaterThan(0);
    const bytes = readFileSync(out);
    expect(bytes.length).toBeLessThanOrEqual(64 << 10);
    expect(parsePcap(bytes).length).toBeGreaterThan(0);
    expect((await tcpdump(out)).length).toBeGreaterThan(0);
  });
});

describe("pcap: passt", () => {
  test("the stream guest's ARP, DHCP, TCP handshake and UDP both ways are in the capture", async () => {
    const file = capturePath();
    const sock = join(tmp, "g.sock");
    const p = host.spawn([orzo, "passt", "-f", "-s", sock, "--pcap", file]);
    await waitForLine(p.stderr as ReadableStream<Uint8Array>, /addr\.path=/, 15_000).found;
    const g = StreamGuest.connect(sock);
    try {
      const guest4 = v4(TOPOLOGY.host4);
      const gw4 = v4(TOPOLOGY.router4);
      await g.take((f) => rd16(f, 12) === ETHERTYPE_ARP, 5000, "orzo's ARP request");
      await g.send(arpRequest(guest4, gw4));
      await g.take((f) => rd16(f, 12) === ETHERTYPE_ARP && rd16(f, 14 + ARP_OP) === ARP_REPLY, 5000, "the ARP reply");
      await g.send(UDHCPC_DISCOVER_BROADCAST);
      await g.take(isUdpTo(68), 5000, "DHCPOFFER");
      await g.send(UDHCPC_REQUEST_BROADCAST);
      await g.take(isUdpTo(68), 5000, "DHCPACK");
      const tcp = new ScriptedTcp(g, { guestMac: CLIENT_MAC, gatewayMac: OUR_MAC, guest: guest4, server: gw4, sport: 40011, dport: TCP_PORT });
      await tcp.connect();
      await tcp.exchange(pattern(3000, 5), { fin: true, untilFin: true, timeoutMs: 15_000 });
      expect(Buffer.concat(tcp.received).length).toBe(3000);
      await g.send(udpFrame(guest4, gw4, 40012, UDP_PORT, pattern(500, 7)));
      await g.take(isUdpTo(40012), 5000, "the UDP echo");
    } finally {
      g.close();
      p.kill();
      await Promise.race([p.exited, Bun.sleep(5000)]);
    }
    const lines = await tcpdump(file, true);
    const text = lines.join("\n");
    const gw = esc(TOPOLOGY.router4);
    const guest = esc(TOPOLOGY.host4);
    expect(hasLine(lines, / 9a:55:9a:55:9a:55 > ff:ff:ff:ff:ff:ff, ethertype ARP/, new RegExp(`Request who-has ${guest} tell ${gw}`))).toBe(true);
    expect(hasLine(lines, / 02:00:5e:00:00:0a > ff:ff:ff:ff:ff:ff, ethertype ARP/, new RegExp(`Request who-has ${gw} tell ${guest}`))).toBe(true);
    expect(hasLine(lines, / 9a:55:9a:55:9a:55 > 02:00:5e:00:00:0a, ethertype ARP/, new RegExp(`Reply ${gw} is-at 9a:55:9a:55:9a:55`))).toBe(true);
    for (const type of ["Discover", "Offer", "Request", "ACK"]) expect(text).toContain(`DHCP-Message (53), length 1: ${type}`);
    expect(hasLine(lines, new RegExp(`${guest}\\.40011 > ${gw}\\.${TCP_PORT}: Flags \\[S\\]`))).toBe(true);
    expect(hasLine(lines, new RegExp(`${gw}\\.${TCP_PORT} > ${guest}\\.40011: Flags \\[S\\.\\]`))).toBe(true);
    expect(hasLine(lines, new RegExp(`${guest}\\.40012 > ${gw}\\.${UDP_PORT}: UDP, length 500`))).toBe(true);
    expect(hasLine(lines, new RegExp(`${gw}\\.${UDP_PORT} > ${guest}\\.40012: UDP, length 500`))).toBe(true);
  });
});

const v4 = (text: string) => Uint8Array.from(text.split(".").map(Number));

/** An ARP request from the guest (CLIENT_MAC, address src) for target. */
function arpRequest(src: Uint8Array, target: Uint8Array): Uint8Array {
  const f = new Uint8Array(42);
  ethEmit(f, 0, MAC_BROADCAST, 0, CLIENT_MAC, 0, ETHERTYPE_ARP);
  arpEmit(f, 14, ARP_REQUEST, CLIENT_MAC, 0, src, 0, new Uint8Array(6), 0, target, 0);
  return f;
}

/** Matches an IPv4 UDP frame to a destination port. */
const isUdpTo = (port: number) => (f: Uint8Array) => rd16(f, 12) === ETHERTYPE_IPV4 && f[23] === IPPROTO_UDP && rd16(f, 36) === port;

/** A UDP datagram from the guest (CLIENT_MAC) to the gateway MAC. */
function udpFrame(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(42 + payload.length);
  ethEmit(f, 0, OUR_MAC, 0, CLIENT_MAC, 0, ETHERTYPE_IPV4);
  ipv4Emit(f, 14, src, 0, dst, 0, IPPROTO_UDP, 8 + payload.length, 64);
  udpEmit(f, 34, sport, dport, payload.length);
  f.set(payload, 42);
  udpSetChecksum4(f, 14, 34, 8 + payload.length);
  return f;
}

/** PIDs of processes whose command line names a path under dir (orzo left running would). */
function processesNaming(dir: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(dir)) found.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/**
 * passt mode, driven from the test itself in place of qemu: the test connects to orzo's UNIX socket (or hands it
 * one with --fd) and frames everything by hand (test/helpers/stream-guest.ts). orzo runs in a test host
 * namespace, so the guest is handed that namespace's hermetic addressing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM } from "../src/syscalls/constants.ts";
import { close } from "../src/syscalls/io.ts";
import { socketpair } from "../src/syscalls/socket.ts";
import { rd16 } from "../src/wire/bytes.ts";
import { ARP_OP, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA, arpEmit } from "../src/wire/arp.ts";
import { DHCP_MSG, DHCP_OPT, dhcpHeaderDecode, dhcpOptionsParse, dhcpParse } from "../src/wire/dhcp.ts";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, MAC_BROADCAST, ethEmit, formatMac } from "../src/wire/ethernet.ts";
import { formatIPv4 } from "../src/wire/inany.ts";
import { orzoBinary } from "./helpers/binary.ts";
import { TestHost, TOPOLOGY, waitFor } from "./helpers/netns.ts";
import { waitForLine } from "./helpers/process.ts";
import { CLIENT_MAC, OUR_MAC, UDHCPC_DISCOVER_BROADCAST, UDHCPC_REQUEST_BROADCAST, parseUdp4 } from "./helpers/services.ts";
import { ScriptedTcp, StreamGuest } from "./helpers/stream-guest.ts";

const peer = join(import.meta.dir, "fixtures", "tcp-peer.ts");
let host: TestHost;
let orzo: string;
let tmp: string;
let sockets = 0;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("passt");
  tmp = mkdtempSync(join(tmpdir(), "orzo-passt-"));
});
afterAll(async () => {
  await host?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** True once a process has exited (a zombie waiting for its reaper counts: PID 1 here may reap late). */
function exited(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
  } catch {
    return true;
  }
}

const v4 = (text: string) => Uint8Array.from(text.split(".").map(Number));

/** An ARP request from the guest (CLIENT_MAC, the host's address) for target. */
function arpRequest(target: string): Uint8Array {
  const f = new Uint8Array(42);
  ethEmit(f, 0, MAC_BROADCAST, 0, CLIENT_MAC, 0, ETHERTYPE_ARP);
  arpEmit(f, 14, ARP_REQUEST, CLIENT_MAC, 0, v4(TOPOLOGY.host4), 0, new Uint8Array(6), 0, v4(target), 0);
  return f;
}

/** Matches orzo's ARP reply for target. */
const arpReplyFor = (target: string) => (f: Uint8Array) =>
  rd16(f, 12) === ETHERTYPE_ARP && rd16(f, 14 + ARP_OP) === ARP_REPLY && formatIPv4(f, 14 + ARP_SPA) === target;

/** Asks for the gateway's MAC and checks the answer: our MAC, to the guest's. */
async function expectArp(g: StreamGuest, target: string = TOPOLOGY.router4): Promise<void> {
  await g.send(arpRequest(target));
  const r = await g.take(arpReplyFor(target), 5000, `ARP reply for ${target}`);
  expect(r.length).toBe(60);
  expect(formatMac(r, 0)).toBe(formatMac(CLIENT_MAC, 0));
  expect(formatMac(r, 14 + ARP_SHA)).toBe(formatMac(OUR_MAC, 0));
  expect(formatMac(r, 14 + ARP_THA)).toBe(formatMac(CLIENT_MAC, 0));
}

/** Starts `orzo passt -f -s SOCK ARGS` in the test host; resolves once the qemu option naming SOCK is printed. */
async function startPasst(args: string[] = []) {
  const sock = join(tmp, `g${++sockets}.sock`);
  const p = host.spawn([orzo, "passt", "-f", "-s", sock, ...args]);
  const stderr = waitForLine(p.stderr as ReadableStream<Uint8Array>, /addr\.path=/, 15_000);
  const text = await stderr.found;
  expect(text).toContain(`-device virtio-net-pci,netdev=s -netdev stream,id=s,server=off,addr.type=unix,addr.path=${sock}`);
  return { p, sock, stderr };
}

describe("passt: the socket and the guest's first frames", () => {
  test("orzo solicits the guest's addresses when it connects, then answers ARP and DHCP", async () => {
    const { p, sock } = await startPasst();
    const g = StreamGuest.connect(sock);
    try {
      // Before the guest's MAC is known, frames to it are broadcast.
      const solicit = await g.take((f) => rd16(f, 12) === ETHERTYPE_ARP && rd16(f, 14 + ARP_OP) === ARP_REQUEST, 5000, "initial ARP request");
      expect(formatMac(solicit, 0)).toBe("ff:ff:ff:ff:ff:ff");
      expect(formatIPv4(solicit, 14 + ARP_SPA)).toBe(TOPOLOGY.router4);
      expect(formatIPv4(solicit, 14 + ARP_TPA)).toBe(TOPOLOGY.host4);
      await expectArp(g);

      const isDhcp = (type: number) => (f: Uint8Array) => {
        if (rd16(f, 12) !== ETHERTYPE_IPV4 || f[23] !== 17 || rd16(f, 36) !== 68) return false;
        const opts = dhcpOptionsParse(f, 42 + 240, 42 + rd16(f, 38) - 8);
        return opts?.get(DHCP_OPT.MSG_TYPE)?.[0] === type;
      };
      await g.send(UDHCPC_DISCOVER_BROADCAST);
      const offer = parseUdp4(await g.take(isDhcp(DHCP_MSG.OFFER), 5000, "DHCPOFFER"));
      // udhcpc -B asks for broadcast replies.
      expect([offer.dstMac, offer.dst]).toEqual(["ff:ff:ff:ff:ff:ff", "255.255.255.255"]);
      expect(dhcpParse(offer.frame, offer.off, offer.len)).toBe(offer.off + 240);
      expect(formatIPv4(dhcpHeaderDecode(offer.frame, offer.off).yiaddr, 0)).toBe(TOPOLOGY.host4);
      const opts = dhcpOptionsParse(offer.frame, offer.off + 240, offer.off + offer.len)!;
      expect(formatIPv4(opts.get(DHCP_OPT.ROUTER)!, 0)).toBe(TOPOLOGY.router4);
      expect(formatIPv4(opts.get(DHCP_OPT.DNS)!, 0)).toBe(TOPOLOGY.router4);
      expect(rd16(opts.get(DHCP_OPT.MTU)!, 0)).toBe(65520);
      await g.send(UDHCPC_REQUEST_BROADCAST);
      const ack = parseUdp4(await g.take(isDhcp(DHCP_MSG.ACK), 5000, "DHCPACK"));
      expect(formatIPv4(dhcpHeaderDecode(ack.frame, ack.off).yiaddr, 0)).toBe(TOPOLOGY.host4);
    } finally {
      g.close();
      p.kill();
    }
  });

  test("a second guest is turned away while one is served", async () => {
    const { p, sock } = await startPasst();
    const first = StreamGuest.connect(sock);
    try {
      await expectArp(first);
      const second = StreamGuest.connect(sock);
      expect(await second.closedByPeer()).toBe(true);
      second.close();
      await expectArp(first, "198.51.100.77");
    } finally {
      first.close();
      p.kill();
    }
  });

  test("the default socket path is the first free /tmp/passt_N.socket; a path in use is refused", async () => {
    const a = host.spawn([orzo, "passt", "-f"]);
    const b = host.spawn([orzo, "passt", "-f"]);
    try {
      const paths: string[] = [];
      for (const p of [a, b]) {
        const text = await waitForLine(p.stderr as ReadableStream<Uint8Array>, /addr\.path=/, 15_000).found;
        paths.push(/addr\.path=(\S+)/.exec(text)![1]);
      }
      expect(paths.every((x) => /^\/tmp\/passt_[0-9]+\.socket$/.test(x))).toBe(true);
      expect(paths[0]).not.toBe(paths[1]);
      const g = StreamGuest.connect(paths[1]);
      await expectArp(g);
      g.close();
      const inUse = await host.run([orzo, "passt", "-f", "-s", paths[0]]);
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toContain(`socket path ${paths[0]} is in use`);
    } finally {
      a.kill();
      b.kill();
      await Promise.all([a.exited, b.exited]);
    }
  });
});

describe("passt: the stream protocol", () => {
  test("frames split at every byte boundary are put back together", async () => {
    const { p, sock } = await startPasst();
    const g = StreamGuest.connect(sock);
    try {
      const bytes = StreamGuest.encode(arpRequest("198.51.100.9"));
      for (let cut = 1; cut < bytes.length; cut++) {
        await g.write(bytes.subarray(0, cut));
        await Bun.sleep(3);
        await g.write(bytes.subarray(cut));
        await g.take(arpReplyFor("198.51.100.9"), 5000, `ARP reply with the frame cut at ${cut}`);
      }
      // Two frames dribbled one byte per write, the second one's length cut across writes too.
      const two = StreamGuest.encode(arpRequest("198.51.100.10"), arpRequest("198.51.100.11"));
      for (let i = 0; i < two.length; i++) {
        await g.write(two.subarray(i, i + 1));
        if (i % 8 === 0) await Bun.sleep(1);
      }
      await g.take(arpReplyFor("198.51.100.10"));
      await g.take(arpReplyFor("198.51.100.11"));
    } finally {
      g.close();
      p.kill();
    }
  });

  test("many frames in one write are all answered, in order", async () => {
    const { p, sock } = await startPasst();
    const g = StreamGuest.connect(sock);
    try {
      const targets = Array.from({ length: 200 }, (_, i) => `198.51.100.${i + 2}`).filter((t) => t !== TOPOLOGY.host4);
      await g.write(StreamGuest.encode(...targets.map(arpRequest)));
      await waitFor(() => {
        g.pump();
        return g.frames.filter((f) => rd16(f, 12) === ETHERTYPE_ARP && rd16(f, 14 + ARP_OP) === ARP_REPLY).length >= targets.length;
      }, 5000);
      const replies = g.frames.filter((f) => rd16(f, 12) === ETHERTYPE_ARP && rd16(f, 14 + ARP_OP) === ARP_REPLY);
      expect(replies.map((f) => formatIPv4(f, 14 + ARP_SPA))).toEqual(targets);
    } finally {
      g.close();
      p.kill();
    }
  });

  test("a guest that stops reading: the full socket holds the rest back, and every frame arrives whole and in order", async () => {
    const port = 9201;
    const { p, sock, stderr } = await startPasst(["-d", "-u", String(port)]);
    const g = StreamGuest.connect(sock);
    try {
      await expectArp(g);
      // 180 datagrams of 60,000 bytes (10.8 MB) forwarded to the guest: more than the socket holds unread.
      const sender = [
        "const s = require('node:dgram').createSocket('udp4'); const b = Buffer.alloc(60000);",
        "for (let i = 0; i < 180; i++) { b.writeUInt32BE(i, 0); b.fill(i & 255, 4);",
        `await new Promise((r) => s.send(b, ${port}, '127.0.0.1', r)); await Bun.sleep(2); }`,
        "s.close();",
      ].join(" ");
      const sent = await host.run([process.execPath, "-e", sender], { timeoutMs: 15_000 });
      expect(sent.code).toBe(0);
      const isData = (f: Uint8Array) => rd16(f, 12) === ETHERTYPE_IPV4 && f[23] === 17 && rd16(f, 36) === port;
      let count = 0;
      await waitFor(() => {
        g.pump();
        const n = g.frames.filter(isData).length;
        const settled = n > 0 && n === count;
        count = n;
        return settled;
      }, 15_000, 200);
      const seen = g.frames.filter(isData).map((f) => {
        const d = parseUdp4(f);
        expect(d.len).toBe(60000);
        const index = rd16(f, d.off + 2);
        expect(f.subarray(d.off + 4, d.off + d.len).every((b) => b === (index & 255))).toBe(true);
        return index;
      });
      expect(seen.length).toBeGreaterThan(140);
      expect(seen.every((x, i) => i === 0 || x > seen[i - 1])).toBe(true);
    } finally {
      g.close();
      p.kill();
    }
    const stats = JSON.parse(/stream (\{[^}]*\})/.exec(await stderr.rest())![1]) as { partialWrites: number; pendingDropped: number };
    expect(stats.partialWrites).toBeGreaterThan(0);
    expect(stats.pendingDropped).toBe(0);
  });

  test("random and truncated streams: orzo drops or serves each connection, and keeps serving the next", async () => {
    const { p, sock } = await startPasst();
    try {
      for (let i = 0; i < 40; i++) {
        const g = StreamGuest.connect(sock);
        const junk = crypto.getRandomValues(new Uint8Array(1 + Math.floor(Math.random() * 4000)));
        // Every other stream starts with plausible lengths, so that frames of random content get through.
        if (i % 2 === 0) for (let at = 0; at + 4 < junk.length; at += 4 + 60) new DataView(junk.buffer).setUint32(at, 60, false);
        // orzo may drop the connection before it has all of it (EPIPE, ECONNRESET).
        await g.write(i % 3 === 0 ? junk.subarray(0, junk.length - 1) : junk).catch((e: Error) => expect(e.message).toMatch(/errno (32|104)$/));
        g.close();
      }
      const g = StreamGuest.connect(sock);
      await expectArp(g);
      g.close();
      expect(p.exitCode).toBeNull();
    } finally {
      p.kill();
    }
  });

  test("an impossible length drops the connection with an error; the next guest is served", async () => {
    const { p, sock, stderr } = await startPasst();
    try {
      for (const len of [0, 13, 65536, 0xffffffff]) {
        const g = StreamGuest.connect(sock);
        await expectArp(g);
        const prefix = new Uint8Array(4);
        new DataView(prefix.buffer).setUint32(0, len >>> 0, false);
        await g.write(prefix);
        expect(await g.closedByPeer()).toBe(true);
        g.close();
      }
      const g = StreamGuest.connect(sock);
      await expectArp(g);
      g.close();
      p.kill();
      const text = await stderr.rest();
      for (const len of [0, 13, 65536, 4294967295]) expect(text).toContain(`bad frame length ${len} from the guest`);
    } finally {
      p.kill();
    }
  });
});

describe("passt: TCP through the stream", () => {
  test("a connection to the host's loopback through the gateway address carries 300 KiB both ways", async () => {
    const port = 9101;
    const server = host.spawn([process.execPath, peer, "echo-server", String(port)]);
    await waitForLine(server.stdout as ReadableStream<Uint8Array>, /listening/, 10_000).found;
    const { p, sock } = await startPasst();
    const g = StreamGuest.connect(sock);
    try {
      const data = new Uint8Array(300 << 10);
      for (let off = 0; off < data.length; off += 65536) crypto.getRandomValues(data.subarray(off, Math.min(data.length, off + 65536)));
      const tcp = new ScriptedTcp(g, {
        guestMac: CLIENT_MAC, gatewayMac: OUR_MAC, guest: v4(TOPOLOGY.host4), server: v4(TOPOLOGY.router4), sport: 40001, dport: port,
      });
      await tcp.connect();
      await tcp.exchange(data, { fin: true, untilFin: true, timeoutMs: 30_000 });
      const got = Buffer.concat(tcp.received);
      expect(got.length).toBe(data.length);
      expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    } finally {
      g.close();
      p.kill();
      server.kill();
    }
  });

  test("a host server that sends as soon as it accepts: 200 KiB reach the guest", async () => {
    const port = 9102;
    const data = new Uint8Array(200 << 10);
    crypto.getRandomValues(data.subarray(0, 65536));
    data.copyWithin(65536, 0);
    const file = join(tmp, "first.bin");
    await Bun.write(file, data);
    host.spawn(["socat", "-u", `OPEN:${file}`, `TCP4-LISTEN:${port},bind=127.0.0.1,reuseaddr`]);
    expect(await waitFor(async () => (await host.run(["ss", "-Hltn", `sport = :${port}`])).stdout.trim() !== "", 10_000)).toBe(true);
    const { p, sock } = await startPasst();
    const g = StreamGuest.connect(sock);
    try {
      const tcp = new ScriptedTcp(g, {
        guestMac: CLIENT_MAC, gatewayMac: OUR_MAC, guest: v4(TOPOLOGY.host4), server: v4(TOPOLOGY.router4), sport: 40002, dport: port,
      });
      await tcp.connect();
      await tcp.exchange(new Uint8Array(0), { fin: false, untilFin: true, timeoutMs: 15_000 });
      await tcp.finish();
      expect(Buffer.compare(Buffer.concat(tcp.received), data)).toBe(0);
    } finally {
      g.close();
      p.kill();
    }
  });
});

describe("passt: lifecycle", () => {
  test("-1: orzo exits with status 0 when the guest disconnects, and removes its socket", async () => {
    // As root orzo runs as nobody unless --runas 0, and nobody may not remove root's socket file.
    const { p, sock } = await startPasst(["-1", "--runas", "0"]);
    const g = StreamGuest.connect(sock);
    await expectArp(g);
    g.close();
    const code = await Promise.race([p.exited, Bun.sleep(5000).then(() => "timeout")]);
    expect(code).toBe(0);
    expect(existsSync(sock)).toBe(false);
  });

  test("without -f: -P is written once the socket listens, and orzo serves from the background", async () => {
    const sock = join(tmp, "bg.sock");
    const pidFile = join(tmp, "bg.pid");
    const r = await host.run([orzo, "passt", "--runas", "0", "-s", sock, "-P", pidFile]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`addr.path=${sock}`);
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    try {
      expect(existsSync(sock)).toBe(true);
      const g = StreamGuest.connect(sock);
      await expectArp(g);
      g.close();
      // Not one-off: the next guest is served too.
      const again = StreamGuest.connect(sock);
      await expectArp(again);
      again.close();
    } finally {
      process.kill(pid, "SIGTERM");
    }
    expect(await waitFor(() => exited(pid), 5000)).toBe(true);
    expect(existsSync(sock)).toBe(false);
  });

  test("--fd: an inherited socket is served from the background; orzo exits when it is closed", async () => {
    // Non-blocking, as StreamGuest wants: orzo makes its end non-blocking anyway (the flag is shared by both).
    const [ours, theirs] = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const pidFile = join(tmp, "fd.pid");
    let pid = 0;
    try {
      const proc = Bun.spawn([...host.prefix(), orzo, "passt", "--fd", "3", "-P", pidFile], { stdio: ["ignore", "pipe", "pipe", theirs] });
      close(theirs);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      expect(await proc.exited).toBe(0);
      clearTimeout(timer);
      pid = Number(readFileSync(pidFile, "utf8").trim());
      expect(pid).toBeGreaterThan(1);
      const g = new StreamGuest(ours);
      await expectArp(g);
      g.close();
      expect(await waitFor(() => exited(pid), 5000)).toBe(true);
    } finally {
      if (pid > 0 && !exited(pid)) process.kill(pid, "SIGKILL");
    }
  });
});

/**
 * UDP flows in process: guest frames handed to UdpFlows (or the whole ingress), real host sockets as peers, and a
 * real event loop, all inside a private network namespace of the test thread (only loopback exists there, so
 * nothing a test or a fuzzed frame asks for can leave the machine).
 */
import { describe, expect, test } from "bun:test";
import { flows, flowTableInit } from "../src/flows/epoll.ts";
import { UdpFlows, type UdpOptions } from "../src/flows/udp.ts";
import { EventLoop } from "../src/loop.ts";
import type { NetConf } from "../src/netconf.ts";
import { Mem } from "../src/syscalls/mem.ts";
import { L2Ingress } from "../src/tap/ingress.ts";
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethEmit } from "../src/wire/ethernet.ts";
import { icmpChecksumOk } from "../src/wire/icmp.ts";
import { icmp6ChecksumOk } from "../src/wire/icmpv6.ts";
import { inanyIsV4, inanyToText } from "../src/wire/inany.ts";
import { IPPROTO_UDP } from "../src/wire/ip.ts";
import { ipv4ChecksumOk, ipv4Emit } from "../src/wire/ipv4.ts";
import { ipv6Emit } from "../src/wire/ipv6.ts";
import { udpChecksumOk4, udpChecksumOk6, udpEmit, udpSetChecksum4, udpSetChecksum6 } from "../src/wire/udp.ts";
import { inPrivateNetns } from "./helpers/private-netns.ts";
import { CLIENT_MAC, ip, OUR_MAC, parseIp6, parseUdp4, RecordingLink, testNetConf, type SentFrame } from "./helpers/services.ts";
import { UdpPeer, type Received } from "./helpers/udp-peer.ts";

const GUEST4 = "198.51.100.1";
const GATEWAY4 = "198.51.100.254";
const GUEST_LL = "fe80::5eff:fe00:a";
const GATEWAY6 = "fe80::fe";
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** A guest's UDP frame in its own pinned memory, as the tap would hand it over. */
interface GuestFrame {
  mem: Mem;
  len: number;
  l4: number;
  v6: boolean;
}

/** Builds the guest's datagram from src:sport to dst:dport (valid checksums, TTL/hop limit ttl). */
function guestFrame(src: string, sport: number, dst: string, dport: number, payload: Uint8Array, ttl = 64): GuestFrame {
  const s = ip(src);
  const d = ip(dst);
  const v6 = !inanyIsV4(s, 0);
  const l4 = 14 + (v6 ? 40 : 20);
  const len = l4 + 8 + payload.length;
  const mem = new Mem(len);
  const b = mem.bytes;
  ethEmit(b, 0, OUR_MAC, 0, CLIENT_MAC, 0, v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
  if (v6) ipv6Emit(b, 14, s, 0, d, 0, IPPROTO_UDP, 8 + payload.length, 0, ttl);
  else ipv4Emit(b, 14, s, 12, d, 12, IPPROTO_UDP, 8 + payload.length, ttl);
  udpEmit(b, l4, sport, dport, payload.length);
  b.set(payload, l4 + 8);
  if (v6) udpSetChecksum6(b, 14, l4, 8 + payload.length);
  else udpSetChecksum4(b, 14, l4, 8 + payload.length);
  return { mem, len, l4, v6 };
}

/** What a test works with: a loop, a link, UDP flows over a fresh flow table, and the NetConf they use. */
interface Rig {
  loop: EventLoop;
  link: RecordingLink;
  udp: UdpFlows;
  nc: NetConf;
  /** Hands a guest frame to the flows. */
  send(g: GuestFrame): void;
  /** Runs the loop until n frames reached the guest (or timeoutMs passed); returns them parsed. */
  frames(n: number, timeoutMs?: number): SentFrame[];
  close(): void;
}

function rig(options: UdpOptions = {}, tweak?: (nc: NetConf) => void): Rig {
  const loop = new EventLoop({ timeoutMs: 20 });
  flowTableInit(1024, loop.id);
  const nc = testNetConf();
  nc.ip6.addrLinkLocalSeen.set(ip(GUEST_LL));
  tweak?.(nc);
  const link = new RecordingLink(1 << 20, 256);
  const udp = new UdpFlows(loop, nc, link, options);
  const got: SentFrame[] = [];
  return {
    loop, link, udp, nc,
    send: (g) => {
      udp.fromTap(g.mem.bytes, g.mem.addr, 14, g.l4, g.len - g.l4, g.v6, performance.now());
      udp.flushSends();
    },
    frames: (n, timeoutMs = 2000) => {
      const deadline = performance.now() + timeoutMs;
      while (got.length < n && performance.now() < deadline) {
        loop.runOnce(10);
        for (const f of link.take()) got.push(f[12] === 0x86 ? parseIp6(f, IPPROTO_UDP) : parseUdp4(f));
      }
      return got.splice(0);
    },
    close: () => {
      flows().forEachActive((f) => flows().markFree(f));
      flows().defer(performance.now(), false);
      loop.close();
    },
  };
}

/** The payload of a parsed frame. */
const payloadOf = (f: SentFrame) => f.frame.slice(f.off, f.off + f.len);

/**
 * An ICMP or ICMPv6 error frame to the guest, checksums checked: addresses, type, code, the MTU field, and the
 * quoted datagram (addresses, ports, payload).
 */
function icmpError(f: Uint8Array) {
  const v6 = f[12] === 0x86;
  const ip = 14;
  const icmp = ip + (v6 ? 40 : 20);
  const inner = icmp + 8;
  const udp = inner + (v6 ? 40 : 20);
  const addr = (off: number) => inanyToText(v6 ? f.subarray(off, off + 16) : ip4in6(f.subarray(off, off + 4)), 0);
  const [src, dst, isrc, idst] = v6 ? [ip + 8, ip + 24, inner + 8, inner + 24].map(addr) : [ip + 12, ip + 16, inner + 12, inner + 16].map(addr);
  const ok = v6 ? icmp6ChecksumOk(f, ip, icmp, f.length - icmp) && udpChecksumOk6(f, inner, udp, f.length - udp) :
    icmpChecksumOk(f, icmp, f.length - icmp) && ipv4ChecksumOk(f, ip, 20) && udpChecksumOk4(f, inner, udp, f.length - udp);
  if (!ok) throw new Error(`bad checksum in ${Buffer.from(f).toString("hex")}`);
  return {
    src, dst, type: f[icmp], code: f[icmp + 1], info: new DataView(f.buffer, f.byteOffset).getUint32(icmp + 4),
    quoted: [isrc, (f[udp] << 8) | f[udp + 1], idst, (f[udp + 2] << 8) | f[udp + 3]], data: str(f.subarray(udp + 8)),
  };
}

function ip4in6(a: Uint8Array): Uint8Array {
  return Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a]);
}

/** Receives one datagram or fails the test. */
function expectDatagram(peer: UdpPeer, timeoutMs = 2000): Received {
  const r = peer.recv(timeoutMs);
  if (r === null || typeof r === "number") throw new Error(`no datagram on ${peer.address}:${peer.port}: ${r}`);
  return r;
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
}

describe("UDP flows from the guest", () => {
  test("to the gateway: the host's loopback, the guest's source port kept; replies come from the gateway", () => {
    inPrivateNetns(() => {
      const r = rig();
      const server4 = new UdpPeer("127.0.0.1", 5000);
      const server6 = new UdpPeer("::1", 5000);
      try {
        r.send(guestFrame(GUEST4, 40000, GATEWAY4, 5000, text("hello")));
        const q = expectDatagram(server4);
        expect([str(q.data), q.from.address, q.from.port]).toEqual(["hello", "127.0.0.1", 40000]);
        expect(server4.sendTo(q.from.address, q.from.port, text("world"))).toBe(5);
        const [reply] = r.frames(1);
        expect([reply.src, reply.sport, reply.dst, reply.dport, str(payloadOf(reply))]).toEqual([GATEWAY4, 5000, GUEST4, 40000, "world"]);
        expect([reply.srcMac, reply.dstMac]).toEqual(["9a:55:9a:55:9a:55", "02:00:5e:00:00:0a"]);

        r.send(guestFrame(GUEST4, 40000, GATEWAY4, 5000, text("again")));
        expect(str(expectDatagram(server4).data)).toBe("again");

        r.send(guestFrame(GUEST_LL, 40001, GATEWAY6, 5000, text("hello6")));
        const q6 = expectDatagram(server6);
        expect([str(q6.data), q6.from.address, q6.from.port]).toEqual(["hello6", "::1", 40001]);
        server6.sendTo("::1", 40001, text("world6"));
        const [reply6] = r.frames(1);
        expect([reply6.src, reply6.sport, reply6.dst, reply6.dport, str(payloadOf(reply6))]).toEqual([GATEWAY6, 5000, GUEST_LL, 40001, "world6"]);
        expect(r.udp.stats).toMatchObject({ fromTap: 3, toTap: 2, flowsOpened: 2, dropped: 0 });
        expect(flows().count).toBe(2);
      } finally {
        server4.close();
        server6.close();
        r.close();
      }
    });
  });

  test("the largest datagrams, 65,507 bytes over IPv4 and 65,527 over IPv6, arrive byte for byte both ways", () => {
    inPrivateNetns(() => {
      const r = rig();
      const servers = [new UdpPeer("127.0.0.1", 5001), new UdpPeer("::1", 5001)];
      try {
        for (const [src, dst, size, server] of [[GUEST4, GATEWAY4, 65507, servers[0]], [GUEST_LL, GATEWAY6, 65527, servers[1]]] as const) {
          const data = randomBytes(size);
          r.send(guestFrame(src, 41000, dst, 5001, data));
          const q = expectDatagram(server);
          expect(q.data.length).toBe(size);
          expect(Buffer.compare(q.data, data)).toBe(0);
          const back = randomBytes(size);
          expect(server.sendTo(q.from.address, q.from.port, back)).toBe(size);
          const [reply] = r.frames(1);
          expect(reply.len).toBe(size);
          expect(Buffer.compare(payloadOf(reply), back)).toBe(0);
        }
      } finally {
        for (const s of servers) s.close();
        r.close();
      }
    });
  });

  test("DNS to the --dns-forward address reaches the host's resolver and is answered from the forward address", () => {
    inPrivateNetns(() => {
      const r = rig({}, (nc) => {
        nc.ip4.dnsMatch.set(ip("169.254.0.1"));
        nc.ip4.dnsHost.set(ip("127.0.0.1"));
      });
      const resolver = new UdpPeer("127.0.0.1", 53);
      try {
        r.send(guestFrame(GUEST4, 42000, "169.254.0.1", 53, text("query")));
        const q = expectDatagram(resolver);
        expect(str(q.data)).toBe("query");
        resolver.sendTo(q.from.address, q.from.port, text("answer"));
        const [reply] = r.frames(1);
        expect([reply.src, reply.sport, reply.dst, reply.dport, str(payloadOf(reply))]).toEqual(["169.254.0.1", 53, GUEST4, 42000, "answer"]);
        // Another port of that address is not DNS: it goes to the address itself, unreachable here.
        r.send(guestFrame(GUEST4, 42000, "169.254.0.1", 54, text("other")));
        expect(resolver.recv(100)).toBeNull();
        expect(r.udp.stats.dropped).toBe(1);
      } finally {
        resolver.close();
        r.close();
      }
    });
  });

  test("datagrams of a burst wait for flushSends, leave in order per flow, and a change of flow sends the queue first", () => {
    inPrivateNetns(() => {
      const r = rig();
      const a = new UdpPeer("127.0.0.1", 5010);
      const b = new UdpPeer("127.0.0.1", 5011);
      const queue = (g: GuestFrame) => r.udp.fromTap(g.mem.bytes, g.mem.addr, 14, g.l4, g.len - g.l4, g.v6, performance.now());
      try {
        for (let i = 0; i < 3; i++) queue(guestFrame(GUEST4, 40100, GATEWAY4, 5010, text(`a${i}`)));
        expect(a.recv(50)).toBeNull();
        r.udp.flushSends();
        expect([0, 1, 2].map(() => str(expectDatagram(a).data))).toEqual(["a0", "a1", "a2"]);

        // 150 datagrams to a, every tenth to b: more than one batch, and flow changes in between.
        const wantA: string[] = [];
        const wantB: string[] = [];
        const frames: GuestFrame[] = [];
        for (let i = 0; i < 150; i++) {
          const toB = i % 10 === 9;
          (toB ? wantB : wantA).push(`${toB ? "b" : "a"}${i}`);
          frames.push(guestFrame(GUEST4, 40100, GATEWAY4, toB ? 5011 : 5010, text(`${toB ? "b" : "a"}${i}`)));
        }
        for (const g of frames) queue(g);
        r.udp.flushSends();
        expect(wantA.map(() => str(expectDatagram(a).data))).toEqual(wantA);
        expect(wantB.map(() => str(expectDatagram(b).data))).toEqual(wantB);
        expect(r.udp.stats).toMatchObject({ fromTap: 153, sent: 153, sendFailed: 0 });
      } finally {
        a.close();
        b.close();
        r.close();
      }
    });
  });

  test("a refused port: the guest gets the port unreachable, quoting its datagram; the flow stays and works later", () => {
    inPrivateNetns(() => {
      const r = rig();
      try {
        const payload = text("nobody listens here");
        r.send(guestFrame(GUEST4, 43000, GATEWAY4, 5999, payload));
        r.send(guestFrame(GUEST_LL, 43001, GATEWAY6, 5999, payload));
        const got: Uint8Array[] = [];
        const deadline = performance.now() + 2000;
        while (got.length < 2 && performance.now() < deadline) {
          r.loop.runOnce(10);
          got.push(...r.link.take());
        }
        // From the address the guest sent to, quoting its own datagram: 8 bytes of payload for ICMP, all for ICMPv6.
        expect(got.map(icmpError)).toEqual([
          { src: GATEWAY4, dst: GUEST4, type: 3, code: 3, info: 0, quoted: [GUEST4, 43000, GATEWAY4, 5999], data: "nobody l" },
          { src: GATEWAY6, dst: GUEST_LL, type: 1, code: 4, info: 0, quoted: [GUEST_LL, 43001, GATEWAY6, 5999], data: str(payload) },
        ]);
        expect(r.udp.icmp.stats).toEqual({ relayed: 2, dropped: 0 });
        expect(r.udp.stats.socketErrors).toBeGreaterThan(0);
        expect(r.loop.handlerErrors).toBe(0);
        expect(flows().count).toBe(2);
        const server = new UdpPeer("127.0.0.1", 5999);
        try {
          r.send(guestFrame(GUEST4, 43000, GATEWAY4, 5999, text("now")));
          expect(str(expectDatagram(server).data)).toBe("now");
          expect(r.udp.stats.flowsOpened).toBe(2);
        } finally {
          server.close();
        }
      } finally {
        r.close();
      }
    });
  });

  test("idle flows are freed after the timeout, flows that talked both ways after the stream timeout", () => {
    inPrivateNetns(() => {
      const r = rig({ timeoutMs: 300, streamTimeoutMs: 1200 });
      r.loop.every(50, (now) => flows().defer(now, true));
      const server = new UdpPeer("127.0.0.1", 5002);
      try {
        r.send(guestFrame(GUEST4, 44000, GATEWAY4, 5002, text("one-way")));
        expectDatagram(server);
        for (let i = 0; i < 2; i++) {
          r.send(guestFrame(GUEST4, 44001, GATEWAY4, 5002, text("ping")));
          const q = expectDatagram(server);
          server.sendTo(q.from.address, q.from.port, text("pong"));
          expect(r.frames(1)).toHaveLength(1);
        }
        const start = performance.now();
        expect(flows().count).toBe(2);
        const wait = (count: number) => {
          while (flows().count > count && performance.now() - start < 5000) r.loop.runOnce(20);
          return performance.now() - start;
        };
        const first = wait(1);
        expect(first).toBeGreaterThan(250);
        expect(first).toBeLessThan(1100);
        const second = wait(0);
        expect(flows().count).toBe(0);
        expect(second).toBeGreaterThan(1100);
        expect(r.udp.stats.expired).toBe(2);
        // The port is free again: a new datagram opens a new flow bound to it.
        r.send(guestFrame(GUEST4, 44000, GATEWAY4, 5002, text("back")));
        expect(expectDatagram(server).from.port).toBe(44000);
      } finally {
        server.close();
        r.close();
      }
    });
  });
});

describe("UDP flows from listening sockets", () => {
  test("a datagram to a listener opens a flow to the guest; replies and later datagrams use the flow's socket", () => {
    inPrivateNetns(() => {
      const r = rig();
      const a = new UdpPeer("127.0.0.1", 6100);
      const b = new UdpPeer("127.0.0.1", 6101);
      const c = new UdpPeer("::1", 6102);
      try {
        const l4 = r.udp.listen("127.0.0.1", 6000, 7000);
        const l6 = r.udp.listen("::1", 6000, 7000);
        expect(l4).toBeGreaterThan(0);
        expect(l6).toBeGreaterThan(0);

        a.sendTo("127.0.0.1", 6000, text("a1"));
        const [f1] = r.frames(1);
        expect([f1.src, f1.sport, f1.dst, f1.dport, str(payloadOf(f1))]).toEqual([GATEWAY4, 6100, GUEST4, 7000, "a1"]);
        r.send(guestFrame(GUEST4, 7000, GATEWAY4, 6100, text("r1")));
        const got = expectDatagram(a);
        expect([str(got.data), got.from.address, got.from.port]).toEqual(["r1", "127.0.0.1", 6000]);

        a.sendTo("127.0.0.1", 6000, text("a2"));
        const [f2] = r.frames(1);
        expect([f2.sport, str(payloadOf(f2))]).toEqual([6100, "a2"]);
        expect(r.udp.stats.fromListeners).toBe(1);

        b.sendTo("127.0.0.1", 6000, text("b1"));
        const [f3] = r.frames(1);
        expect([f3.sport, f3.dport, str(payloadOf(f3))]).toEqual([6101, 7000, "b1"]);

        c.sendTo("::1", 6000, text("c1"));
        const [f4] = r.frames(1);
        expect([f4.src, f4.sport, f4.dst, f4.dport, str(payloadOf(f4))]).toEqual([GATEWAY6, 6102, GUEST_LL, 7000, "c1"]);
        r.send(guestFrame(GUEST_LL, 7000, GATEWAY6, 6102, text("r6")));
        const got6 = expectDatagram(c);
        expect([str(got6.data), got6.from.address, got6.from.port]).toEqual(["r6", "::1", 6000]);

        expect(flows().count).toBe(3);
        expect(r.udp.stats).toMatchObject({ flowsOpened: 3, fromListeners: 3, dropped: 0 });
        // The flows outlive their listener.
        r.udp.unlisten(l4);
        a.sendTo("127.0.0.1", 6000, text("a3"));
        expect(str(payloadOf(r.frames(1)[0]))).toBe("a3");
        r.udp.unlisten(l6);
      } finally {
        for (const p of [a, b, c]) p.close();
        r.close();
      }
    });
  });

  test("a dual-stack listener takes IPv4 peers too; a peer without a rule is dropped and counted", () => {
    inPrivateNetns(() => {
      const r = rig();
      const a = new UdpPeer("127.0.0.1", 6200);
      try {
        const fd = r.udp.listen("", 6001, 7001);
        a.sendTo("127.0.0.1", 6001, text("mapped"));
        const [f] = r.frames(1);
        expect([f.src, f.sport, f.dst, f.dport, str(payloadOf(f))]).toEqual([GATEWAY4, 6200, GUEST4, 7001, "mapped"]);
        r.send(guestFrame(GUEST4, 7001, GATEWAY4, 6200, text("back")));
        expect(expectDatagram(a).from).toEqual({ address: "127.0.0.1", port: 6001 });

        r.udp.inboundTarget = () => -1;
        const b = new UdpPeer("127.0.0.1", 6201);
        b.sendTo("127.0.0.1", 6001, text("no rule"));
        const deadline = performance.now() + 2000;
        while (r.udp.stats.dropped === 0 && performance.now() < deadline) r.loop.runOnce(10);
        expect(r.udp.stats.dropped).toBe(1);
        expect(flows().count).toBe(1);
        b.close();
        r.udp.unlisten(fd);
      } finally {
        a.close();
        r.close();
      }
    });
  });

  test("a rule's target address replaces the guest's; one of the other IP version is refused", () => {
    inPrivateNetns(() => {
      const r = rig();
      const a = new UdpPeer("127.0.0.1", 6400);
      const b = new UdpPeer("127.0.0.1", 6401);
      try {
        const fd = r.udp.listenSocket(null, true, 6002, 7);
        expect(fd).toBeGreaterThan(0);
        r.udp.inboundTarget = (rule, port, _pif, addr) => {
          addr.set(ip(port === 6002 && rule === 7 && a.port === 6400 ? "198.51.100.77" : "::1"));
          return 7002;
        };
        a.sendTo("127.0.0.1", 6002, text("to .77"));
        const [f] = r.frames(1);
        expect([f.src, f.sport, f.dst, f.dport]).toEqual([GATEWAY4, 6400, "198.51.100.77", 7002]);
        r.udp.inboundTarget = (_rule, _port, _pif, addr) => {
          addr.set(ip("2001:db8:1::77"));
          return 7002;
        };
        b.sendTo("127.0.0.1", 6002, text("to v6"));
        const deadline = performance.now() + 2000;
        while (r.udp.stats.dropped === 0 && performance.now() < deadline) r.loop.runOnce(10);
        expect(r.udp.stats.dropped).toBe(1);
        expect(flows().count).toBe(1);
        r.udp.unlisten(fd);
      } finally {
        a.close();
        b.close();
        r.close();
      }
    });
  });

  test("a listener on a port in use, or a bad port, is refused with a clear error", () => {
    inPrivateNetns(() => {
      const r = rig();
      const busy = new UdpPeer("127.0.0.1", 6300);
      try {
        expect(() => r.udp.listen("127.0.0.1", 6300, 7000)).toThrow(/bind\(UDP 127\.0\.0\.1:6300\): EADDRINUSE/);
        expect(() => r.udp.listen("127.0.0.1", 0, 7000)).toThrow(RangeError);
        expect(() => r.udp.listen("not-an-address", 6301, 7000)).toThrow(RangeError);
      } finally {
        busy.close();
        r.close();
      }
    });
  });
});

describe("UDP through the ingress: bad input", () => {
  test("random and truncated UDP frames never throw and are counted", () => {
    inPrivateNetns(() => {
      const loop = new EventLoop({ timeoutMs: 5 });
      flowTableInit(4096, loop.id);
      const nc = testNetConf();
      const link = new RecordingLink(1 << 20, 256);
      const ingress = new L2Ingress(nc);
      ingress.attach(loop, link, false);
      const server = new UdpPeer("127.0.0.1", 5003);
      let seed = 12345;
      const rand = () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed >>> 8;
      };
      const drops = () => Object.values(ingress.drops).reduce((a, b) => a + b, 0) + ingress.udp!.stats.dropped;
      const buf = new Mem(70000);
      const feed = (bytes: Uint8Array, len: number) => {
        buf.bytes.set(bytes.subarray(0, len), 8);
        ingress.frame(buf.bytes, buf.addr, 8, len, performance.now());
        ingress.flushInput();
      };
      try {
        // Every truncation of valid datagrams is one counted drop, and nothing reaches the server.
        for (const g of [guestFrame(GUEST4, 45000, GATEWAY4, 5003, randomBytes(300)), guestFrame(GUEST_LL, 45000, GATEWAY6, 5003, randomBytes(300))]) {
          for (let len = 0; len < g.len; len++) {
            const before = drops();
            feed(g.mem.bytes, len);
            expect(drops()).toBe(before + 1);
          }
        }
        expect(server.tryRecv()).toBeNull();
        // A UDP length beyond the packet, and port 0, are dropped by the flows.
        const g = guestFrame(GUEST4, 45001, GATEWAY4, 5003, text("x"));
        g.mem.bytes[g.l4 + 4] = 0xff;
        let before = drops();
        feed(g.mem.bytes, g.len);
        expect(drops()).toBe(before + 1);
        const z = guestFrame(GUEST4, 0, GATEWAY4, 5003, text("x"));
        before = drops();
        feed(z.mem.bytes, z.len);
        expect(drops()).toBe(before + 1);

        // Random headers and payloads behind a valid Ethernet + IP + UDP start.
        const frame = new Uint8Array(1600);
        for (let i = 0; i < 5000; i++) {
          const v6 = (i & 1) === 1;
          const len = 14 + (rand() % 1500);
          for (let k = 0; k < len; k++) frame[k] = rand() & 0xff;
          frame[12] = v6 ? 0x86 : 0x08;
          frame[13] = v6 ? 0xdd : 0x00;
          if (v6) {
            frame[14] = 0x60;
            frame[20] = IPPROTO_UDP;
          } else {
            frame[14] = 0x45;
            frame[23] = IPPROTO_UDP;
            frame[20] = 0x40;
            frame[21] = 0;
          }
          if (i % 3 === 0) {
            // Consistent lengths, so that the datagram gets as far as the flows.
            const plen = len - 14 - (v6 ? 40 : 20);
            if (plen < 0) continue;
            if (v6) frame.set([plen >> 8, plen & 0xff], 18);
            else frame.set([(plen + 20) >> 8, (plen + 20) & 0xff], 16);
            // Some to the gateway, so that flows with real sockets open too.
            if (i % 2 === 0) {
              frame.set(v6 ? ip(GATEWAY6) : ip(GATEWAY4).subarray(12), v6 ? 38 : 30);
              if (plen >= 8) frame.set([plen >> 8, plen & 0xff], (v6 ? 54 : 34) + 4);
            }
          }
          feed(frame, len);
          if (i % 100 === 0) loop.runOnce(0);
        }
        expect(ingress.counts.frames).toBeGreaterThan(5000);
        expect(ingress.udp!.stats.dropped).toBeGreaterThan(0);
        expect(ingress.udp!.stats.flowsOpened).toBeGreaterThan(100);
        expect(loop.handlerErrors).toBe(0);
      } finally {
        server.close();
        flows().forEachActive((f) => flows().markFree(f));
        flows().defer(performance.now(), false);
        loop.close();
      }
    });
  });
});

/**
 * Spliced UDP flows and rule-table listeners in process: UdpListeners over UdpFlows with a UdpSplice whose
 * "namespace" sockets are made in the test thread's private network namespace (only loopback exists there), real
 * peers as UdpPeer sockets, a real event loop run until the peers see their datagrams.
 */
import { describe, expect, test } from "bun:test";
import { flows, flowTableInit } from "../src/flows/epoll.ts";
import { Pif } from "../src/flows/flow.ts";
import { UdpFlows } from "../src/flows/udp.ts";
import { UdpListeners } from "../src/flows/udp_listen.ts";
import { UdpSplice, type UdpSpliceOptions } from "../src/flows/udp_splice.ts";
import { parseForwardSpecs, type ForwardOption, type ForwardTable } from "../src/fwd/rules.ts";
import { EventLoop } from "../src/loop.ts";
import { socket } from "../src/syscalls/socket.ts";
import { inPrivateNetns } from "./helpers/private-netns.ts";
import { parseUdp4, RecordingLink, testNetConf } from "./helpers/services.ts";
import { UdpPeer, type Received } from "./helpers/udp-peer.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

interface Rig {
  loop: EventLoop;
  link: RecordingLink;
  udp: UdpFlows;
  splice: UdpSplice;
  listeners: UdpListeners;
  /** How many sockets the "namespace" was asked for. */
  nsSockets: () => number;
  close(): void;
}

function rig(opts: Partial<Omit<UdpSpliceOptions, "ns">> = {}, timeoutMs?: number): Rig {
  const loop = new EventLoop({ timeoutMs: 20 });
  flowTableInit(1024);
  const nc = testNetConf();
  const link = new RecordingLink(1 << 20, 256);
  const udp = new UdpFlows(loop, nc, link, { timeoutMs, streamTimeoutMs: timeoutMs });
  let asked = 0;
  const sockets = (domain: number, type: number, protocol: number, count: number) => {
    asked += count;
    return Array.from({ length: count }, () => socket(domain, type, protocol));
  };
  const ns = {
    sockets,
    socketsAsync: (domain: number, type: number, protocol: number, count: number, done: (r: number[] | Error) => void) =>
      done(sockets(domain, type, protocol, count)),
  };
  const splice = new UdpSplice(nc, { ns, noSplice: false, hostLoToNsLo: true, spliceOnly: false, ...opts });
  udp.splice = splice;
  const listeners = new UdpListeners(udp, { freebind: false });
  return {
    loop, link, udp, splice, listeners,
    nsSockets: () => asked,
    close: () => {
      listeners.closeAll();
      splice.closePool();
      flows().forEachActive((f) => flows().markFree(f));
      flows().defer(performance.now(), false);
      loop.close();
    },
  };
}

function table(option: ForwardOption, spec: string): ForwardTable {
  return parseForwardSpecs([spec], { option, pasta: true, ipv4: true, ipv6: true, ephemeral: [32768, 60999] });
}

/** Runs the loop until the peer has a datagram (or 2 s passed); returns it or fails. */
function receive(r: Rig, peer: UdpPeer): Received {
  const deadline = performance.now() + 2000;
  while (performance.now() < deadline) {
    r.loop.runOnce(5);
    const got = peer.tryRecv();
    if (got !== null && typeof got !== "number") return got;
  }
  throw new Error(`no datagram on ${peer.address}:${peer.port}`);
}

describe("spliced UDP", () => {
  test("-u from the host's loopback: into the namespace's loopback on the mapped port, replies back from the listened port", () => {
    inPrivateNetns(() => {
      const r = rig();
      const server = new UdpPeer("127.0.0.1", 6301);
      const server6 = new UdpPeer("::1", 6301);
      const client = new UdpPeer("127.0.0.1");
      const client6 = new UdpPeer("::1");
      try {
        r.listeners.listenAll(table("-u", "6300:6301"), Pif.HOST);
        for (const [c, s, lo] of [[client, server, "127.0.0.1"], [client6, server6, "::1"]] as const) {
          expect(c.sendTo(lo, 6300, text(`ping ${lo}`))).toBe(5 + lo.length);
          const q = receive(r, s);
          expect([str(q.data), q.from.address]).toEqual([`ping ${lo}`, lo]);
          expect(s.sendTo(q.from.address, q.from.port, text("pong"))).toBe(4);
          const a = receive(r, c);
          expect([str(a.data), a.from.address, a.from.port]).toEqual(["pong", lo, 6300]);
          // The flow's sockets carry the next datagram; the listener sees no more of this peer.
          c.sendTo(lo, 6300, text("again"));
          expect(str(receive(r, s).data)).toBe("again");
        }
        expect(r.udp.stats).toMatchObject({ flowsOpened: 2, fromListeners: 2, toTap: 0, dropped: 0 });
        expect(r.splice.stats).toEqual({ sent: 4, sendFailed: 0, socketErrors: 0 });
        expect(r.link.take()).toHaveLength(0);
        expect(flows().count).toBe(2);
      } finally {
        for (const p of [server, server6, client, client6]) p.close();
        r.close();
      }
    });
  });

  test("-U: a namespace listener on lo goes to the host's loopback, 60,000 bytes intact both ways", () => {
    inPrivateNetns(() => {
      const r = rig();
      const server = new UdpPeer("127.0.0.1", 6311);
      const client = new UdpPeer("127.0.0.1");
      try {
        r.listeners.listenAll(table("-U", "6310:6311"), Pif.SPLICE);
        expect(r.nsSockets()).toBeGreaterThan(0);
        const big = new Uint8Array(60_000);
        crypto.getRandomValues(big);
        expect(client.sendTo("127.0.0.1", 6310, big)).toBe(big.length);
        const q = receive(r, server);
        expect(Buffer.compare(q.data, big)).toBe(0);
        expect(q.from.address).toBe("127.0.0.1");
        big.reverse();
        server.sendTo(q.from.address, q.from.port, big);
        const a = receive(r, client);
        expect([a.from.address, a.from.port, Buffer.compare(a.data, big)]).toEqual(["127.0.0.1", 6310, 0]);
      } finally {
        server.close();
        client.close();
        r.close();
      }
    });
  });

  test("--no-splice: the host's loopback goes to the guest over the tap, from the mapped loopback address", () => {
    inPrivateNetns(() => {
      const r = rig({ noSplice: true });
      const client = new UdpPeer("127.0.0.1");
      try {
        r.listeners.listenAll(table("-u", "6320:6321"), Pif.HOST);
        client.sendTo("127.0.0.1", 6320, text("tap"));
        const deadline = performance.now() + 2000;
        let frames: Uint8Array[] = [];
        while (frames.length === 0 && performance.now() < deadline) {
          r.loop.runOnce(5);
          frames = r.link.take();
        }
        expect(frames).toHaveLength(1);
        const f = parseUdp4(frames[0]);
        expect([f.sport, f.dport, str(f.frame.slice(f.off, f.off + f.len))]).toEqual([client.port, 6321, "tap"]);
        expect(r.nsSockets()).toBe(0);
      } finally {
        client.close();
        r.close();
      }
    });
  });

  test("idle spliced flows expire and close both sockets; later datagrams open a new flow", () => {
    inPrivateNetns(() => {
      const r = rig({}, 50);
      const server = new UdpPeer("127.0.0.1", 6331);
      const client = new UdpPeer("127.0.0.1");
      try {
        r.listeners.listenAll(table("-u", "6330:6331"), Pif.HOST);
        client.sendTo("127.0.0.1", 6330, text("one"));
        expect(str(receive(r, server).data)).toBe("one");
        expect(flows().count).toBe(1);
        const deadline = performance.now() + 2000;
        while (flows().count > 0 && performance.now() < deadline) {
          r.loop.runOnce(10);
          flows().defer(performance.now(), true);
        }
        expect(r.udp.stats.expired).toBe(1);
        client.sendTo("127.0.0.1", 6330, text("two"));
        expect(str(receive(r, server).data)).toBe("two");
        expect(r.udp.stats.flowsOpened).toBe(2);
      } finally {
        server.close();
        client.close();
        r.close();
      }
    });
  });

  test("a port a normal rule cannot bind is an error; a weak rule needs only one port", () => {
    inPrivateNetns(() => {
      const r = rig();
      const blocker = new UdpPeer("0.0.0.0", 6340);
      try {
        expect(() => r.listeners.listenAll(table("-u", "6340-6341"), Pif.HOST)).toThrow("cannot listen on UDP port 6340");
        // Exclude-only: the weak rule 6340-6342 is kept although 6340 is taken.
        const weak = table("-u", "~1-6339,~6343-65535");
        expect(weak.rules.map((rule) => [rule.first, rule.last, rule.weak])).toEqual([[6340, 6342, true]]);
        r.listeners.listenAll(weak, Pif.HOST);
        expect(r.listeners.fds.size).toBe(2);
      } finally {
        blocker.close();
        r.close();
      }
    });
  });
});

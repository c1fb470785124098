/**
 * TCP segments from the guest, handed to the real TCP path (flow table, event loop, host sockets) in a private
 * network namespace, with a recording link in place of the tap: the handshake with a real listening socket,
 * refusals, resets for segments that belong to no connection, and malformed segments dropped and counted.
 */
import { describe, expect, test } from "bun:test";
import { flows, flowTableInit } from "../src/flows/epoll.ts";
import { Pif } from "../src/flows/flow.ts";
import { TcpFlows } from "../src/flows/tcp.ts";
import { TcpListeners } from "../src/flows/tcp_listen.ts";
import { ACK_DELAY_MS } from "../src/flows/tcp_ack.ts";
import { TcpTapInput } from "../src/flows/tcp_tap.ts";
import { EventLoop } from "../src/loop.ts";
import { AF_INET, FIONREAD, SO_PEEK_OFF, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET, TCP_NODELAY } from "../src/syscalls/constants.ts";
import { close, recv, writeBytes } from "../src/syscalls/io.ts";
import { Mem } from "../src/syscalls/mem.ts";
import { ioctlPtr } from "../src/syscalls/process.ts";
import { accept4, bind, connect, getsockoptInt, listen, socket } from "../src/syscalls/socket.ts";
import { rd16, rd32 } from "../src/wire/bytes.ts";
import { ETH_HLEN, ETHERTYPE_IPV4, ethEmit } from "../src/wire/ethernet.ts";
import { IPPROTO_TCP } from "../src/wire/ip.ts";
import { inanyParse } from "../src/wire/inany.ts";
import { IP4_HLEN, ipv4Emit } from "../src/wire/ipv4.ts";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, tcpEmit, tcpParse, TcpOptions, tcpParseOptions, tcpSetChecksum4, tcpChecksumOk4 } from "../src/wire/tcp.ts";
import { inPrivateNetns } from "./helpers/private-netns.ts";
import { CLIENT_MAC, OUR_MAC, RecordingLink, testNetConf } from "./helpers/services.ts";

const GUEST = new Uint8Array([198, 51, 100, 1]);
const GATEWAY = new Uint8Array([198, 51, 100, 254]);
const L4 = ETH_HLEN + IP4_HLEN;

/** A TCP/IPv4 frame from the guest to the gateway address (the host's loopback). */
function segment(sport: number, dport: number, seq: number, ack: number, flags: number, payload = new Uint8Array(0), opts?: { mss?: number; ws?: number; doff?: number }): Uint8Array {
  const hlen = 20 + (opts?.mss ? 4 : 0) + (opts?.ws !== undefined ? 4 : 0);
  const f = new Uint8Array(L4 + hlen + payload.length);
  ethEmit(f, 0, OUR_MAC, 0, CLIENT_MAC, 0, ETHERTYPE_IPV4);
  ipv4Emit(f, ETH_HLEN, GUEST, 0, GATEWAY, 0, IPPROTO_TCP, hlen + payload.length, 64);
  tcpEmit(f, L4, sport, dport, seq, ack, flags, 65535, opts?.mss ?? 0, opts?.ws ?? -1);
  f.set(payload, L4 + hlen);
  if (opts?.doff !== undefined) f[L4 + 12] = opts.doff << 4;
  tcpSetChecksum4(f, ETH_HLEN, L4, hlen + payload.length);
  return f;
}

interface Seg { flags: number; seq: number; ack: number; sport: number; dport: number; payload: number; mss: number; ws: number }

function parse(frame: Uint8Array): Seg {
  const tcpLen = rd16(frame, ETH_HLEN + 2) - IP4_HLEN;
  expect(tcpChecksumOk4(frame, ETH_HLEN, L4, tcpLen)).toBe(true);
  const hlen = tcpParse(frame, L4, tcpLen);
  const o = new TcpOptions();
  tcpParseOptions(frame, L4, hlen, o);
  return { flags: frame[L4 + 13], seq: rd32(frame, L4 + 4), ack: rd32(frame, L4 + 8), sport: rd16(frame, L4), dport: rd16(frame, L4 + 2), payload: tcpLen - hlen, mss: o.mss, ws: o.wscale };
}

/** What withTcp hands its test: the loop, the recording link, the TCP path, and ways to feed and drive them. */
interface TcpEnv {
  loop: EventLoop;
  link: RecordingLink;
  tcp: TcpFlows;
  input: TcpTapInput;
  send: (f: Uint8Array) => void;
  spin: (until: () => boolean) => void;
}

/** A TCP path over a recording link, in a private namespace for the duration of fn (synchronous). */
function withTcp(fn: (env: TcpEnv) => void): void {
  inPrivateNetns(() => {
    const loop = new EventLoop();
    const flows = flowTableInit(64, loop.id);
    const link = new RecordingLink(1 << 20, 256);
    const nc = testNetConf();
    const tcp = new TcpFlows(loop, nc, link);
    const input = new TcpTapInput(tcp, nc);
    const mem = new Mem(70000);
    const send = (f: Uint8Array) => {
      mem.bytes.set(f, 0);
      input.fromTap(mem.bytes, mem.addr, ETH_HLEN, L4, f.length - L4, false, performance.now());
      tcp.flushAcks();
    };
    const spin = (until: () => boolean) => {
      for (let i = 0; i < 200 && !until(); i++) {
        loop.runOnce(10);
        tcp.flushAcks();
        flows.defer(performance.now(), false);
      }
    };
    try {
      fn({ loop, link, tcp, input, send, spin });
    } finally {
      flows.forEachActive((f) => flows.markFree(f));
      flows.defer(performance.now(), false);
      loop.close();
    }
  });
}

/**
 * A guest connection (MSS 1460, window scale 7) from sport to a real listener on 127.0.0.1:port, handshake done:
 * the listener, the accepted host socket, and our ISN.
 */
function established(env: TcpEnv, sport: number, port: number, iss: number): { lfd: number; conn: number; isn: number } {
  const lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bind(lfd, { family: "ipv4", address: "127.0.0.1", port });
  listen(lfd, 4);
  env.send(segment(sport, port, iss, 0, TCP_SYN, undefined, { mss: 1460, ws: 7 }));
  let frames: Uint8Array[] = [];
  env.spin(() => (frames = frames.concat(env.link.take())).length > 0);
  const isn = parse(frames[0]).seq;
  env.send(segment(sport, port, iss + 1, isn + 1, TCP_ACK));
  env.link.take();
  return { lfd, conn: accept4(lfd, 0), isn };
}

describe("TCP from the guest", () => {
  test("handshake with a real listener: SYN-ACK with options only after connect, data reaches the socket, FIN closes", () => {
    withTcp(({ link, send, spin, tcp }) => {
      const lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bind(lfd, { family: "ipv4", address: "127.0.0.1", port: 7001 });
      listen(lfd, 4);
      send(segment(40000, 7001, 1000, 0, TCP_SYN, undefined, { mss: 1460, ws: 7 }));
      let frames: Uint8Array[] = [];
      spin(() => (frames = frames.concat(link.take())).length > 0);
      const synAck = parse(frames[0]);
      expect(synAck.flags).toBe(TCP_SYN | TCP_ACK);
      expect(synAck.ack).toBe(1001);
      expect(synAck.sport).toBe(7001);
      expect(synAck.dport).toBe(40000);
      expect(synAck.mss).toBe(61440);
      expect(synAck.ws).toBe(8);
      const isn = synAck.seq;
      const hello = new TextEncoder().encode("hello, host");
      send(segment(40000, 7001, 1001, isn + 1, TCP_ACK | TCP_PSH, hello));
      const acks = link.take().map(parse);
      expect(acks.at(-1)!.ack).toBe(1001 + hello.length);
      const conn = accept4(lfd, 0);
      expect(conn).toBeGreaterThanOrEqual(0);
      const buf = new Mem(64);
      expect(recv(conn, buf.addr, 64, 0)).toBe(hello.length);
      expect(new TextDecoder().decode(buf.bytes.subarray(0, hello.length))).toBe("hello, host");
      // Silent for 30 s: a keepalive one byte behind what was sent.
      tcp.keepalive(performance.now() + 31_000);
      const ka = link.take().map(parse);
      expect(ka.length).toBe(1);
      expect(ka[0].flags).toBe(TCP_ACK);
      expect(ka[0].seq).toBe(isn);
      send(segment(40000, 7001, 1001 + hello.length, isn + 1, TCP_ACK | TCP_FIN));
      expect(link.take().map(parse).at(-1)!.ack).toBe(1002 + hello.length);
      expect(recv(conn, buf.addr, 64, 0)).toBe(0);
      close(conn);
      let fin: Seg | undefined;
      spin(() => (fin = link.take().map(parse).find((s) => s.flags & TCP_FIN)) !== undefined);
      expect(fin!.flags & TCP_ACK).toBe(TCP_ACK);
      expect(fin!.seq).toBe(isn + 1);
      close(lfd);
    });
  });

  test("data toward the guest stays in the socket until acknowledged, and is resent from there on timeout", () => {
    withTcp((env) => {
      const { link, send, spin } = env;
      const { lfd, conn, isn } = established(env, 40010, 7006, 9000);
      const msg = new TextEncoder().encode("from the host");
      expect(writeBytes(conn, msg)).toBe(msg.length);
      let data: Seg[] = [];
      spin(() => (data = data.concat(link.take().map(parse).filter((x) => x.payload > 0))).length > 0);
      expect(data[0].seq).toBe(isn + 1);
      expect(data[0].payload).toBe(msg.length);
      // No ACK from the guest: after the 1 s RTO the same bytes come again, peeked from the socket.
      const t0 = performance.now();
      let again: Seg[] = [];
      spin(() => (again = again.concat(link.take().map(parse).filter((x) => x.payload > 0))).length > 0);
      expect(performance.now() - t0).toBeGreaterThan(800);
      expect(again[0].seq).toBe(isn + 1);
      expect(again[0].payload).toBe(msg.length);
      // Acknowledged: dropped from the socket; the next bytes follow them in sequence.
      send(segment(40010, 7006, 9001, isn + 1 + msg.length, TCP_ACK));
      expect(writeBytes(conn, msg)).toBe(msg.length);
      let next: Seg[] = [];
      spin(() => (next = next.concat(link.take().map(parse).filter((x) => x.payload > 0))).length > 0);
      expect(next[0].seq).toBe(isn + 1 + msg.length);
      close(conn);
      close(lfd);
    });
  });

  test("a guest that acknowledges within the grace costs no timer fd; a silent one has its timer milliseconds later", () => {
    withTcp((env) => {
      const { link, send, spin } = env;
      const { lfd, conn, isn } = established(env, 40030, 7012, 7000);
      const t = flows();
      let f = -1;
      t.forEachActive((x) => (f = x));
      const msg = new TextEncoder().encode("ping");
      const dataOut = () => link.take().map(parse).some((x) => x.payload > 0);
      expect(writeBytes(conn, msg)).toBe(msg.length);
      spin(dataOut);
      send(segment(40030, 7012, 7001, isn + 1 + msg.length, TCP_ACK));
      for (let i = 0; i < 5; i++) env.loop.runOnce(5);
      expect(t.timer[f]).toBe(-1);
      // Unacknowledged: the timer exists within a few milliseconds, without any other event.
      expect(writeBytes(conn, msg)).toBe(msg.length);
      spin(dataOut);
      const t0 = performance.now();
      for (let i = 0; i < 5 && t.timer[f] < 0; i++) env.loop.runOnce(1000);
      expect(t.timer[f]).toBeGreaterThanOrEqual(0);
      expect(performance.now() - t0).toBeLessThan(50);
      close(conn);
      close(lfd);
    });
  });

  test("the host closes first: the guest's last FIN is still acknowledged", () => {
    withTcp(({ link, send, spin, tcp }) => {
      const lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bind(lfd, { family: "ipv4", address: "127.0.0.1", port: 7007 });
      listen(lfd, 4);
      send(segment(40011, 7007, 3000, 0, TCP_SYN, undefined, { mss: 1460 }));
      let frames: Uint8Array[] = [];
      spin(() => (frames = frames.concat(link.take())).length > 0);
      const isn = parse(frames[0]).seq;
      send(segment(40011, 7007, 3001, isn + 1, TCP_ACK));
      close(accept4(lfd, 0));
      let fin: Seg | undefined;
      spin(() => (fin = link.take().map(parse).find((x) => x.flags & TCP_FIN)) !== undefined);
      expect(fin!.seq).toBe(isn + 1);
      send(segment(40011, 7007, 3001, isn + 2, TCP_ACK | TCP_FIN));
      const last = link.take().map(parse);
      expect(last.at(-1)!.flags).toBe(TCP_ACK);
      expect(last.at(-1)!.ack).toBe(3002);
      expect(tcp.stats.closed).toBe(1);
      close(lfd);
    });
  });

  test("a small request's ACK rides on the reply; unanswered, it follows after the delay; a full segment's at once", () => {
    withTcp((env) => {
      const { link, send, spin } = env;
      const { lfd, conn, isn } = established(env, 40012, 7008, 100);
      const acked = (seq: number) => (x: Seg) => x.ack === seq;
      let seq = 101;
      // The first payload may move the window (measured for the first time): whatever it gets, let it settle.
      send(segment(40012, 7008, seq, isn + 1, TCP_ACK | TCP_PSH, new Uint8Array(1)));
      seq += 1;
      spin(() => link.take().map(parse).some(acked(seq)));

      // A request: no pure ACK now; the host's reply carries the acknowledgment.
      send(segment(40012, 7008, seq, isn + 1, TCP_ACK | TCP_PSH, new TextEncoder().encode("ping")));
      seq += 4;
      expect(link.take().map(parse).filter(acked(seq))).toEqual([]);
      expect(writeBytes(conn, new TextEncoder().encode("pong"))).toBe(4);
      let seen: Seg[] = [];
      spin(() => (seen = seen.concat(link.take().map(parse))).some((x) => x.payload > 0));
      expect(seen.filter((x) => x.payload === 0)).toEqual([]);
      expect(seen.find((x) => x.payload > 0)!.ack).toBe(seq);
      send(segment(40012, 7008, seq, isn + 1 + 4, TCP_ACK));

      // Unanswered: a pure ACK once the delay is over, not before.
      const t0 = performance.now();
      send(segment(40012, 7008, seq, isn + 1 + 4, TCP_ACK | TCP_PSH, new TextEncoder().encode("ping")));
      seq += 4;
      expect(link.take().map(parse).filter(acked(seq))).toEqual([]);
      let late: Seg[] = [];
      spin(() => (late = link.take().map(parse).filter(acked(seq))).length > 0);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(ACK_DELAY_MS);
      expect(late[0].payload).toBe(0);

      // A full segment: acknowledged at the end of the very cycle.
      send(segment(40012, 7008, seq, isn + 1 + 4, TCP_ACK, new Uint8Array(1460)));
      seq += 1460;
      expect(link.take().map(parse).filter(acked(seq)).length).toBe(1);
      close(conn);
      close(lfd);
    });
  });

  test("ACKs of one burst are discarded together at its end; a duplicate ACK in it resends from the last acknowledged byte", () => {
    withTcp((env) => {
      const { link, spin, tcp, input } = env;
      const { lfd, conn, isn } = established(env, 40013, 7009, 500);
      const msg = new Uint8Array(600).map((_, i) => i % 251);
      expect(writeBytes(conn, msg)).toBe(msg.length);
      let sent = 0;
      spin(() => (sent += link.take().map(parse).reduce((a, x) => a + x.payload, 0)) >= msg.length);
      const sock = flows().fd[1];
      const inq = new Mem(4);
      const queued = () => (ioctlPtr(sock, FIONREAD, inq.addr) === 0 ? inq.view.getInt32(0, true) : -1);
      expect(queued()).toBe(600);
      // One burst without the end-of-burst flush: two ACKs, then the same ACK again (the guest missed a segment).
      const burst = (f: Uint8Array) => {
        const mem = new Mem(f.length);
        mem.bytes.set(f);
        input.fromTap(mem.bytes, mem.addr, ETH_HLEN, L4, f.length - L4, false, performance.now());
      };
      burst(segment(40013, 7009, 501, isn + 1 + 100, TCP_ACK));
      burst(segment(40013, 7009, 501, isn + 1 + 300, TCP_ACK));
      expect(queued()).toBe(600);
      burst(segment(40013, 7009, 501, isn + 1 + 300, TCP_ACK));
      // The rewind discarded first: the resent bytes are the 300 not acknowledged, content and sequence.
      expect(queued()).toBe(300);
      const again = link.take().filter((fr) => parse(fr).payload > 0);
      expect(again.length).toBe(1);
      const seg = parse(again[0]);
      expect([seg.seq, seg.payload]).toEqual([isn + 1 + 300, 300]);
      expect(Array.from(again[0].subarray(again[0].length - 300))).toEqual(Array.from(msg.subarray(300)));
      // The rest acknowledged in another burst: discarded at its end.
      burst(segment(40013, 7009, 501, isn + 1 + 600, TCP_ACK));
      expect(queued()).toBe(300);
      tcp.io.flushDiscards();
      expect(queued()).toBe(0);
      close(conn);
      close(lfd);
    });
  });

  test("a listener hands TCP_NODELAY and the peek offset to what it accepts; waiting connections are accepted one per event", () => {
    withTcp(({ loop, tcp, input }) => {
      const listeners = new TcpListeners(loop, testNetConf(), tcp, input, { freebind: false, noSplice: true, hostLoToNsLo: false });
      const lfd = listeners.listenOne(inanyParse("127.0.0.1"), false, null, 7010, 0, Pif.HOST);
      expect(lfd).toBeGreaterThanOrEqual(0);
      const probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      connect(probe, { family: "ipv4", address: "127.0.0.1", port: 7010 });
      const accepted = accept4(lfd, 0);
      expect([getsockoptInt(accepted, IPPROTO_TCP, TCP_NODELAY), getsockoptInt(accepted, SOL_SOCKET, SO_PEEK_OFF)]).toEqual([1, tcp.io.peekOffset ? 0 : -1]);
      close(accepted);
      close(probe);
      // Three clients at once: each accepted (and refused, as no rule sends it anywhere), none left waiting.
      const clients = [0, 1, 2].map(() => {
        const c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        connect(c, { family: "ipv4", address: "127.0.0.1", port: 7010 });
        return c;
      });
      for (let i = 0; i < 20 && listeners.stats.accepted < 3; i++) loop.runOnce(10);
      expect(listeners.stats).toEqual({ accepted: 3, refused: 3 });
      for (const c of clients) close(c);
      listeners.closeAll();
    });
  });

  test("a SYN to a closed port gets RST|ACK acknowledging it", () => {
    withTcp(({ link, send, spin, tcp }) => {
      send(segment(40001, 7002, 5000, 0, TCP_SYN, undefined, { mss: 1460 }));
      let frames: Uint8Array[] = [];
      spin(() => (frames = frames.concat(link.take())).length > 0);
      const rst = parse(frames[0]);
      expect(rst.flags).toBe(TCP_RST | TCP_ACK);
      expect(rst.ack).toBe(5001);
      expect(tcp.stats.refused).toBe(1);
    });
  });

  test("segments for no connection are answered with RST (never for a RST), per RFC 9293", () => {
    withTcp(({ link, send, input }) => {
      send(segment(40002, 7003, 100, 123456, TCP_ACK));
      const a = link.take().map(parse);
      expect(a.length).toBe(1);
      expect(a[0].flags).toBe(TCP_RST);
      expect(a[0].seq).toBe(123456);
      send(segment(40002, 7003, 100, 0, TCP_PSH, new Uint8Array(10)));
      const b = link.take().map(parse);
      expect(b[0].flags).toBe(TCP_RST | TCP_ACK);
      expect(b[0].ack).toBe(110);
      send(segment(40002, 7003, 100, 0, TCP_RST));
      expect(link.take().length).toBe(0);
      expect(input.drops.noConnection).toBe(2);
    });
  });

  test("malformed segments are dropped and counted, never thrown on", () => {
    withTcp(({ link, send, input }) => {
      send(segment(40003, 7004, 1, 0, TCP_SYN, undefined, { doff: 2 }));
      send(segment(40003, 7004, 1, 0, TCP_SYN, undefined, { doff: 15 }));
      const badOpt = segment(40003, 7004, 1, 0, TCP_SYN, undefined, { mss: 1460 });
      badOpt[L4 + 21] = 0; // option length 0
      send(badOpt);
      expect(input.drops.malformed).toBe(3);
      const zeroPort = segment(0, 7004, 1, 0, TCP_SYN);
      send(zeroPort);
      expect(input.drops.badAddress).toBe(1);
      expect(link.take().length).toBe(0);
      // Every flag combination on a connection-less segment: RSTs or nothing, never a throw.
      for (let flags = 0; flags < 256; flags++) send(segment(40004, 7005, flags * 7, flags * 11, flags & ~TCP_SYN, new Uint8Array(flags & 3)));
      for (const s of link.take().map(parse)) expect(s.flags & TCP_RST).toBe(TCP_RST);
    });
  });
});

/** Bound-port maps from /proc/net text captured on a real host, the scan decision, and random or truncated input. */
import { describe, expect, test } from "bun:test";
import {
  boundPortMap,
  newPortMap,
  parseProcNet,
  PORT_MAP_WORDS,
  portBitSet,
  portBitTest,
  scanListenMap,
  TCP_LISTEN_STATE,
  UDP_BOUND_STATE,
} from "../src/fwd/procnet.ts";
import { parseForwardSpecs, type ForwardTable } from "../src/fwd/rules.ts";
import { rng } from "./fixtures/wire-frames.ts";

// Captured from Linux 6.x with listeners on 127.0.0.1:18080, [::1]:18443, [::]:18022 and :2024, one connection
// each on the IPv4 and IPv6 listeners, UDP sockets on 127.0.0.1:15353 and [::1]:15354, and a connected UDP socket.
// Trailing spaces are the kernel's.
const TCP = [
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     ",
  "   0: 0100007F:46A0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 143288 1 0000000086218395 100 0 0 10 0                    ",
  "   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1606 1 000000008d717ccf 100 0 0 10 0                      ",
  "   2: 0100007F:8AB4 0100007F:46A0 01 00000000:00000000 00:00000000 00000000     0        0 143291 2 0000000030428c21 20 0 0 10 -1                    ",
  "   3: 0100007F:46A0 0100007F:8AB4 01 00000000:00000000 00:00000000 00000000     0        0 143295 1 00000000b1f3d51f 20 0 0 10 -1                    ",
  "",
].join("\n");
const TCP6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
  "   0: 00000000000000000000000000000000:4666 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 143290 1 000000004d35f3b1 100 0 0 10 0",
  "   1: 00000000000000000000000001000000:480B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 143289 1 00000000b926bbbb 100 0 0 10 0",
  "   2: 00000000000000000000000001000000:99FA 00000000000000000000000001000000:480B 01 00000000:00000000 00:00000000 00000000     0        0 143292 2 0000000049b59a22 20 0 0 10 -1",
  "   3: 00000000000000000000000001000000:480B 00000000000000000000000001000000:99FA 01 00000000:00000000 00:00000000 00000000     0        0 143297 1 000000008f6e029c 20 0 0 10 -1",
  "",
].join("\n");
const UDP = [
  "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            ",
  " 6765: 0100007F:3BF9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 143293 2 0000000002c342e3 0        ",
  " 8361: 0100007F:8235 0100007F:9859 01 00000000:00000000 00:00000000 00000000     0        0 143230 2 00000000592ada74 0        ",
  "14029: 00000000:9859 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 143021 2 0000000002c342e3 0        ",
  "",
].join("\n");
const UDP6 = [
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
  " 6766: 00000000000000000000000001000000:3BFA 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 143294 2 000000002bfa8e98 0",
  "",
].join("\n");

/** The ports set in a map, ascending. */
function portsOf(map: Uint32Array): number[] {
  const ports: number[] = [];
  for (let port = 0; port < 65536; port++) if (portBitTest(map, port)) ports.push(port);
  return ports;
}

describe("port maps", () => {
  test("one bit per port, 0 to 65535", () => {
    const map = newPortMap();
    expect(map.length).toBe(PORT_MAP_WORDS);
    for (const port of [0, 31, 32, 80, 65535]) portBitSet(map, port);
    expect(portsOf(map)).toEqual([0, 31, 32, 80, 65535]);
    expect(portBitTest(map, 81)).toBe(false);
  });
});

describe("parseProcNet", () => {
  test("TCP: listening sockets only, IPv4 and IPv6 alike", () => {
    const map = newPortMap();
    expect(parseProcNet(TCP, TCP_LISTEN_STATE, map)).toEqual({ ports: 2, malformed: 0 });
    expect(portsOf(map)).toEqual([2024, 18080]);
    expect(parseProcNet(TCP6, TCP_LISTEN_STATE, map)).toEqual({ ports: 2, malformed: 0 });
    expect(portsOf(map)).toEqual([2024, 18022, 18080, 18443]);
    // A port already marked is not counted again.
    expect(parseProcNet(TCP, TCP_LISTEN_STATE, map)).toEqual({ ports: 0, malformed: 0 });
  });

  test("UDP: bound, unconnected sockets only", () => {
    const map = newPortMap();
    expect(parseProcNet(UDP, UDP_BOUND_STATE, map)).toEqual({ ports: 2, malformed: 0 });
    expect(parseProcNet(UDP6, UDP_BOUND_STATE, map)).toEqual({ ports: 1, malformed: 0 });
    expect(portsOf(map)).toEqual([15353, 15354, 39001]);
  });

  test("malformed lines are counted and skipped; the good ones still count", () => {
    const lines = TCP.split("\n");
    const text = [
      lines[0],
      lines[1],
      "garbage",
      "   9: 0100007F:GGGG 00000000:0000 0A",
      "   9: 0100007F:1F90 00000000:0000 0",
      "   9: 0100007F:1F9000 00000000:0000 0A",
      "   9: 01007F:1F90 00000000:0000 0A",
      "9 0100007F:1F90 00000000:0000 0A",
      "   \t ",
      lines[2],
    ].join("\n");
    const map = newPortMap();
    expect(parseProcNet(text, TCP_LISTEN_STATE, map)).toEqual({ ports: 2, malformed: 6 });
    expect(portsOf(map)).toEqual([2024, 18080]);
  });

  test("empty text, a header alone, and the last line without its newline", () => {
    const map = newPortMap();
    expect(parseProcNet("", TCP_LISTEN_STATE, map)).toEqual({ ports: 0, malformed: 0 });
    expect(parseProcNet(TCP.split("\n")[0], TCP_LISTEN_STATE, map)).toEqual({ ports: 0, malformed: 0 });
    expect(parseProcNet(TCP.trimEnd(), TCP_LISTEN_STATE, map)).toEqual({ ports: 2, malformed: 0 });
    // A hand-written line with just the four fields that matter.
    const minimal = "0: 00000000:FFFF 00000000:0000 0a";
    expect(parseProcNet(minimal, TCP_LISTEN_STATE, map)).toEqual({ ports: 1, malformed: 0 });
    expect(portBitTest(map, 65535)).toBe(true);
  });
});

describe("boundPortMap", () => {
  const texts = { tcp: TCP, tcp6: TCP6, udp: UDP, udp6: UDP6 };

  test("TCP takes the listening TCP sockets; UDP also takes them, for iperf3-like protocols", () => {
    const map = newPortMap();
    portBitSet(map, 1);
    expect(boundPortMap("tcp", texts, map)).toEqual({ ports: 4, malformed: 0 });
    expect(portsOf(map)).toEqual([2024, 18022, 18080, 18443]);
    expect(boundPortMap("udp", texts, map)).toEqual({ ports: 7, malformed: 0 });
    expect(portsOf(map)).toEqual([2024, 15353, 15354, 18022, 18080, 18443, 39001]);
  });

  test("files that could not be read are left out", () => {
    const map = newPortMap();
    expect(boundPortMap("udp", { udp6: UDP6, tcp: "junk\n" }, map)).toEqual({ ports: 1, malformed: 1 });
    expect(portsOf(map)).toEqual([15354]);
    expect(boundPortMap("tcp", {}, map)).toEqual({ ports: 0, malformed: 0 });
    expect(portsOf(map)).toEqual([]);
  });
});

describe("scanListenMap", () => {
  const opts = { option: "-t", pasta: true, ipv4: true, ipv6: true, ephemeral: [32768, 60999] } as const;
  const scanTable = (specs: string[]): ForwardTable => parseForwardSpecs(specs, opts);

  test("scanning rules listen where the other side is bound, minus orzo's own listeners", () => {
    const bound = newPortMap();
    boundPortMap("tcp", { tcp: TCP, tcp6: TCP6 }, bound);
    const exclude = newPortMap();
    portBitSet(exclude, 18022);
    const into = newPortMap();
    portBitSet(into, 7);
    expect(scanListenMap(scanTable(["auto"]), bound, exclude, into)).toBe(3);
    expect(portsOf(into)).toEqual([2024, 18080, 18443]);
  });

  test("only ports scanning rules cover; fixed rules are left out", () => {
    const bound = newPortMap();
    for (const port of [22, 80, 443, 8080]) portBitSet(bound, port);
    const into = newPortMap();
    expect(scanListenMap(scanTable(["22", "79-81,auto", "8080"]), bound, newPortMap(), into)).toBe(1);
    expect(portsOf(into)).toEqual([80]);
    expect(scanListenMap(scanTable(["1-1000"]), bound, newPortMap(), into)).toBe(0);
  });

  test("a remapping rule listens when its target port is bound", () => {
    const bound = newPortMap();
    portBitSet(bound, 80);
    const into = newPortMap();
    expect(scanListenMap(scanTable(["8079-8081:79-81,auto"]), bound, newPortMap(), into)).toBe(1);
    expect(portsOf(into)).toEqual([8080]);
  });

  test("a port two scanning rules share is counted once", () => {
    const bound = newPortMap();
    portBitSet(bound, 80);
    const into = newPortMap();
    expect(scanListenMap(scanTable(["10.0.0.1/80,auto", "10.0.0.2/80,auto"]), bound, newPortMap(), into)).toBe(1);
  });
});

describe("random and truncated input never throws", () => {
  test("every truncation of the captured files", () => {
    for (const text of [TCP, TCP6, UDP, UDP6]) {
      for (let cut = 0; cut <= text.length; cut += 7) {
        const map = newPortMap();
        const { ports, malformed } = parseProcNet(text.slice(0, cut), TCP_LISTEN_STATE, map);
        expect(ports).toBe(portsOf(map).length);
        expect(malformed).toBeLessThanOrEqual(1);
      }
    }
  });

  test("random bytes and shuffled fields", () => {
    const random = rng(0xc0ffee);
    const alphabet = "0123456789ABCDEFabcdef: \t\n\r\x00~-slSL";
    const fields = TCP.split("\n")[1].trim().split(/\s+/);
    let malformedSeen = 0;
    for (let n = 0; n < 500; n++) {
      let text = "";
      const length = Math.floor(random() * 300);
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      const shuffled = fields.map((f) => (random() < 0.3 ? fields[Math.floor(random() * fields.length)] : f));
      text += `\n${shuffled.join(" ")}\n`;
      const map = newPortMap();
      const { ports, malformed } = parseProcNet(text, Math.floor(random() * 16), map);
      expect(ports).toBe(portsOf(map).length);
      malformedSeen += malformed;
    }
    expect(malformedSeen).toBeGreaterThan(0);
  });
});

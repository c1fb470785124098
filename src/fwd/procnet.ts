/**
 * Which ports are bound on one side, from the text of /proc/net/{tcp,tcp6,udp,udp6}, and which listeners the
 * scanning ("auto") forwarding rules should have as a result. Pure functions on text and bitmaps: reading the
 * files, in the namespace they describe, is the caller's job. Bad lines are counted, never thrown on: procfs
 * content is input like any other.
 */
import { NUM_PORTS, targetPort, type ForwardTable } from "./rules.ts";

/** Length of a port map: one bit per port, 65536 bits in 32-bit words. */
export const PORT_MAP_WORDS = NUM_PORTS / 32;
/** TCP_LISTEN in the kernel's tcp_states.h: what /proc/net/tcp shows for a listening socket. */
export const TCP_LISTEN_STATE = 0x0a;
/** TCP_CLOSE, what /proc/net/udp shows for a bound, unconnected socket: the UDP equivalent of listening. */
export const UDP_BOUND_STATE = 0x07;

// "  12: 0100007F:1F90 00000000:0000 0A ...": slot, local address:port, remote address:port, state. Addresses are
// 8 hex digits (IPv4) or 32 (IPv6); the kernel prints ports as 4 and the state as 2 uppercase hex digits.
const ADDRESS = "(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})";
const SOCKET_LINE = new RegExp(
  `^\\s*[0-9]+:\\s+${ADDRESS}:([0-9A-Fa-f]{4})\\s+${ADDRESS}:[0-9A-Fa-f]{4}\\s+([0-9A-Fa-f]{2})(?:\\s|$)`,
);
const HEADER_LINE = /^\s*sl\s/;

/** What one parse found. */
export interface ProcNetCount {
  /** Ports newly marked in the map (a port already set, or bound by several sockets, counts once). */
  ports: number;
  /** Lines that are neither the header, blank, nor a socket line. */
  malformed: number;
}

/** A map with no port set. */
export function newPortMap(): Uint32Array {
  return new Uint32Array(PORT_MAP_WORDS);
}

/** Marks a port in a map. */
export function portBitSet(map: Uint32Array, port: number): void {
  map[port >>> 5] |= 1 << (port & 31);
}

/** Clears a port's bit. */
export function portBitClear(map: Uint32Array, port: number): void {
  map[port >>> 5] &= ~(1 << (port & 31));
}

/** True when a port is marked in a map. */
export function portBitTest(map: Uint32Array, port: number): boolean {
  return (map[port >>> 5] & (1 << (port & 31))) !== 0;
}

/** Marks in `into` the local port of every socket line of a /proc/net file in state `listenState`. */
export function parseProcNet(text: string, listenState: number, into: Uint32Array): ProcNetCount {
  const count: ProcNetCount = { ports: 0, malformed: 0 };
  for (const line of text.split("\n")) {
    const match = SOCKET_LINE.exec(line);
    if (match === null) {
      if (line.trim() !== "" && !HEADER_LINE.test(line)) count.malformed++;
      continue;
    }
    if (parseInt(match[2], 16) !== listenState) continue;
    const port = parseInt(match[1], 16);
    if (!portBitTest(into, port)) count.ports++;
    portBitSet(into, port);
  }
  return count;
}

/** The /proc/net texts of one network namespace; a file that could not be read is left out. */
export interface ProcNetTexts {
  readonly tcp?: string;
  readonly tcp6?: string;
  readonly udp?: string;
  readonly udp6?: string;
}

/**
 * Fills `into` (cleared first) with the ports bound for one protocol. The UDP map also takes the listening TCP
 * ports: protocols like iperf3's set up a UDP transfer on the port number of their TCP control connection.
 */
export function boundPortMap(proto: "tcp" | "udp", texts: ProcNetTexts, into: Uint32Array): ProcNetCount {
  into.fill(0);
  const total: ProcNetCount = { ports: 0, malformed: 0 };
  const add = (text: string | undefined, state: number) => {
    if (text === undefined) return;
    const { ports, malformed } = parseProcNet(text, state, into);
    total.ports += ports;
    total.malformed += malformed;
  };
  add(texts.tcp, TCP_LISTEN_STATE);
  add(texts.tcp6, TCP_LISTEN_STATE);
  if (proto === "udp") {
    add(texts.udp, UDP_BOUND_STATE);
    add(texts.udp6, UDP_BOUND_STATE);
  }
  return total;
}

/**
 * Fills `into` (cleared first) with the listening ports the table's scanning rules should have: a port a scanning
 * rule covers, when the port it maps to is bound on the other side and is not in `exclude` (where orzo itself
 * listens on that side: forwarding there would loop). Returns how many ports that is. Non-scanning rules listen
 * on all their ports and are left out.
 */
export function scanListenMap(
  table: ForwardTable,
  bound: Uint32Array,
  exclude: Uint32Array,
  into: Uint32Array,
): number {
  into.fill(0);
  let ports = 0;
  for (const rule of table.rules) {
    if (!rule.scan) continue;
    for (let port = rule.first; port <= rule.last; port++) {
      const target = targetPort(rule, port);
      if (!portBitTest(bound, target) || portBitTest(exclude, target) || portBitTest(into, port)) continue;
      portBitSet(into, port);
      ports++;
    }
  }
  return ports;
}

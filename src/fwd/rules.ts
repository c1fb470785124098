/**
 * Port forwarding rules: the -t/-u/-T/-U specifications turned into tables of contiguous port ranges, one table
 * per protocol and direction, and the lookups flows make in them. Pure: nothing here opens a socket.
 *
 * SPEC := "none" | [LISTEN "/"] CHUNK {"," CHUNK}, LISTEN := ADDR[%IFNAME] | [*][%IFNAME],
 * CHUNK := all[:TADDR] | auto | ~RANGE | RANGE[:TADDR/RANGE | :TADDR | :RANGE], RANGE := PORT[-PORT].
 */
import { readFileSync } from "node:fs";
import { CliError, conflicting } from "../cli/errors.ts";
import { interfaceName, shown } from "../cli/values.ts";
import { INANY_LEN, inanyEqual, inanyIsV4, inanyParse, inanyToText } from "../wire/inany.ts";

/** Number of port numbers, 0 to 65535. */
export const NUM_PORTS = 65536;
/** Most rules one table holds: a listening socket's epoll reference keeps its rule index in 8 bits. */
export const MAX_RULES = 255;
/** Most listening sockets the rules of one table may ask for: every port on five addresses, as pasta allows. */
export const MAX_TABLE_SOCKETS = 5 * NUM_PORTS;

// RFC 6335's dynamic range, used when the kernel's range cannot be read.
const EPHEMERAL_FALLBACK: [number, number] = [49152, 65535];
const PORT_RANGE_SYSCTL = "/proc/sys/net/ipv4/ip_local_port_range";
// Lookup value for a port no rule covers; rule indices stop at MAX_RULES - 1.
const NO_RULE = 255;
const RANGE_TEXT = /^([0-9]+)(?:-([0-9]+))?$/;

/** One contiguous forwarded range. */
export interface ForwardRule {
  /**
   * Listening address as a 16-byte inany (IPv4-mapped for IPv4); null only for the dual-stack wildcard. Without
   * an address but with one IP version disabled, this is that version's wildcard (0.0.0.0 mapped, or ::).
   */
  readonly listenAddr: Uint8Array | null;
  /** No address given and both IP versions on: one socket on :: with IPV6_V6ONLY off. Explicit `::` is v6 only. */
  readonly dualStack: boolean;
  /** %IFNAME: bind with SO_BINDTODEVICE ("lo" for -T/-U). */
  readonly ifname: string | null;
  /** Listening ports, inclusive. */
  readonly first: number;
  readonly last: number;
  /** Target port of `first`: first..last map to toFirst..toFirst + (last - first). */
  readonly toFirst: number;
  /** :TADDR as a 16-byte inany, or null when NAT picks the destination. */
  readonly targetAddr: Uint8Array | null;
  /** From `all` or an exclude-only spec: bind failures are tolerated as long as one port of the rule works. */
  readonly weak: boolean;
  /** From `auto`: listen only on ports currently bound on the other side; failures never fatal. */
  readonly scan: boolean;
}

/** The rules of one protocol and direction: "in" is -t/-u (host to guest), "out" is -T/-U (namespace to host). */
export interface ForwardTable {
  readonly proto: "tcp" | "udp";
  readonly direction: "in" | "out";
  /** "none": no rules; "auto": some rule scans, so the other side's /proc/net must be polled; "spec" otherwise. */
  readonly mode: "none" | "spec" | "auto";
  /** In the order given; a rule's index is what listening sockets' epoll references carry. */
  readonly rules: readonly ForwardRule[];
}

/** The four tables of one configuration. */
export interface ForwardConfig {
  readonly tcpIn: ForwardTable;
  readonly udpIn: ForwardTable;
  readonly tcpOut: ForwardTable;
  readonly udpOut: ForwardTable;
}

/** The option a spec came from: it decides the protocol, the direction and how errors name the spec. */
export type ForwardOption = "-t" | "-u" | "-T" | "-U";

/** What parsing a spec depends on besides its text. */
export interface ForwardSpecOptions {
  readonly option: ForwardOption;
  /** `auto` is for pasta only. */
  readonly pasta: boolean;
  /** Whether IPv4 and IPv6 are enabled (-6 and -4 turn one off). */
  readonly ipv4: boolean;
  readonly ipv6: boolean;
  /** The host's ephemeral port range; read from /proc when an exclude-only spec needs it and this is absent. */
  readonly ephemeral?: readonly [number, number];
}

const OPTION_TABLE: Record<ForwardOption, { proto: "tcp" | "udp"; direction: "in" | "out"; long: string }> = {
  "-t": { proto: "tcp", direction: "in", long: "tcp-ports" },
  "-u": { proto: "udp", direction: "in", long: "udp-ports" },
  "-T": { proto: "tcp", direction: "out", long: "tcp-ns" },
  "-U": { proto: "udp", direction: "out", long: "udp-ns" },
};

type PortChunk =
  | { readonly kind: "all"; readonly targetAddr: Uint8Array | null }
  | { readonly kind: "auto" }
  | { readonly kind: "exclude"; readonly first: number; readonly last: number }
  | {
      readonly kind: "include";
      readonly first: number;
      readonly last: number;
      readonly toFirst: number;
      readonly targetAddr: Uint8Array | null;
    };

interface Listen {
  /** null: no address or "*". */
  readonly addr: Uint8Array | null;
  readonly ifname: string | null;
}

/** The ForwardRule fields every rule of one spec shares. */
type RuleBase = Pick<ForwardRule, "listenAddr" | "dualStack" | "ifname" | "scan">;

/** Parses "MIN<tab>MAX" as ip_local_port_range reads; undefined when it is not two ordered ports. */
export function parseEphemeralRange(text: string): [number, number] | undefined {
  const match = /^\s*([0-9]{1,5})\s+([0-9]{1,5})\s*$/.exec(text);
  if (match === null) return undefined;
  const min = Number(match[1]);
  const max = Number(match[2]);
  return min <= max && max < NUM_PORTS ? [min, max] : undefined;
}

/** Reads /proc/sys/net/ipv4/ip_local_port_range (fallback 49152-65535). */
export function ephemeralRange(): [number, number] {
  try {
    return parseEphemeralRange(readFileSync(PORT_RANGE_SYSCTL, "utf8")) ?? [...EPHEMERAL_FALLBACK];
  } catch {
    // No procfs (or no such sysctl): the range RFC 6335 recommends is what most systems use anyway.
    return [...EPHEMERAL_FALLBACK];
  }
}

/** Checks a port number's text: decimal, 1 to 65535. */
function portNumber(text: string): number {
  const port = Number(text);
  if (port < 1 || port >= NUM_PORTS) throw new CliError(`port ${shown(text)} is out of range (1-65535)`);
  return port;
}

/** PORT[-PORT], first <= last; undefined when the text is not shaped like a range at all. */
function portRange(text: string): { first: number; last: number } | undefined {
  const match = RANGE_TEXT.exec(text);
  if (match === null) return undefined;
  const first = portNumber(match[1]);
  const last = match[2] === undefined ? first : portNumber(match[2]);
  if (first > last) throw new CliError(`range ${shown(text)} ends before it starts`);
  return { first, last };
}

/** An IPv4 or IPv6 address, IPv6 optionally in brackets (IPv4 too, for convenience), as an inany. */
function parseAddress(text: string): Uint8Array | null {
  return /^\[?[0-9a-fA-F:.]+\]?$/.test(text) ? inanyParse(text) : null;
}

function isUnspecified(addr: Uint8Array, off = 0): boolean {
  for (let i = inanyIsV4(addr, off) ? 12 : 0; i < INANY_LEN; i++) if (addr[off + i] !== 0) return false;
  return true;
}

function isMulticast(addr: Uint8Array): boolean {
  return inanyIsV4(addr, 0) ? (addr[12] & 0xf0) === 224 : addr[0] === 0xff;
}

/** :TADDR: a unicast address, or null for an unspecified one (the destination is then left to NAT). */
function targetAddress(text: string): Uint8Array | null {
  const addr = parseAddress(text);
  if (addr === null) throw new CliError(`${shown(text)} is not a target address`);
  if (isMulticast(addr)) throw new CliError(`target ${shown(text)} is a multicast address`);
  return isUnspecified(addr) ? null : addr;
}

/** One comma-separated piece of the port list. */
function portChunk(text: string): PortChunk {
  if (text === "") throw new CliError("empty entry in the port list");
  if (text === "all") return { kind: "all", targetAddr: null };
  if (text.startsWith("all:")) return { kind: "all", targetAddr: targetAddress(text.slice(4)) };
  if (text === "auto") return { kind: "auto" };
  if (text.startsWith("~")) {
    const range = portRange(text.slice(1));
    if (range === undefined) throw new CliError(`${shown(text)} is not ~PORT or ~FIRST-LAST`);
    return { kind: "exclude", ...range };
  }
  const colon = text.indexOf(":");
  const listened = portRange(colon < 0 ? text : text.slice(0, colon));
  if (listened === undefined) throw new CliError(`${shown(text)} is not a port range, 'all', 'auto' or '~RANGE'`);
  if (colon < 0) return { kind: "include", ...listened, toFirst: listened.first, targetAddr: null };

  const target = text.slice(colon + 1);
  if (RANGE_TEXT.test(target)) {
    return { kind: "include", ...listened, toFirst: mappedFirst(listened, target, text), targetAddr: null };
  }
  const slash = target.lastIndexOf("/");
  if (slash < 0) return { kind: "include", ...listened, toFirst: listened.first, targetAddr: targetAddress(target) };
  const targetAddr = targetAddress(target.slice(0, slash));
  return { kind: "include", ...listened, toFirst: mappedFirst(listened, target.slice(slash + 1), text), targetAddr };
}

/** The first target port of a chunk's :RANGE, which must be as long as the chunk's listening range. */
function mappedFirst(listened: { first: number; last: number }, rangeText: string, chunk: string): number {
  const mapped = portRange(rangeText);
  if (mapped === undefined) throw new CliError(`${shown(rangeText)} is not a target port range`);
  if (mapped.last - mapped.first !== listened.last - listened.first) {
    throw new CliError(`${shown(chunk)} maps ranges of different lengths`);
  }
  return mapped.first;
}

/** LISTEN before the '/': ADDR[%IFNAME] or [*][%IFNAME]; undefined when the address is not one. */
function listenSpec(text: string): Listen | undefined {
  const percent = text.indexOf("%");
  const addrText = percent < 0 ? text : text.slice(0, percent);
  const ifname = percent < 0 ? null : interfaceName(text.slice(percent + 1));
  if (addrText === "" || addrText === "*") return { addr: null, ifname };
  const addr = parseAddress(addrText);
  return addr === null ? undefined : { addr, ifname };
}

/** Splits a spec into its listening part (null when there is none) and its port list. */
function splitListen(spec: string): { listen: Listen | null; ports: string } {
  const slash = spec.indexOf("/");
  if (slash < 0) return { listen: null, ports: spec };
  const prefix = spec.slice(0, slash);
  const listen = listenSpec(prefix);
  if (listen !== undefined) {
    if (slash === spec.length - 1) throw new CliError("no ports after the listening address");
    return { listen, ports: spec.slice(slash + 1) };
  }
  // A '/' also separates a target address from its ports (80:10.0.0.1/8080): then the spec has no LISTEN part.
  if (/^[0-9]+(-[0-9]+)?:/.test(prefix)) return { listen: null, ports: spec };
  throw new CliError(`${shown(prefix)} is not a listening address`);
}

/** Where the rules of one spec listen, checked against the enabled IP versions and the option. */
function ruleBase(listen: Listen | null, scan: boolean, opts: ForwardSpecOptions): RuleBase {
  const outbound = OPTION_TABLE[opts.option].direction === "out";
  if (outbound && listen !== null) {
    throw new CliError(`${opts.option} takes no listening address: it listens on 'lo' in the namespace`);
  }
  // Outbound forwards serve the namespace's own loopback, whatever address it is reached by there.
  const ifname = outbound ? "lo" : (listen?.ifname ?? null);
  const addr = listen?.addr ?? null;
  if (addr === null) {
    if (opts.ipv4 && opts.ipv6) return { listenAddr: null, dualStack: true, ifname, scan };
    const wildcard = opts.ipv4 ? (inanyParse("0.0.0.0") as Uint8Array) : new Uint8Array(INANY_LEN);
    return { listenAddr: wildcard, dualStack: false, ifname, scan };
  }
  const v4 = inanyIsV4(addr, 0);
  if (v4 ? !opts.ipv4 : !opts.ipv6) {
    throw new CliError(`${inanyToText(addr, 0)} is an IPv${v4 ? 4 : 6} address but IPv${v4 ? 4 : 6} is disabled`);
  }
  return { listenAddr: addr, dualStack: false, ifname, scan };
}

/** Checks a target address against where the rule listens: same IP version, never a dual-stack socket. */
function checkTarget(base: RuleBase, targetAddr: Uint8Array | null): void {
  if (targetAddr === null) return;
  const target = inanyToText(targetAddr, 0);
  const v4 = inanyIsV4(targetAddr, 0);
  if (base.listenAddr === null) {
    const [version, example] = v4 ? [4, "0.0.0.0"] : [6, "[::]"];
    throw new CliError(`target ${target} needs an IPv${version} listening address, e.g. '${example}/...'`);
  }
  if (inanyIsV4(base.listenAddr, 0) !== v4) {
    const listen = inanyToText(base.listenAddr, 0);
    throw new CliError(`target ${target} and listening address ${listen} differ in IP version`);
  }
}

/** Adds first..last minus the excluded ports, as one rule per contiguous run, each mapped with the same offset. */
function addRuns(
  out: ForwardRule[],
  base: RuleBase,
  range: { first: number; last: number; toFirst: number; targetAddr: Uint8Array | null; weak: boolean },
  excluded: Uint8Array,
): void {
  const offset = range.toFirst - range.first;
  for (let port = range.first; port <= range.last; port++) {
    if (excluded[port]) continue;
    const first = port;
    while (port < range.last && !excluded[port + 1]) port++;
    out.push({ ...base, first, last: port, toFirst: first + offset, targetAddr: range.targetAddr, weak: range.weak });
  }
}

/** The rules one spec (not "none") asks for, in order; throws CliError with the reason. */
function specRules(spec: string, opts: ForwardSpecOptions): ForwardRule[] {
  const { listen, ports } = splitListen(spec);
  const chunks = ports.split(",").map(portChunk);
  const includes = chunks.filter((c) => c.kind === "include");
  const alls = chunks.filter((c) => c.kind === "all");
  const scan = chunks.some((c) => c.kind === "auto");
  if (scan && !opts.pasta) throw new CliError("'auto' is for pasta mode only");
  if (alls.length > 1) throw new CliError("'all' given twice");
  if (alls.length > 0 && includes.length > 0) throw new CliError("'all' cannot be combined with port ranges");

  const base = ruleBase(listen, scan, opts);
  const excluded = new Uint8Array(NUM_PORTS);
  for (const c of chunks) if (c.kind === "exclude") excluded.fill(1, c.first, c.last + 1);
  const rules: ForwardRule[] = [];
  if (includes.length === 0) {
    // Only all/auto/excludes: every port, except that listening on the ephemeral range would steal the ports
    // the host's own outgoing connections need.
    const [min, max] = opts.ephemeral ?? ephemeralRange();
    excluded.fill(1, min, max + 1);
    const targetAddr = alls[0]?.targetAddr ?? null;
    checkTarget(base, targetAddr);
    addRuns(rules, base, { first: 1, last: NUM_PORTS - 1, toFirst: 1, targetAddr, weak: true }, excluded);
    return rules;
  }
  for (const c of includes) {
    checkTarget(base, c.targetAddr);
    addRuns(rules, base, { ...c, weak: false }, excluded);
  }
  return rules;
}

/**
 * Whether listening on `a` and on `b` (the inany at b[bOff]) can take the same packets: null is the dual-stack
 * wildcard, an unspecified address is the wildcard of its IP version, anything else matches only itself.
 */
function addressesMatch(a: Uint8Array | null, b: Uint8Array | null, bOff = 0): boolean {
  if (a === null || b === null) return true;
  if (isUnspecified(a) || isUnspecified(b, bOff)) return inanyIsV4(a, 0) === inanyIsV4(b, bOff);
  return inanyEqual(a, 0, b, bOff);
}

/** A rule as logs and messages show it, e.g. `*%lo:1-1023 => 1-1023 (best effort, auto)`. */
export function formatForwardRule(rule: ForwardRule): string {
  const addrText = (addr: Uint8Array) => (inanyIsV4(addr, 0) ? inanyToText(addr, 0) : `[${inanyToText(addr, 0)}]`);
  const range = (first: number, last: number) => (first === last ? `${first}` : `${first}-${last}`);
  const listen = `${rule.listenAddr === null ? "*" : addrText(rule.listenAddr)}${rule.ifname ? `%${rule.ifname}` : ""}`;
  const target = rule.targetAddr === null ? "" : `${addrText(rule.targetAddr)}:`;
  const flags = [rule.weak ? "best effort" : "", rule.scan ? "auto" : ""].filter((f) => f !== "").join(", ");
  const toLast = rule.toFirst + rule.last - rule.first;
  const mapping = `${listen}:${range(rule.first, rule.last)} => ${target}${range(rule.toFirst, toLast)}`;
  return flags === "" ? mapping : `${mapping} (${flags})`;
}

/** Appends a spec's rules to a table's, refusing overlaps and tables too large to listen for. */
function appendRules(rules: ForwardRule[], added: readonly ForwardRule[]): void {
  let sockets = rules.reduce((n, r) => n + r.last - r.first + 1, 0);
  for (const rule of added) {
    const clash = rules.find(
      (r) => r.first <= rule.last && rule.first <= r.last && addressesMatch(r.listenAddr, rule.listenAddr),
    );
    if (clash !== undefined) {
      throw new CliError(`rule ${formatForwardRule(rule)} overlaps rule ${formatForwardRule(clash)}`);
    }
    if (rules.length >= MAX_RULES) throw new CliError(`more than ${MAX_RULES} rules`);
    sockets += rule.last - rule.first + 1;
    if (sockets > MAX_TABLE_SOCKETS) throw new CliError(`rules need more than ${MAX_TABLE_SOCKETS} listening sockets`);
    rules.push(rule);
  }
}

/** Parses -t/-u/-T/-U values (in order) into a table; throws CliError, one line naming the option and the spec. */
export function parseForwardSpecs(specs: readonly string[], opts: ForwardSpecOptions): ForwardTable {
  const { proto, direction } = OPTION_TABLE[opts.option];
  const rules: ForwardRule[] = [];
  for (const spec of specs) {
    try {
      if (spec === "none") {
        if (rules.length > 0) throw new CliError("'none' conflicts with the rules given before it");
        continue;
      }
      appendRules(rules, specRules(spec, opts));
    } catch (e) {
      if (!(e instanceof CliError)) throw e;
      // The reason names the piece at fault; the spec is named too unless that piece is the whole of it.
      const reason = e.message.includes(shown(spec)) ? e.message : `${shown(spec)}: ${e.message}`;
      throw new CliError(`invalid value for ${opts.option}: ${reason}`);
    }
  }
  const mode = rules.length === 0 ? "none" : rules.some((r) => r.scan) ? "auto" : "spec";
  return { proto, direction, mode, rules };
}

/** The per-option spec lists of a command line, and what they depend on. */
export interface ForwardConfigInput {
  readonly specs: Readonly<Record<ForwardOption, readonly string[]>>;
  readonly pasta: boolean;
  readonly ipv4: boolean;
  readonly ipv6: boolean;
  /** --no-tcp / --no-udp: that protocol gets no rules, and asking for some is an error. */
  readonly noTcp: boolean;
  readonly noUdp: boolean;
  readonly ephemeral?: readonly [number, number];
}

/**
 * The four tables of a command line. An option not given takes the mode's default: `auto` in pasta, nothing in
 * passt (which has no -T/-U). A disabled protocol gets empty tables and refuses rules.
 */
export function parseForwardConfig(input: ForwardConfigInput): ForwardConfig {
  const table = (option: ForwardOption): ForwardTable => {
    const given = input.specs[option];
    const disabled = OPTION_TABLE[option].proto === "tcp" ? input.noTcp : input.noUdp;
    if (disabled && given.some((s) => s !== "none")) {
      throw conflicting(OPTION_TABLE[option].long, OPTION_TABLE[option].proto === "tcp" ? "no-tcp" : "no-udp");
    }
    const specs = given.length > 0 ? given : input.pasta && !disabled ? ["auto"] : [];
    const { pasta, ipv4, ipv6, ephemeral } = input;
    return parseForwardSpecs(specs, { option, pasta, ipv4, ipv6, ephemeral });
  };
  return { tcpIn: table("-t"), udpIn: table("-u"), tcpOut: table("-T"), udpOut: table("-U") };
}

// Per table, the index of the first rule covering each port, so a lookup is one array read. Kept out of the
// table itself so configurations stay plain data (they are logged as JSON).
const portLookups = new WeakMap<ForwardTable, Uint8Array>();

function portLookup(t: ForwardTable): Uint8Array {
  let lookup = portLookups.get(t);
  if (lookup === undefined) {
    lookup = new Uint8Array(NUM_PORTS).fill(NO_RULE);
    for (let i = t.rules.length - 1; i >= 0; i--) lookup.fill(i, t.rules[i].first, t.rules[i].last + 1);
    portLookups.set(t, lookup);
  }
  return lookup;
}

/**
 * Maps a listening port to its rule index, or -1. With an address (the inany a packet or connection was sent
 * to), the first rule that also listens on it; without, the first rule covering the port.
 */
export function ruleForPort(t: ForwardTable, port: number, addr?: Uint8Array, addrOff = 0): number {
  const first = portLookup(t)[port] ?? NO_RULE;
  if (first === NO_RULE) return -1;
  if (addr === undefined) return first;
  for (let i = first; i < t.rules.length; i++) {
    const rule = t.rules[i];
    if (port >= rule.first && port <= rule.last && addressesMatch(rule.listenAddr, addr, addrOff)) return i;
  }
  return -1;
}

/** The target port a rule maps one of its listening ports to. */
export function targetPort(rule: ForwardRule, port: number): number {
  return rule.toFirst + (port - rule.first);
}

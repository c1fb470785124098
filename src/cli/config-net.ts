/**
 * The network part of the configuration: addressing, DNS, services and forwarding as the command line gives
 * them, folded from the parsed options (later values win, per IP version where pasta keeps one per version) and
 * checked for combinations pasta refuses. Defaults that depend on the host are applied later, by resolveNetConf.
 */
import { parseForwardConfig, type ForwardConfig } from "../fwd/rules.ts";
import { CliError, conflicting } from "./errors.ts";
import { lastGiven, type Mode, type ParsedOptions } from "./options.ts";
import type { GuestAddress, IpAddress } from "./values.ts";

/** The most search domains passed to the guest (as many as resolv.conf's search list is read for). */
export const MAX_SEARCH_DOMAINS = 5;

/** Settings of one IP version from the command line; a field is absent when it was not given. */
export interface FamilyConfig {
  /** -a: the guest's address (canonical text). */
  readonly address?: string;
  /** -a ADDR/LEN, or for IPv4 also -n: the guest's prefix length. */
  readonly prefixLen?: number;
  /** -g: the guest's gateway. */
  readonly gateway?: string;
  /** --dns-forward: DNS queries to this address go to the host's nameserver. */
  readonly dnsForward?: string;
  /** --dns-host: the nameserver forwarded queries go to. */
  readonly dnsHost?: string;
  /** --map-host-loopback: the guest address that reaches the host's loopback. */
  readonly mapHostLoopback?: string;
  /** --map-guest-addr: the guest address that reaches the host's own address. */
  readonly mapGuestAddr?: string;
  /** -o: the source address of outbound sockets toward the host. */
  readonly outbound?: string;
  /** --outbound-if4/--outbound-if6: the interface outbound sockets are bound to (and the template, unless -i). */
  readonly outboundIfname?: string;
}

/** Addressing, DNS, services and port forwarding, as given on the command line. */
export interface NetworkConfig {
  /** -m: MTU to advertise (0: none); absent: the default. */
  readonly mtu?: number;
  /** -M: our MAC address on the tap side (lowercase text). */
  readonly macAddr?: string;
  /** pasta --ns-mac-addr: MAC address to set on the namespace's tap interface. */
  readonly nsMacAddr?: string;
  /** pasta -I: name of the tap interface in the namespace. */
  readonly nsIfname?: string;
  /** -i: host interface to take addresses and routes from, for both IP versions. */
  readonly templateIfname?: string;
  readonly ip4: FamilyConfig;
  readonly ip6: FamilyConfig;
  /** -4: IPv4 only. */
  readonly ipv4Only: boolean;
  /** -6: IPv6 only. */
  readonly ipv6Only: boolean;
  /** -D: nameservers for the guest, in order; empty: from resolv.conf (unless noDns). */
  readonly dns: readonly string[];
  /** -D none: no DNS information for the guest. */
  readonly noDns: boolean;
  /** -S: search domains, in order; empty: from resolv.conf (unless noSearch). */
  readonly search: readonly string[];
  /** -S none: no search list. */
  readonly noSearch: boolean;
  /** -H: host name for DHCP (and in pasta, for the namespace). */
  readonly hostname?: string;
  /** --fqdn: FQDN for DHCP and DHCPv6. */
  readonly fqdn?: string;
  /** Pass nameservers via DHCP, DHCPv6 and RAs (passt: unless --no-dhcp-dns; pasta: with --dhcp-dns). */
  readonly dhcpDns: boolean;
  /** Pass the search list likewise (passt: unless --no-dhcp-search; pasta: with --dhcp-search). */
  readonly dhcpSearch: boolean;
  /** --no-map-gw (or --map-host-loopback none): no default mapping of the gateway to the host's loopback. */
  readonly noMapGw: boolean;
  readonly noTcp: boolean;
  readonly noUdp: boolean;
  readonly noIcmp: boolean;
  readonly noDhcp: boolean;
  readonly noNdp: boolean;
  readonly noDhcpv6: boolean;
  readonly noRa: boolean;
  /** --freebind: IP_FREEBIND on forwarded listening sockets. */
  readonly freebind: boolean;
  /** -t: host-to-guest TCP forwarding specs, unparsed, in order; empty: the mode's default. */
  readonly tcpPorts: readonly string[];
  /** -u: host-to-guest UDP forwarding specs. */
  readonly udpPorts: readonly string[];
  /** pasta -T: namespace-to-host TCP forwarding specs. */
  readonly tcpNs: readonly string[];
  /** pasta -U: namespace-to-host UDP forwarding specs. */
  readonly udpNs: readonly string[];
  /** The four spec lists parsed into rule tables, defaults applied (pasta: auto; passt: none). */
  readonly forward: ForwardConfig;
  /** pasta --no-splice (always set for passt): no socket-to-socket loopback path. */
  readonly noSplice: boolean;
  /** pasta --host-lo-to-ns-lo (implied by --splice-only). */
  readonly hostLoToNsLo: boolean;
  /** pasta --splice-only: no tap device; only spliced loopback connections are forwarded. */
  readonly spliceOnly: boolean;
}

type PerFamily<T> = { 4?: T; 6?: T };

/** Folds a per-version option: each address replaces that version's; "none" clears both. */
function lastPerFamily(values: readonly (IpAddress | "none")[] | undefined): PerFamily<string> {
  const out: PerFamily<string> = {};
  for (const v of values ?? []) {
    if (v === "none") {
      delete out[4];
      delete out[6];
    } else out[v.family] = v.text;
  }
  return out;
}

/** -a and -n folded as pasta takes them: the last address of each IP version, and the IPv4 prefix length. */
interface GuestAddressing {
  readonly 4?: GuestAddress;
  readonly 6?: GuestAddress;
  readonly prefixLen4?: number;
}

/**
 * -a and -n in command-line order, as pasta takes them: the last -a of each IP version wins, and so does the
 * last of -n and an IPv4 -a for the IPv4 prefix length (an -a without a length takes an earlier -n's). A length
 * in -a and a -n do not mix: one after the other is refused, either way, whatever the -a's IP version, unless
 * another -a without a length came between them.
 */
function guestAddresses(options: ParsedOptions, order: readonly string[]): GuestAddressing {
  const out: { 4?: GuestAddress; 6?: GuestAddress; prefixLen4?: number } = {};
  const netmask = options.netmask;
  let next = 0;
  let netmaskSeen = false;
  let lastWithLength: GuestAddress | undefined;
  for (const key of order) {
    if (key === "netmask") {
      if (lastWithLength !== undefined) throw netmaskConflict(lastWithLength);
      netmaskSeen = true;
      out.prefixLen4 = netmask;
    } else if (key === "address") {
      const a = options.address![next++];
      if (a.prefixLen !== undefined && netmaskSeen) throw netmaskConflict(a);
      lastWithLength = a.prefixLen === undefined ? undefined : a;
      out[a.family] = a;
      if (a.family === 4) out.prefixLen4 = a.prefixLen ?? (netmaskSeen ? netmask : undefined);
    }
  }
  return out;
}

function netmaskConflict(a: GuestAddress): CliError {
  return new CliError(`option '--netmask' conflicts with the prefix length in '--address ${a.text}/${a.prefixLen}'`);
}

/** A list option where "none" empties the list and disables the feature until a later value turns it back on. */
function listOrNone<T>(values: readonly (T | "none")[] | undefined, items: (v: T) => readonly string[]) {
  let list: string[] = [];
  let none = false;
  for (const v of values ?? []) {
    if (v === "none") {
      list = [];
      none = true;
    } else {
      list.push(...items(v));
      none = false;
    }
  }
  return { list, none };
}

/** The network settings of a parsed command line; throws CliError for combinations pasta refuses. */
export function networkConfig(options: ParsedOptions, order: readonly string[], mode: Mode): NetworkConfig {
  // -4 and -6 undo each other: the later one stands, as in pasta.
  const only = lastGiven(order, ["ipv4Only", "ipv6Only"] as const);
  const pasta = mode === "pasta";
  const noSplice = !pasta || options.noSplice === true;
  if (pasta && options.noSplice) {
    if (options.hostLoToNsLo) throw conflicting("host-lo-to-ns-lo", "no-splice");
    if (options.spliceOnly) throw conflicting("splice-only", "no-splice");
  }
  const spliceOnly = options.spliceOnly === true;

  const address = guestAddresses(options, order);
  const gateway = lastPerFamily(options.gateway);
  const dnsForward = lastPerFamily(options.dnsForward);
  const dnsHost = lastPerFamily(options.dnsHost);
  const mapHostLoopback = lastPerFamily(options.mapHostLoopback);
  const mapGuestAddr = lastPerFamily(options.mapGuestAddr);
  const outbound = lastPerFamily(options.outbound);
  const outboundIfname = { 4: options.outboundIf4, 6: options.outboundIf6 };
  // An outbound setting for an IP version that -4 or -6 switched off could only be ignored.
  for (const [v, off] of [[6, "ipv4Only"], [4, "ipv6Only"]] as const) {
    if (only !== off) continue;
    if (outbound[v] !== undefined) throw new CliError(`option '--outbound ${outbound[v]}' is IPv${v}, which '--${v === 6 ? "ipv4-only" : "ipv6-only"}' switches off`);
    if (outboundIfname[v] !== undefined) throw conflicting(`outbound-if${v}`, v === 6 ? "ipv4-only" : "ipv6-only");
  }
  const family = (v: 4 | 6): FamilyConfig => ({
    address: address[v]?.text,
    prefixLen: v === 4 ? address.prefixLen4 : address[6]?.prefixLen,
    gateway: gateway[v],
    dnsForward: dnsForward[v],
    dnsHost: dnsHost[v],
    mapHostLoopback: mapHostLoopback[v],
    mapGuestAddr: mapGuestAddr[v],
    outbound: outbound[v],
    outboundIfname: outboundIfname[v],
  });

  const dns = listOrNone(options.dns, (a) => [a.text]);
  const search = listOrNone(options.search, (list) => list);
  if (search.list.length > MAX_SEARCH_DOMAINS) {
    throw new CliError(`option '--search' gives more than ${MAX_SEARCH_DOMAINS} search domains`);
  }

  return {
    mtu: options.mtu,
    macAddr: options.macAddr,
    nsMacAddr: options.nsMacAddr,
    nsIfname: options.nsIfname,
    templateIfname: options.templateIfname,
    ip4: family(4),
    ip6: family(6),
    ipv4Only: only === "ipv4Only",
    ipv6Only: only === "ipv6Only",
    dns: dns.list,
    noDns: dns.none,
    search: search.list,
    noSearch: search.none,
    hostname: options.hostname,
    fqdn: options.fqdn,
    dhcpDns: pasta ? options.dhcpDns === true : options.noDhcpDns !== true,
    dhcpSearch: pasta ? options.dhcpSearch === true : options.noDhcpSearch !== true,
    noMapGw: options.noMapGw === true || options.mapHostLoopback?.includes("none") === true,
    noTcp: options.noTcp === true,
    noUdp: options.noUdp === true,
    noIcmp: options.noIcmp === true,
    noDhcp: options.noDhcp === true,
    noNdp: options.noNdp === true,
    noDhcpv6: options.noDhcpv6 === true,
    noRa: options.noRa === true,
    freebind: options.freebind === true,
    tcpPorts: options.tcpPorts ?? [],
    udpPorts: options.udpPorts ?? [],
    tcpNs: options.tcpNs ?? [],
    udpNs: options.udpNs ?? [],
    forward: parseForwardConfig({
      specs: {
        "-t": options.tcpPorts ?? [],
        "-u": options.udpPorts ?? [],
        "-T": options.tcpNs ?? [],
        "-U": options.udpNs ?? [],
      },
      pasta,
      ipv4: only !== "ipv6Only",
      ipv6: only !== "ipv4Only",
      noTcp: options.noTcp === true,
      noUdp: options.noUdp === true,
    }),
    noSplice,
    // Without a tap, a connection to the host's loopback can only go to the namespace's.
    hostLoToNsLo: options.hostLoToNsLo === true || spliceOnly,
    spliceOnly,
  };
}

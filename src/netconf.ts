/**
 * The addressing orzo presents to the guest, resolved once at start-up from the command line, the host's own
 * addressing (read over netlink) and resolv.conf, then updated from what the guest's traffic shows.
 *
 * Every address is a 16-byte inany (IPv4 as IPv4-mapped IPv6), so services and NAT compare bytes, never text.
 * An unset address is all zeros (the unspecified address).
 */
import { MAX_SEARCH_DOMAINS, type FamilyConfig } from "./cli/config-net.ts";
import type { Config } from "./cli/config.ts";
import { parseMacText } from "./cli/values.ts";
import type { ResolvConf } from "./resolv.ts";
import { INANY_LEN, inanyEqual, inanyIsV4, inanyParse } from "./wire/inany.ts";

/** The host's addressing on one template interface, as read over netlink (text form, setup path only). */
export interface HostInterface {
  /** Interface name, e.g. "eth0". */
  readonly ifname: string;
  readonly ifindex: number;
  /** The interface's address (IPv4: longest prefix; IPv6: most specific global), if any. */
  readonly address?: string;
  readonly prefixLen: number;
  /** The default route's gateway through this interface, if any. */
  readonly gateway?: string;
  /** IPv6: the interface's own link-local address, if any. */
  readonly linkLocal?: string;
}

/** What the host has for each IP version: the template interface, or nothing (local mode for that version). */
export interface HostAddressing {
  readonly v4?: HostInterface;
  readonly v6?: HostInterface;
}

/** IPv4 addressing toward the guest. */
export interface NetConf4 {
  /** False with -6, or when IPv4 could not be set up. */
  enabled: boolean;
  /** True when the host had no usable IPv4 template, so link-local defaults stand in for the host's addressing. */
  readonly localMode: boolean;
  /** The address assigned to the guest (DHCP yiaddr, --config-net address). */
  readonly addr: Uint8Array;
  prefixLen: number;
  /** The guest's default gateway. */
  readonly gateway: Uint8Array;
  /** Our address on the tap: source of ARP and DHCP (the gateway address). */
  readonly ourTapAddr: Uint8Array;
  /** The guest's address as its traffic last showed it (follows the source unless -a fixed it). */
  readonly addrSeen: Uint8Array;
  /** True when -a fixed the address: no learning from traffic, no copying of host addresses. */
  addrFixed: boolean;
  /** Nameservers advertised to the guest (DHCP option 6), at most 3. */
  readonly dns: Uint8Array[];
  /** --dns-forward: DNS to this address goes to dnsHost instead (all zeros: none). */
  readonly dnsMatch: Uint8Array;
  /** Where forwarded DNS goes (--dns-host, else the first resolv.conf nameserver). */
  readonly dnsHost: Uint8Array;
  /** The guest-side address that means the host's loopback (all zeros: none, --no-map-gw). */
  readonly mapHostLoopback: Uint8Array;
  /** The guest-side address that means the host's own address (all zeros: none). */
  readonly mapGuestAddr: Uint8Array;
  /** -o: the source address of outbound sockets toward the host (all zeros: the kernel picks). */
  readonly outboundAddr: Uint8Array;
  /** --outbound-if4: the interface outbound sockets are bound to. */
  readonly outboundIfname?: string;
}

/** IPv6 addressing toward the guest. */
export interface NetConf6 {
  /** False with -4, or when IPv6 could not be set up. */
  enabled: boolean;
  /** True when the host had no usable IPv6 template: no address, gateway and our link-local fe80::1. */
  readonly localMode: boolean;
  /** The global address assigned to the guest (DHCPv6, SLAAC prefix, --config-net). */
  readonly addr: Uint8Array;
  prefixLen: number;
  /** The guest's default gateway. */
  readonly gateway: Uint8Array;
  /** Our link-local address: source of RA, NA and DHCPv6. */
  readonly ourTapLinkLocal: Uint8Array;
  /** The guest's global address as its traffic last showed it. */
  readonly addrSeen: Uint8Array;
  /** The guest's link-local address as its traffic showed it. */
  readonly addrLinkLocalSeen: Uint8Array;
  addrFixed: boolean;
  /** Nameservers advertised to the guest (RA RDNSS, DHCPv6 option 23), at most 3. */
  readonly dns: Uint8Array[];
  readonly dnsMatch: Uint8Array;
  readonly dnsHost: Uint8Array;
  readonly mapHostLoopback: Uint8Array;
  readonly mapGuestAddr: Uint8Array;
  readonly outboundAddr: Uint8Array;
  /** --outbound-if6. */
  readonly outboundIfname?: string;
}

/** Everything the L2 services and the NAT need to know about addressing. */
export interface NetConf {
  /** MTU advertised (DHCP option 26, RA MTU) and configured with --config-net; 0: do not advertise. */
  mtu: number;
  /** Our MAC: source of every frame we send (default 9a:55:9a:55:9a:55, -M). */
  readonly ourMac: Uint8Array;
  /** The guest's MAC: destination of frames to the guest; learned from its frames. */
  readonly guestMac: Uint8Array;
  readonly ip4: NetConf4;
  readonly ip6: NetConf6;
  /** DNS search domains (DHCP 119, RA DNSSL, DHCPv6 24), at most 5. */
  readonly searchDomains: string[];
  /** -H: host name for DHCP option 12. */
  hostname?: string;
  /** --fqdn: DHCP option 81, DHCPv6 option 39. */
  fqdn?: string;
  /** Whether DNS servers and search domains are passed to the guest (passt: yes; pasta: --dhcp-dns/--dhcp-search). */
  dhcpDns: boolean;
  dhcpSearch: boolean;
  /** Services switched off. */
  noDhcp: boolean;
  noDhcpv6: boolean;
  noNdp: boolean;
  noRa: boolean;
  noIcmp: boolean;
  /** --no-tcp, --no-udp: the guest's TCP segments and UDP datagrams (DHCP aside) are dropped. */
  noTcp: boolean;
  noUdp: boolean;
}

/** MTU advertised by default: the largest frame (65535 bytes) less the Ethernet header, rounded down to 4 bytes. */
export const DEFAULT_MTU = 65520;

/** Our MAC by default: locally administered, unicast, and easy to spot in captures. */
export const DEFAULT_OUR_MAC = "9a:55:9a:55:9a:55";

/** Tap interface name in the namespace when neither -I nor a host template interface gives one. */
export const DEFAULT_NS_IFNAME = "tap0";

// Local mode (nothing usable on the host): the guest still gets a working link, as with libslirp's 10.0.2.x.
const LOCAL4_ADDR = "169.254.2.1";
const LOCAL4_GATEWAY = "169.254.2.2";
const LOCAL4_PREFIX_LEN = 16;
const LOCAL6_GATEWAY = "fe80::1";
// A guest's IPv6 address without a given prefix length sits in a /64, the size SLAAC and DHCPv6 assume.
const DEFAULT6_PREFIX_LEN = 64;
// DHCP and RAs carry at most three nameservers per IP version.
const MAX_DNS = 3;

/** The unset (all zeros) address. */
function unset(): Uint8Array {
  return new Uint8Array(INANY_LEN);
}

/** An inany for address text; undefined for absent (or, from the host's side, unparseable) text. */
function parsed(text: string | undefined): Uint8Array | undefined {
  return text === undefined ? undefined : (inanyParse(text) ?? undefined);
}

function isUnset(a: Uint8Array): boolean {
  return a.every((b) => b === 0);
}

/** Loopback (127.0.0.0/8, ::1) or unspecified: an address that reaches the host itself, never the guest. */
function isHostLocal(a: Uint8Array): boolean {
  if (inanyIsV4(a, 0)) return a[12] === 127 || (a[12] | a[13] | a[14] | a[15]) === 0;
  return a.subarray(0, 15).every((b) => b === 0) && a[15] <= 1;
}

function isLinkLocal6(a: Uint8Array): boolean {
  return a[0] === 0xfe && (a[1] & 0xc0) === 0x80;
}

/** The classful prefix length of an IPv4 address (A: 8, B: 16, C: 24, else 32), pasta's default for -a. */
function classfulPrefixLen(a: Uint8Array): number {
  const first = a[12];
  if (first < 128) return 8;
  if (first < 192) return 16;
  return first < 224 ? 24 : 32;
}

/** One IP version's addressing before DNS and NAT are added. */
interface FamilyAddressing {
  readonly enabled: boolean;
  readonly localMode: boolean;
  readonly addr: Uint8Array;
  readonly prefixLen: number;
  readonly gateway: Uint8Array;
  /** IPv4: our tap address; IPv6: our link-local address. */
  readonly ours: Uint8Array;
}

const DISABLED: FamilyAddressing = {
  enabled: false,
  localMode: false,
  addr: unset(),
  prefixLen: 0,
  gateway: unset(),
  ours: unset(),
};

/**
 * IPv4 (doc/tap-l2.md §8): -a/-n/-g override the template interface's address, prefix and gateway. Without a
 * template, an address or a gateway, local mode takes nothing from the host: -a/-g or the link-local defaults.
 */
function addressing4(cfg: FamilyConfig, host: HostInterface | undefined): FamilyAddressing {
  const given = parsed(cfg.address);
  const addr = given ?? parsed(host?.address);
  const gateway = parsed(cfg.gateway) ?? parsed(host?.gateway);
  if (host !== undefined && addr !== undefined && gateway !== undefined) {
    // The host's address comes with its own prefix length: -n applies to an -a address (pasta(1), -n).
    const prefixLen =
      given === undefined ? host.prefixLen || classfulPrefixLen(addr) : (cfg.prefixLen ?? classfulPrefixLen(given));
    return { enabled: true, localMode: false, addr, prefixLen, gateway, ours: gateway.slice() };
  }
  const localAddr = given ?? parsed(LOCAL4_ADDR)!;
  const localGateway = parsed(cfg.gateway) ?? parsed(LOCAL4_GATEWAY)!;
  const prefixLen = cfg.prefixLen ?? (given === undefined ? LOCAL4_PREFIX_LEN : classfulPrefixLen(given));
  const ours = localGateway.slice();
  return { enabled: true, localMode: true, addr: localAddr, prefixLen, gateway: localGateway, ours };
}

/**
 * IPv6 (doc/tap-l2.md §8): address and gateway from -a/-g or the template; our link-local address is the
 * gateway when that is link-local (the usual case), else the host's own link-local address. Without all of
 * these, local mode: no address (the guest's is learned), gateway and our link-local fe80::1.
 */
function addressing6(cfg: FamilyConfig, host: HostInterface | undefined): FamilyAddressing {
  const given = parsed(cfg.address);
  const addr = given ?? parsed(host?.address);
  const gateway = parsed(cfg.gateway) ?? parsed(host?.gateway);
  const ours = gateway !== undefined && isLinkLocal6(gateway) ? gateway.slice() : parsed(host?.linkLocal);
  if (host !== undefined && addr !== undefined && gateway !== undefined && ours !== undefined) {
    const prefixLen = cfg.prefixLen ?? ((given === undefined && host.prefixLen) || DEFAULT6_PREFIX_LEN);
    return { enabled: true, localMode: false, addr, prefixLen, gateway, ours };
  }
  const localGateway = parsed(cfg.gateway) ?? parsed(LOCAL6_GATEWAY)!;
  return {
    enabled: true,
    localMode: true,
    addr: given ?? unset(),
    prefixLen: cfg.prefixLen ?? DEFAULT6_PREFIX_LEN,
    gateway: localGateway,
    ours: isLinkLocal6(localGateway) ? localGateway.slice() : parsed(LOCAL6_GATEWAY)!,
  };
}

/** What one IP version gets for DNS: the advertised nameservers and the NAT's DNS match and host. */
interface FamilyDns {
  readonly dns: Uint8Array[];
  readonly dnsMatch: Uint8Array;
  readonly dnsHost: Uint8Array;
}

/**
 * DNS for one IP version (doc/tap-l2.md §13): -D addresses of this version, else resolv.conf's. A resolver on
 * the host's loopback is unreachable as such from the guest, so it is advertised as the --dns-forward address,
 * else as the map-host-loopback address, which then becomes the DNS match; with neither it is skipped.
 */
function familyDns(
  version: 4 | 6,
  config: Config,
  cfg: FamilyConfig,
  resolv: ResolvConf,
  mapHostLoopback: Uint8Array,
): FamilyDns {
  const ofVersion = (texts: readonly string[]) =>
    texts.map(parsed).filter((a): a is Uint8Array => a !== undefined && inanyIsV4(a, 0) === (version === 4));
  const resolvers = ofVersion(resolv.nameservers);
  const dnsMatch = parsed(cfg.dnsForward) ?? unset();
  const dnsHost = parsed(cfg.dnsHost) ?? resolvers[0]?.slice() ?? unset();
  if (config.noDns) return { dns: [], dnsMatch, dnsHost };
  const given = ofVersion(config.dns);
  if (given.length > 0) return { dns: given.slice(0, MAX_DNS), dnsMatch, dnsHost };

  const dns: Uint8Array[] = [];
  for (const resolver of resolvers) {
    if (dns.length === MAX_DNS) break;
    let advertised = resolver;
    if (isHostLocal(resolver) || (!isUnset(mapHostLoopback) && inanyEqual(resolver, 0, mapHostLoopback, 0))) {
      if (isUnset(dnsMatch)) {
        if (isUnset(mapHostLoopback)) continue;
        dnsMatch.set(mapHostLoopback);
      }
      advertised = dnsMatch.slice();
    }
    if (!dns.some((a) => inanyEqual(a, 0, advertised, 0))) dns.push(advertised);
  }
  return { dns, dnsMatch, dnsHost };
}

/** The NAT addresses of one IP version: map-host-loopback defaults to the gateway unless --no-map-gw. */
function familyNat(config: Config, cfg: FamilyConfig, a: FamilyAddressing) {
  const mapHostLoopback =
    parsed(cfg.mapHostLoopback) ?? (config.noMapGw || !a.enabled || isUnset(a.gateway) ? unset() : a.gateway.slice());
  return {
    mapHostLoopback,
    mapGuestAddr: parsed(cfg.mapGuestAddr) ?? unset(),
    outboundAddr: parsed(cfg.outbound) ?? unset(),
    outboundIfname: cfg.outboundIfname,
  };
}

/**
 * Resolves the addressing presented to the guest from the command line, the host's addressing and resolv.conf
 * (doc/tap-l2.md §8, §13; the NAT addresses: doc/udp-icmp.md §7). Pure: the same inputs always give the same
 * NetConf.
 */
export function resolveNetConf(config: Config, host: HostAddressing, resolv: ResolvConf): NetConf {
  const a4 = config.ipv6Only ? DISABLED : addressing4(config.ip4, host.v4);
  const a6 = config.ipv4Only ? DISABLED : addressing6(config.ip6, host.v6);
  const nat4 = familyNat(config, config.ip4, a4);
  const nat6 = familyNat(config, config.ip6, a6);
  const none = (): FamilyDns => ({ dns: [], dnsMatch: unset(), dnsHost: unset() });
  const dns4 = a4.enabled ? familyDns(4, config, config.ip4, resolv, nat4.mapHostLoopback) : none();
  const dns6 = a6.enabled ? familyDns(6, config, config.ip6, resolv, nat6.mapHostLoopback) : none();

  const ip4: NetConf4 = {
    enabled: a4.enabled,
    localMode: a4.localMode,
    addr: a4.addr.slice(),
    prefixLen: a4.prefixLen,
    gateway: a4.gateway.slice(),
    ourTapAddr: a4.ours.slice(),
    addrSeen: a4.addr.slice(),
    addrFixed: config.ip4.address !== undefined,
    ...dns4,
    ...nat4,
  };
  const ip6: NetConf6 = {
    enabled: a6.enabled,
    localMode: a6.localMode,
    addr: a6.addr.slice(),
    prefixLen: a6.prefixLen,
    gateway: a6.gateway.slice(),
    ourTapLinkLocal: a6.ours.slice(),
    addrSeen: a6.addr.slice(),
    addrLinkLocalSeen: unset(),
    addrFixed: config.ip6.address !== undefined,
    ...dns6,
    ...nat6,
  };
  const noNdp = config.noNdp || config.noIcmp || !ip6.enabled;
  return {
    mtu: config.mtu ?? DEFAULT_MTU,
    ourMac: parseMacText(config.macAddr ?? DEFAULT_OUR_MAC)!,
    // Until the guest's first frame shows its MAC: the namespace interface's, if set, else broadcast.
    guestMac: parseMacText(config.nsMacAddr ?? "ff:ff:ff:ff:ff:ff")!,
    ip4,
    ip6,
    searchDomains: config.noSearch
      ? []
      : (config.search.length > 0 ? config.search : resolv.search).slice(0, MAX_SEARCH_DOMAINS),
    hostname: config.hostname,
    fqdn: config.fqdn,
    dhcpDns: config.dhcpDns,
    dhcpSearch: config.dhcpSearch,
    noDhcp: config.noDhcp || !ip4.enabled || isUnset(ip4.gateway),
    noDhcpv6: config.noDhcpv6 || !ip6.enabled || isUnset(ip6.addr),
    noNdp,
    // pasta --config-net configures the interface itself, so router advertisements would only compete.
    noRa: config.noRa || (config.mode === "pasta" && config.configNet),
    noIcmp: config.noIcmp,
    noTcp: config.noTcp,
    noUdp: config.noUdp,
  };
}

/** The host interfaces to take as templates (-i, else --outbound-if4/6), for Netlink.hostAddressing. */
export function templateInterfaces(config: Config): { ifname4?: string; ifname6?: string } {
  return { ifname4: config.templateIfname ?? config.ip4.outboundIfname, ifname6: config.templateIfname ?? config.ip6.outboundIfname };
}

/** pasta's tap interface name: -I, else the name of the IPv4 (then IPv6) template interface in use, else tap0. */
export function namespaceIfname(config: Config, host: HostAddressing, netconf: NetConf): string {
  if (config.nsIfname !== undefined) return config.nsIfname;
  if (netconf.ip4.enabled && !netconf.ip4.localMode && host.v4 !== undefined) return host.v4.ifname;
  if (netconf.ip6.enabled && !netconf.ip6.localMode && host.v6 !== undefined) return host.v6.ifname;
  return DEFAULT_NS_IFNAME;
}

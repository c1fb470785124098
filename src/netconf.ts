/**
 * The addressing orzo presents to the guest, resolved once at start-up from the command line, the host's own
 * addressing (read over netlink) and resolv.conf, then updated from what the guest's traffic shows.
 *
 * Every address is a 16-byte inany (IPv4 as IPv4-mapped IPv6), so services and NAT compare bytes, never text.
 * An unset address is all zeros (the unspecified address).
 */

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
}

/** IPv6 addressing toward the guest. */
export interface NetConf6 {
  /** False with -4, or when IPv6 could not be set up. */
  enabled: boolean;
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
}

/**
 * The counters of the L2 services, one flat record shared by all of them.
 *
 * Every message from the guest is counted as seen (requests), then exactly once more: under replies when it is
 * answered, else under the reason it was dropped: disabled (the service or the IP version is switched off),
 * malformed (fails a length, format or RFC validity check) or ignored (well formed, but nothing to answer:
 * replies, announcements, DAD probes, messages for other servers). So requests = replies + disabled + malformed +
 * ignored for each protocol. dhcpv6.notOnLink counts the replies that refused the client's address; announce.*
 * count what is sent unprompted. The names are fixed: every counter is present, zero or not.
 *
 * Malformed input is also logged at debug level, at most once a second per protocol: a guest that keeps sending
 * broken frames should be visible without flooding the log.
 */
import { rateLimited } from "../log.ts";

/** Every counter's name. */
export const L2_STAT_NAMES = [
  "arp.requests", "arp.replies", "arp.ignored", "arp.malformed", "arp.disabled",
  "ndp.requests", "ndp.replies", "ndp.ignored", "ndp.malformed", "ndp.disabled",
  "dhcp.requests", "dhcp.replies", "dhcp.ignored", "dhcp.malformed", "dhcp.disabled",
  "dhcpv6.requests", "dhcpv6.replies", "dhcpv6.notOnLink", "dhcpv6.ignored", "dhcpv6.malformed", "dhcpv6.disabled",
  "announce.arp", "announce.ns", "announce.ra",
] as const;

/** A counter's name. */
export type L2StatName = (typeof L2_STAT_NAMES)[number];

/** The counters. */
export type L2Stats = Record<L2StatName, number>;

/** A fresh set of counters, all zero. */
export function newL2Stats(): L2Stats {
  const stats = {} as L2Stats;
  for (const name of L2_STAT_NAMES) stats[name] = 0;
  return stats;
}

/** The protocols the services speak. */
export type L2Protocol = "arp" | "ndp" | "dhcp" | "dhcpv6";

/** Per protocol: its malformed counter, its log channel and what it logs. */
const MALFORMED = {
  arp: { counter: "arp.malformed", log: rateLimited("services: ARP"), text: "ARP: malformed packet dropped" },
  ndp: { counter: "ndp.malformed", log: rateLimited("services: NDP"), text: "NDP: malformed message dropped" },
  dhcp: { counter: "dhcp.malformed", log: rateLimited("services: DHCP"), text: "DHCP: malformed message dropped" },
  dhcpv6: { counter: "dhcpv6.malformed", log: rateLimited("services: DHCPv6"), text: "DHCPv6: malformed message dropped" },
} as const;

/** Counts a malformed message from the guest and logs it (debug, rate-limited). */
export function countMalformed(stats: L2Stats, protocol: L2Protocol): void {
  const m = MALFORMED[protocol];
  stats[m.counter]++;
  m.log.debug(m.text);
}

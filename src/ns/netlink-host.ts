/**
 * The host's addressing for one IP version, chosen from netlink dumps as pasta chooses it (doc/tap-l2.md §8):
 * the template interface, its address, prefix length, default gateway and IPv6 link-local address.
 *
 * Pure functions over decoded records, so the rules are testable without a kernel; Netlink.hostAddressing
 * feeds them fresh dumps.
 */
import type { HostInterface } from "../netconf.ts";
import { IFA_F, IFF, RT, type IpVersion } from "./netlink-msg.ts";
import type { AddressInfo, LinkInfo, RouteInfo } from "./netlink-records.ts";

/** The dumps the choice is made from: all links, the main table's routes and the addresses of one version. */
export interface HostTables {
  readonly links: readonly LinkInfo[];
  readonly routes: readonly RouteInfo[];
  readonly addresses: readonly AddressInfo[];
}

/** The interface a route leaves through: its output interface, or a multipath route's first nexthop's. */
function routeInterface(r: RouteInfo): number {
  return r.oif || (r.multipath.length > 0 ? r.multipath[0].ifindex : 0);
}

/** Whether an address or prefix is link-local: 169.254.0.0/16, fe80::/10 (prefixes shorter than that are not). */
export function isLinkLocal(version: IpVersion, address: string, prefixLen: number): boolean {
  if (version === 4) return prefixLen >= 16 && address.startsWith("169.254.");
  const first = parseInt(address.slice(0, address.indexOf(":")), 16);
  return prefixLen >= 10 && (first & 0xffc0) === 0xfe80;
}

/** Main-table unicast routes of one version, in dump order. */
function mainRoutes(version: IpVersion, routes: readonly RouteInfo[]): RouteInfo[] {
  return routes.filter((r) => r.version === version && r.table === RT.TABLE_MAIN && r.type === RT.UNICAST);
}

/**
 * The template interface index for one version: the interface of the first default route, else of the first
 * route of any kind; routes through loopback and to link-local prefixes do not count. 0 when there is none.
 */
export function templateIndex(version: IpVersion, routes: readonly RouteInfo[], links: readonly LinkInfo[]): number {
  const loopback = new Set(links.filter((l) => l.flags & IFF.LOOPBACK).map((l) => l.index));
  let any = 0;
  for (const r of mainRoutes(version, routes)) {
    const index = routeInterface(r);
    if (index === 0 || loopback.has(index)) continue;
    if (r.dstLen === 0) return index;
    if (any === 0 && !isLinkLocal(version, r.dst ?? "", r.dstLen)) any = index;
  }
  return any;
}

/**
 * The default gateway through an interface: the gateway of its first default route, or for a multipath default
 * route the gateway of the nexthop on this interface with the highest weight (the first of equals).
 */
export function defaultGateway(version: IpVersion, index: number, routes: readonly RouteInfo[]): string | undefined {
  for (const r of mainRoutes(version, routes)) {
    if (r.dstLen !== 0) continue;
    if (r.oif === index && r.gateway) return r.gateway;
    let best: { weight: number; gateway?: string } | undefined;
    for (const hop of r.multipath) {
      if (hop.ifindex === index && hop.gateway && (!best || hop.weight > best.weight)) best = hop;
    }
    if (best) return best.gateway;
  }
  return undefined;
}

/**
 * The host's addressing on interface index for one version. The address is the one with the longest prefix that
 * is not deprecated; for IPv6 it must not be link-local, and the interface's first link-local address is reported
 * separately.
 */
export function hostInterface(version: IpVersion, index: number, tables: HostTables): HostInterface {
  const link = tables.links.find((l) => l.index === index);
  let best: AddressInfo | undefined;
  let linkLocal: string | undefined;
  for (const a of tables.addresses) {
    if (a.version !== version || a.index !== index) continue;
    if (version === 6 && (a.scope === RT.SCOPE_LINK || isLinkLocal(6, a.address, 128))) {
      linkLocal ??= a.address;
      continue;
    }
    if (a.scope >= RT.SCOPE_HOST || a.flags & IFA_F.DEPRECATED) continue;
    if (!best || a.prefixLen > best.prefixLen) best = a;
  }
  return {
    ifname: link?.name ?? `ifindex ${index}`,
    ifindex: index,
    address: best?.address,
    prefixLen: best?.prefixLen ?? 0,
    gateway: defaultGateway(version, index, tables.routes),
    linkLocal: version === 6 ? linkLocal : undefined,
  };
}

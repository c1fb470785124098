/**
 * -o/--outbound and --outbound-if4/--outbound-if6: where the host-side sockets of flows from the guest (TCP
 * connections, UDP flows, ping sockets) leave from. Each new socket toward the host's network is bound to the
 * interface of its IP version (SO_BINDTODEVICE: the kernel routes it through that interface only) and to the
 * source address of its IP version, before it connects or sends, so the peer sees that address or interface.
 *
 * Destinations on the host's loopback (the --map-host-loopback address, a resolver on 127.0.0.53) are left
 * alone: a socket bound to an outside interface cannot reach "lo" at all, and the host's own services would see
 * an outside source address for what the guest addressed to the host.
 */
import type { Config } from "../cli/config.ts";
import { templateInterfaces, type HostAddressing, type NetConf } from "../netconf.ts";
import type { Netlink } from "../ns/netlink.ts";
import { SO_BINDTODEVICE, SOL_SOCKET } from "../syscalls/constants.ts";
import { setsockoptBytes } from "../syscalls/socket.ts";
import { encodeCString } from "../syscalls/strings.ts";
import { inanyIsV4 } from "../wire/inany.ts";
import { inanyIsLoopback, inanyIsUnset } from "./nat.ts";
import { ANY4, ANY6, bindPreferring } from "./udp_sock.ts";

/** Binds new host-side sockets as -o and --outbound-if4/6 ask. */
export class OutboundBinding {
  /** The interface names as C strings, encoded once (none: undefined). */
  private readonly device4: Uint8Array | undefined;
  private readonly device6: Uint8Array | undefined;

  constructor(private readonly nc: NetConf) {
    this.device4 = nc.ip4.outboundIfname === undefined ? undefined : encodeCString(nc.ip4.outboundIfname);
    this.device6 = nc.ip6.outboundIfname === undefined ? undefined : encodeCString(nc.ip6.outboundIfname);
  }

  /**
   * Prepares fd, a new socket toward the inany at dst[dstOff], before its connect or first send: the outbound
   * interface, then a bind to the outbound address (or the wildcard) and port. port 0 lets the kernel pick one;
   * another port is asked for first and, when taken, the kernel picks. With nothing to bind and port 0 the
   * socket is left as it is. Returns 0 or -errno.
   */
  bind(fd: number, dst: Uint8Array, dstOff: number, port: number): number {
    const v4 = inanyIsV4(dst, dstOff);
    const local = inanyIsLoopback(dst, dstOff);
    const device = local ? undefined : v4 ? this.device4 : this.device6;
    if (device !== undefined) {
      const r = setsockoptBytes(fd, SOL_SOCKET, SO_BINDTODEVICE, device);
      if (r < 0) return r;
    }
    const source = (v4 ? this.nc.ip4 : this.nc.ip6).outboundAddr;
    if (!local && !inanyIsUnset(source)) return bindPreferring(fd, source, 0, port);
    return port === 0 ? 0 : bindPreferring(fd, v4 ? ANY4 : ANY6, 0, port);
  }
}

/**
 * The host's addressing on the template interfaces (-i, else --outbound-if4/6), read over the host's netlink
 * socket nl. The outbound interfaces are checked first, so that a name the host does not have is one error at
 * start-up rather than a failed socket per flow; and, as in pasta, an outbound interface must give its IP version
 * an address to take. Throws an Error naming the option.
 */
export function readHostAddressing(config: Config, nl: Netlink): HostAddressing {
  const outbound = [[4, config.ip4.outboundIfname], [6, config.ip6.outboundIfname]] as const;
  const links = nl.links();
  for (const [v, name] of outbound) {
    if (name !== undefined && !links.some((l) => l.name === name)) throw new Error(`--outbound-if${v}: the host has no interface named '${name}'`);
  }
  const host = nl.hostAddressing(templateInterfaces(config));
  for (const [v, name] of outbound) {
    if (name !== undefined && host[`v${v}`]?.address === undefined) {
      throw new Error(`--outbound-if${v}: ${config.templateIfname ?? name} has no IPv${v} address to take as the template`);
    }
  }
  return host;
}

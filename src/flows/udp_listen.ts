/**
 * UDP forwarding listeners: -u (on the host, toward the guest or, from the host's loopback, spliced into the
 * namespace) and -U (in the namespace, bound to its "lo", toward the host's loopback), opened from the rule
 * tables, and where their datagrams go.
 *
 * A listening socket only starts flows (udp.ts): its epoll reference carries the port, the pif it listens on and
 * the rule, and the rule gives the target port and, when the rule names one, the target address. The listeners
 * of each side are kept in a port map, so that automatic forwarding (scan.ts) never forwards a port back to
 * where orzo itself listens.
 */
import type { ForwardTable } from "../fwd/rules.ts";
import { targetPort } from "../fwd/rules.ts";
import { newPortMap, portBitClear, portBitSet } from "../fwd/procnet.ts";
import { errnoName } from "../syscalls/errno.ts";
import { Pif } from "./flow.ts";
import { ListenError } from "./tcp_listen.ts";
import type { UdpFlows } from "./udp.ts";

/** How UDP listeners are opened. */
export interface UdpListenersOptions {
  /** --freebind: listening addresses need not be configured yet. */
  readonly freebind: boolean;
}

/** Listening sockets for -u and -U, and the rules behind them. */
export class UdpListeners {
  /** Listening fds, for closing. */
  readonly fds = new Set<number>();
  private readonly ports: (Uint32Array | undefined)[] = [];
  /** The rules of host listeners (-u) and namespace listeners (-U), by listener pif. */
  private readonly tables: (ForwardTable | undefined)[] = [];

  constructor(private readonly udp: UdpFlows, private readonly opts: UdpListenersOptions) {
    udp.inboundTarget = (rule, port, pif, addr) => {
      const r = this.tables[pif]?.rules[rule];
      if (r === undefined || port < r.first || port > r.last) return -1;
      if (r.targetAddr) addr.set(r.targetAddr);
      return targetPort(r, port);
    };
  }

  /**
   * Opens a listener for every port of every rule of the table that does not wait for a scan: on the host for
   * -u (pif HOST), in the namespace for -U (pif SPLICE). A port of a normal rule that cannot be bound is an
   * error; a weak rule fails only when none of its ports can be bound.
   */
  listenAll(table: ForwardTable, pif: Pif): void {
    this.tables[pif] = table;
    table.rules.forEach((rule, index) => {
      if (rule.scan) return;
      let ok = 0;
      let lastError = "";
      for (let port = rule.first; port <= rule.last; port++) {
        const r = this.listenOne(rule.listenAddr, rule.dualStack, rule.ifname, port, index, pif);
        if (r >= 0) ok++;
        else if (rule.weak) lastError = `port ${port}: ${errnoName(-r)}`;
        else throw new ListenError(`cannot listen on UDP port ${port}: ${errnoName(-r)}`);
      }
      if (ok === 0) throw new ListenError(`cannot listen on any UDP port of ${rule.first}-${rule.last} (${lastError})`);
    });
  }

  /**
   * Opens one listening socket on the host (pif HOST) or in the namespace (SPLICE) for a port of rule `rule` of
   * that side's table; returns its fd or -errno.
   */
  listenOne(addr: Uint8Array | null, dualStack: boolean, ifname: string | null, port: number, rule: number, pif: Pif): number {
    const fd = this.udp.listenSocket(addr, dualStack, port, rule, { pif, ifname, freebind: this.opts.freebind });
    if (fd < 0) return fd;
    this.fds.add(fd);
    portBitSet(this.portMap(pif), port);
    return fd;
  }

  /** Ports with a listener on one side (HOST or SPLICE): scans exclude them, so forwarding never loops. */
  portMap(pif: Pif): Uint32Array {
    return (this.ports[pif] ??= newPortMap());
  }

  /** Closes one listener opened by listenOne (a scanned port that is gone); its flows keep their sockets. */
  closeOne(fd: number, port: number, pif: Pif): void {
    this.udp.unlisten(fd);
    this.fds.delete(fd);
    portBitClear(this.portMap(pif), port);
  }

  /** Closes every listener. */
  closeAll(): void {
    for (const fd of this.fds) this.udp.unlisten(fd);
    this.fds.clear();
    for (const map of this.ports) map?.fill(0);
  }
}

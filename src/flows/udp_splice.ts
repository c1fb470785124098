/**
 * Spliced UDP (pasta only): datagrams between the host's loopback and the namespace moved socket to socket,
 * without the tap (doc/udp-icmp.md §4).
 *
 * Theory of operation. A datagram from the host's loopback on a -u listener, or one on a -U listener (bound to
 * the namespace's "lo"), starts a UDP flow with a socket on each side. The initiating side's socket is bound like
 * the listener and connected to the peer, as for flows toward the tap. The target side's socket is made on the
 * other side (in the namespace for -u, on the host for -U), bound to the peer's source port where that port is
 * free there, so the server sees the port the client used, and connected to the target: the namespace's own
 * address for -u (its loopback with --host-lo-to-ns-lo; a loopback-only service is not exposed by default), the
 * host's loopback of the same family for -U. Datagrams read from either socket are written to the other as
 * they are, in recvmmsg/sendmmsg batches over the same buffers: nothing is rebuilt, nothing is copied.
 *
 * Namespace sockets come from a pool the namespace thread refills in the background (ns_pool.ts), so a new flow
 * does not wait for a round trip to it; they get the options of every UDP socket of orzo when taken from it.
 */
import type { NetConf } from "../netconf.ts";
import { IPPROTO_UDP } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import type { MmsgArray } from "../syscalls/msg.ts";
import { inanyIsV4 } from "../wire/inany.ts";
import { Pif } from "./flow.ts";
import { guestAddress, inanyIsLoopback, inanyIsUnset, LOOPBACK4, LOOPBACK6 } from "./nat.ts";
import { NsSocketPool, type NamespaceSockets } from "./ns_pool.ts";
import { sendBatch, UDP_SOCKET_TYPE, udpSocket, udpSocketOptions } from "./udp_sock.ts";

/** How spliced UDP behaves (pasta's options). */
export interface UdpSpliceOptions {
  /** Where namespace sockets come from (the namespace thread). */
  readonly ns: NamespaceSockets;
  /** --no-splice: datagrams from the host's loopback take the tap path too. */
  readonly noSplice: boolean;
  /** --host-lo-to-ns-lo: spliced datagrams from the host go to the namespace's loopback. */
  readonly hostLoToNsLo: boolean;
  /** --splice-only: no tap, so datagrams that cannot be spliced are refused. */
  readonly spliceOnly: boolean;
}

/** Sockets in the namespace and the socket-to-socket data path of spliced UDP flows. */
export class UdpSplice {
  /** Counters: datagrams moved socket to socket, those a socket refused, pending ICMP errors met on the way. */
  readonly stats = { sent: 0, sendFailed: 0, socketErrors: 0 };
  private readonly pool: NsSocketPool;

  constructor(private readonly nc: NetConf, private readonly opts: UdpSpliceOptions) {
    this.pool = new NsSocketPool(opts.ns, UDP_SOCKET_TYPE, IPPROTO_UDP);
  }

  /** A UDP socket with orzo's options on the host (pif HOST) or in the namespace (SPLICE): its fd, or -errno. */
  socket(pif: number, v4: boolean, v6only: boolean): number {
    if (pif !== Pif.SPLICE) return udpSocket(v4, v6only);
    const fd = this.pool.take(v4);
    return fd < 0 ? -Errno.EMFILE : udpSocketOptions(fd, v4, v6only);
  }

  /**
   * Where a datagram goes that reached a listener on pif, sent by the peer at key[peerOff] to our address at
   * key[0] (inany). On entry addr holds the rule's target address or all zeros; on return the target address.
   * Returns the target's pif: TAP (not spliced: the caller presents the datagram to the guest), SPLICE (into the
   * namespace), HOST (to the host's loopback), or NONE (refused; with --splice-only, whatever is not spliced).
   */
  target(pif: number, key: Uint8Array, peerOff: number, addr: Uint8Array): number {
    const v4 = inanyIsV4(key, peerOff);
    const loopback = inanyIsLoopback(key, peerOff);
    if (pif === Pif.SPLICE) {
      // -U serves the namespace's loopback only: its own address is reached over "lo" too, but is no loopback
      // address the host could take.
      if (!loopback || !(inanyIsLoopback(key, 0) || inanyIsUnset(key, 0))) return Pif.NONE;
      addr.set(v4 ? LOOPBACK4 : LOOPBACK6);
      return Pif.HOST;
    }
    if (pif !== Pif.HOST || !loopback || this.opts.noSplice || !inanyIsUnset(addr)) return this.opts.spliceOnly ? Pif.NONE : Pif.TAP;
    // A link-local address cannot be connected to without its interface: the loopback serves then.
    if (this.opts.hostLoToNsLo || !guestAddress(this.nc, v4, addr, 0) || isLinkLocal(addr)) addr.set(v4 ? LOOPBACK4 : LOOPBACK6);
    return Pif.SPLICE;
  }

  /**
   * Sends the n datagrams a recvmmsg left in rx (message i in iovec i, at bufAddr + i * slot) on the connected
   * socket fd with sendmmsg, then gives the iovecs back their full slot. A datagram the socket refuses is dropped
   * and counted (a pending ICMP error is cleared by the failure and the datagram tried once more).
   */
  forward(rx: MmsgArray, n: number, fd: number, bufAddr: number, slot: number): void {
    for (let i = 0; i < n; i++) rx.iov.set(i, bufAddr + i * slot, rx.messageLength(i));
    sendBatch(fd, rx, n, this.stats);
    for (let i = 0; i < n; i++) rx.iov.set(i, bufAddr + i * slot, slot);
  }

  /** Closes the pooled namespace sockets. */
  closePool(): void {
    this.pool.close();
  }
}

/** True for fe80::/10. */
function isLinkLocal(a: Uint8Array): boolean {
  return a[0] === 0xfe && (a[1] & 0xc0) === 0x80;
}

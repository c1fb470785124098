/**
 * Inbound TCP (-t): listening sockets on the host for each forwarded port, and connections accepted on them
 * turned into connections to the guest.
 *
 * An accepted connection is already established for the host peer; orzo sends a SYN to the guest from the
 * peer's address as the guest sees it (the host's loopback appears as the --map-host-loopback address) to the
 * guest's address and the rule's target port. Data the peer sends meanwhile waits in the socket. When the
 * guest's SYN-ACK comes back the connection is established both ways (tcp_tap.ts).
 */
import { EpollType, listenPif, listenPort, listenRef, listenRule } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import type { NetConf } from "../netconf.ts";
import { AF_INET, AF_INET6, EPOLLIN, IPPROTO_IPV6, IPV6_V6ONLY, SO_BINDTODEVICE, SO_REUSEADDR, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, IP_FREEBIND, IPPROTO_IP, IPV6_FREEBIND } from "../syscalls/constants.ts";
import { Errno, errnoName } from "../syscalls/errno.ts";
import { close } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { sockaddrFromInany, sockaddrToInany } from "../syscalls/sockaddr.ts";
import { accept4, bindRaw, getsocknameRaw, listenRaw, SOCKADDR_SLOT, setsockoptBytes, setsockoptInt, trySocket } from "../syscalls/socket.ts";
import { log, logEnabled, rateLimited } from "../log.ts";
import { encodeCString } from "../syscalls/strings.ts";
import { INANY_LEN, inanyIsV4 } from "../wire/inany.ts";
import { targetPort, type ForwardTable } from "../fwd/rules.ts";
import { newPortMap, portBitClear, portBitSet } from "../fwd/procnet.ts";
import { flowEpollSet, flows } from "./epoll.ts";
import { FlowType, INISIDE, Pif, TGTSIDE } from "./flow.ts";
import { guestAddress, inanyIsLoopback, natInboundSource } from "./nat.ts";
import type { NamespaceSockets } from "./ns_pool.ts";
import type { TcpSplice } from "./tcp_splice.ts";
import type { TcpFlows } from "./tcp.ts";
import type { TcpTapInput } from "./tcp_tap.ts";
import { TcpEvent, TcpFlag } from "./tcp_state.ts";
import { seqAdd, WS_TO_TAP } from "./tcp_conn.ts";

const BACKLOG = 128;
const ZERO = new Uint8Array(INANY_LEN);
const refuseLog = rateLimited("tcp: inbound refused");

/** How listeners are opened and where their connections go. */
export interface TcpListenOptions {
  /** --freebind: IP_FREEBIND on listening sockets. */
  readonly freebind: boolean;
  /** pasta: sockets in the namespace (-T listeners, splice targets). */
  readonly ns?: NamespaceSockets;
  /** pasta: spliced connections between the loopbacks. */
  readonly splice?: TcpSplice;
  /** --no-splice: loopback connections from the host take the tap path too. */
  readonly noSplice: boolean;
  /** --host-lo-to-ns-lo: spliced connections from the host go to the namespace's loopback. */
  readonly hostLoToNsLo: boolean;
  /** pasta --splice-only: there is no guest behind a tap, so what cannot be spliced is refused. */
  readonly spliceOnly?: boolean;
}

/** A listening socket that could not be opened. */
export class ListenError extends Error {}

/** Listening sockets for -t, and the connections accepted on them. */
export class TcpListeners {
  /** Counters. */
  readonly stats = { accepted: 0, refused: 0 };
  /** Listening fds, for closing. */
  readonly fds: number[] = [];
  private readonly sa = new Mem(2 * SOCKADDR_SLOT);
  private readonly peer = new Uint8Array(INANY_LEN);
  private readonly local = new Uint8Array(INANY_LEN);
  private readonly src = new Uint8Array(INANY_LEN);
  private readonly dst = new Uint8Array(INANY_LEN);
  private readonly ports: (Uint32Array | undefined)[] = [];
  /** The rules of host listeners (-t) and namespace listeners (-T), by listener pif. */
  private readonly tables: (ForwardTable | undefined)[] = [];

  constructor(
    private readonly loop: EventLoop,
    private readonly nc: NetConf,
    private readonly tcp: TcpFlows,
    private readonly input: TcpTapInput,
    private readonly opts: TcpListenOptions,
  ) {
    loop.on(EpollType.TCP_LISTEN, (fd, payload, _events, now) => this.accept(fd, payload, now));
  }

  /**
   * Opens a listener for every port of every rule of the table that does not wait for a scan: on the host for
   * -t (pif HOST), in the namespace for -T (pif SPLICE). A port of a normal rule that cannot be bound is an
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
        else throw new ListenError(`cannot listen on TCP port ${port}: ${errnoName(-r)}`);
      }
      if (ok === 0) throw new ListenError(`cannot listen on any TCP port of ${rule.first}-${rule.last} (${lastError})`);
    });
  }

  /** Opens one listening socket on the host (pif HOST) or in the namespace (SPLICE); returns its fd or -errno. */
  listenOne(addr: Uint8Array | null, dualStack: boolean, ifname: string | null, port: number, rule: number, pif: Pif = Pif.HOST): number {
    const v4 = addr !== null && inanyIsV4(addr, 0);
    const domain = v4 ? AF_INET : AF_INET6;
    const type = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
    let fd: number;
    if (pif === Pif.SPLICE) {
      if (!this.opts.ns) return -Errno.EAFNOSUPPORT;
      try {
        fd = this.opts.ns.sockets(domain, type, 0, 1)[0] ?? -Errno.EMFILE;
      } catch {
        return -Errno.EMFILE;
      }
    } else {
      fd = trySocket(domain, type, 0);
    }
    if (fd < 0) return fd;
    setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (!v4) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dualStack ? 0 : 1);
    // Accepted sockets inherit TCP_NODELAY and the peek offset: set once here, not per connection.
    this.tcp.io.prepare(fd);
    if (this.opts.freebind) setsockoptInt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_FREEBIND : IPV6_FREEBIND, 1);
    let r = ifname ? setsockoptBytes(fd, SOL_SOCKET, SO_BINDTODEVICE, encodeCString(ifname)) : 0;
    if (r === 0) {
      const len = sockaddrFromInany(this.sa, 0, addr ?? ZERO, 0, port, 0);
      r = bindRaw(fd, this.sa.addr, len);
    }
    if (r === 0) r = listenRaw(fd, BACKLOG);
    if (r < 0) {
      close(fd);
      return r;
    }
    this.loop.add(EpollType.TCP_LISTEN, fd, listenRef(port, pif, rule), EPOLLIN);
    this.fds.push(fd);
    portBitSet(this.portMap(pif), port);
    return fd;
  }

  /** Ports with a listener on one side (HOST or SPLICE): scans exclude them, so forwarding never loops. */
  portMap(pif: Pif): Uint32Array {
    return (this.ports[pif] ??= newPortMap());
  }

  /** Closes one listener opened by listenOne (a scanned port that is gone). */
  closeOne(fd: number, port: number, pif: Pif): void {
    this.loop.remove(fd);
    close(fd);
    const i = this.fds.indexOf(fd);
    if (i >= 0) this.fds.splice(i, 1);
    portBitClear(this.portMap(pif), port);
  }

  /**
   * A connection waiting on a listener becomes a SYN to the guest (or a spliced connection). One per event, as
   * the listener is level-triggered: epoll reports it again while more wait, and no accept ends in EAGAIN.
   */
  private accept(lfd: number, ref: number, now: number): void {
    const s = accept4(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC, this.sa, 0);
    if (s === -Errno.EAGAIN || s === -Errno.EINTR) return;
    if (s < 0) {
      refuseLog.warn(`tcp: accept failed: ${errnoName(-s)}`);
      return;
    }
    this.stats.accepted++;
    if (!this.connectGuest(s, ref, now)) {
      this.stats.refused++;
      this.tcp.io.lingerZero(s);
      close(s);
    }
  }

  private connectGuest(s: number, ref: number, now: number): boolean {
    const peerPort = sockaddrToInany(this.sa, 0, this.peer, 0);
    if (peerPort <= 0) return false;
    if (getsocknameRaw(s, this.sa, SOCKADDR_SLOT) < 0) return false;
    const localPort = sockaddrToInany(this.sa, SOCKADDR_SLOT, this.local, 0);
    const pif = listenPif(ref);
    const rule = this.tables[pif]?.rules[listenRule(ref)];
    if (rule === undefined || localPort < 0) return false;
    const toPort = targetPort(rule, listenPort(ref));
    const v4 = inanyIsV4(this.peer, 0);
    const splice = this.opts.splice;
    const loopback = inanyIsLoopback(this.peer, 0);
    if (pif === Pif.SPLICE) {
      // -T: loopback to loopback only, the same address on the host's side.
      if (!loopback || !splice) return false;
      return splice.open(s, Pif.SPLICE, this.peer, peerPort, this.local, localPort, Pif.HOST, this.local, toPort);
    }
    if (loopback && splice?.toNamespace && !this.opts.noSplice && !rule.targetAddr) {
      // From the host's loopback: into the namespace's own address (or its loopback with --host-lo-to-ns-lo).
      if (this.opts.hostLoToNsLo || !guestAddress(this.nc, v4, this.dst, 0)) this.dst.set(this.local);
      return splice.open(s, Pif.HOST, this.peer, peerPort, this.local, localPort, Pif.SPLICE, this.dst, toPort);
    }
    if (this.opts.spliceOnly || !natInboundSource(this.nc, this.peer, 0, this.src, 0)) return false;
    const srcLinkLocal = !v4 && this.src[0] === 0xfe && (this.src[1] & 0xc0) === 0x80;
    if (rule.targetAddr) this.dst.set(rule.targetAddr);
    else if (!guestAddress(this.nc, v4, this.dst, 0, srcLinkLocal)) {
      refuseLog.warn("tcp: inbound connection refused: the guest has no address yet");
      return false;
    }
    if (inanyIsV4(this.dst, 0) !== v4) return false;
    const t = flows();
    const f = t.alloc();
    if (f < 0) return false;
    t.initiate(f, Pif.HOST, this.peer, 0, peerPort, this.local, 0, localPort);
    t.target(f, Pif.TAP, this.src, 0, peerPort, this.dst, 0, toPort);
    t.setType(f, FlowType.TCP);
    t.fd[2 * f + INISIDE] = s;
    t.lastActive[f] = now;
    const tcp = this.tcp;
    const c = tcp.c;
    c.reset(f);
    c.wsToTap[f] = WS_TO_TAP;
    const isn = this.input.isn(f, TGTSIDE, now);
    t.events[f] = TcpEvent.SOCK_ACCEPTED;
    t.hashInsert(f, TGTSIDE);
    const er = flowEpollSet(EpollType.TCP, f, INISIDE);
    t.activate(f);
    tcp.stats.opened++;
    if (er < 0) {
      tcp.reset(f, `epoll: errno ${-er}`);
      return true;
    }
    tcp.out.syn(f, TGTSIDE, 0, isn, tcp.ourMss(v4));
    c.seqToTap[f] = c.seqAckFromTap[f] = seqAdd(isn, 1);
    tcp.setFlags(f, TcpFlag.ACK_FROM_TAP_DUE, 0);
    if (logEnabled("debug")) log.debug(`TCP flow ${f}: inbound to port ${toPort}`);
    return true;
  }

  /** Closes every listener. */
  closeAll(): void {
    for (const fd of this.fds) {
      this.loop.remove(fd);
      close(fd);
    }
    this.fds.length = 0;
  }
}

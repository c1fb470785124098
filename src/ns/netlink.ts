/**
 * A NETLINK_ROUTE client: reads the host's links, addresses and routes (default addressing) and configures the
 * namespace side (link state, MTU, MAC, addresses, routes, copies of the host's), without the ip binary.
 *
 * One socket per instance, made in the current network namespace or handed over: orzo's namespace thread makes one
 * inside the target namespace and passes it over SCM_RIGHTS, and a socket keeps the namespace it was made in.
 * Requests are blocking and carry sequence numbers; do-requests ask for an ACK, dumps run to NLMSG_DONE, replies
 * to other sequence numbers are skipped, and every wait for the kernel is bounded by a timeout. Failures are
 * NetlinkErrors that name the request, e.g. "netlink: RTM_NEWADDR 198.51.100.2/24 on tap0: EEXIST (File exists)".
 * Setup path only: this never runs inside the event loop.
 */
import type { HostAddressing, HostInterface } from "../netconf.ts";
import {
  AF_NETLINK, AF_UNSPEC, MSG_DONTWAIT, MSG_TRUNC, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_ROUTE,
  POLLIN, SO_DOMAIN, SO_PROTOCOL, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK, SOL_SOCKET,
} from "../syscalls/constants.ts";
import { Errno, SyscallError } from "../syscalls/errno.ts";
import { close, recv, send } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { pollOne } from "../syscalls/poll.ts";
import { getsockoptInt, setsockoptInt, socket } from "../syscalls/socket.ts";
import { encodeCString } from "../syscalls/strings.ts";
import { parseIPv4Into, parseIPv6Into } from "../wire/inany.ts";
import { hostInterface, templateIndex } from "./netlink-host.ts";
import {
  addressLength, decodeAck, decodeDone, familyOf, forEachMessage, IFA_F, IFADDRMSG, IFF, IFINFOMSG, IFA, IFLA,
  MessageWriter, NetlinkError, NLM_F, NLMSG, nlBuffer, RT, RTA, RTM, RTMSG, type IpVersion, type NlBuffer,
} from "./netlink-msg.ts";
import {
  decodeAddress, decodeLink, decodeRoute, describeRoute, routeUsesOnly, writeAddressCopy, writeRouteCopy,
  type AddressInfo, type LinkInfo, type RouteInfo,
} from "./netlink-records.ts";

/** The error type and record shapes callers of the client need, re-exported so they import one module. */
export { NetlinkError, type IpVersion } from "./netlink-msg.ts";
export type { AddressInfo, LinkInfo, NextHop, RouteInfo } from "./netlink-records.ts";

/** Kernel dump datagrams are at most 32 KiB; a bigger one is reported (MSG_TRUNC), never silently cut. */
const RX_SIZE = 65536;
/** Requests are small: the largest is a copied multipath route. */
const TX_SIZE = 8192;
const DEFAULT_TIMEOUT_MS = 2000;
/** A dump the kernel marks inconsistent (the tables changed while it ran) is retried this many times. */
const DUMP_ATTEMPTS = 3;
/** How often linkLocal looks again while waiting for the address to appear. */
const LINK_LOCAL_POLL_MS = 10;
/** Route copy failures that another pass may fix, once the routes they depend on are in. */
const RETRY_ERRNOS: ReadonlySet<number> = new Set([Errno.ENETUNREACH, Errno.EHOSTUNREACH]);

/** Options for a Netlink client. */
export interface NetlinkOptions {
  /** An existing NETLINK_ROUTE socket to use, e.g. one made inside the target namespace; the client owns it. */
  readonly fd?: number;
  /** Longest wait for the kernel's replies to one request, in milliseconds (default 2000). */
  readonly timeoutMs?: number;
}

/** A route for addRoute. */
export interface RouteSpec {
  /** Output interface. */
  readonly ifindex: number;
  /** Destination prefix; omit for a default route. */
  readonly dst?: string;
  readonly dstLen?: number;
  readonly gateway?: string;
  /** The route's metric (RTA_PRIORITY). */
  readonly metric?: number;
  /** Needed only when neither dst nor gateway says it. */
  readonly version?: IpVersion;
}

/** What copyRoutes did. */
export interface RouteCopyResult {
  /** Routes now on the target interface: installed, or already there (EEXIST). */
  readonly copied: number;
  /** Routes the kernel still refused after the last pass (unreachable gateway), each error naming its route. */
  readonly failed: readonly NetlinkError[];
}

/** Receives each data message of a reply. */
type ReplyVisitor = (type: number, b: NlBuffer, off: number, len: number) => void;

/** A client on one NETLINK_ROUTE socket. */
export class Netlink {
  /** The socket. */
  readonly fd: number;
  /** Longest wait for the replies to one request, in milliseconds. */
  readonly timeoutMs: number;
  private seq = 1;
  private closed = false;
  private readonly tx = new Mem(TX_SIZE);
  private readonly rx = new Mem(RX_SIZE);
  private readonly writer = new MessageWriter(this.tx);
  /** Interface names seen, only to name interfaces in error messages. */
  private readonly names = new Map<number, string>();

  constructor(opts: NetlinkOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fd = opts.fd ?? syscall("socket", () => socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (opts.fd !== undefined) checkRouteSocket(opts.fd);
    // The kernel's error text, errors without our request echoed back, and kernel-side dump filters; older
    // kernels lack some of these, and everything works without them (dumps are filtered here as well).
    for (const opt of [NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK]) setsockoptInt(this.fd, SOL_NETLINK, opt, 1);
  }

  /** The sequence number the next request will carry (they start at 1). */
  get nextSequence(): number {
    return this.seq;
  }

  /** Closes the socket (once). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    close(this.fd);
  }

  /** Every interface. */
  links(): LinkInfo[] {
    const links = this.dump("RTM_GETLINK dump", () => {
      this.writer.begin(RTM.GETLINK, NLM_F.DUMP);
      this.writer.reserve(IFINFOMSG.size);
    }, (type, b, off, len) => (type === RTM.NEWLINK ? decodeLink(b, off, len) : undefined));
    for (const l of links) this.names.set(l.index, l.name);
    return links;
  }

  /** One interface, by name or index; ENODEV when there is none. */
  link(which: string | number): LinkInfo {
    const what = `RTM_GETLINK ${typeof which === "number" ? `ifindex ${which}` : which}`;
    this.writer.begin(RTM.GETLINK, NLM_F.ACK);
    const hdr = this.writer.reserve(IFINFOMSG.size);
    if (typeof which === "number") this.tx.view.setInt32(hdr + IFINFOMSG.index, which, true);
    else this.writer.attr(IFLA.IFNAME, encodeCString(which));
    let link: LinkInfo | undefined;
    this.exchange(what, (type, b, off, len) => {
      if (type === RTM.NEWLINK) link = decodeLink(b, off, len);
    });
    if (!link) throw new NetlinkError(Errno.ENODEV, "no link in the reply", what);
    this.names.set(link.index, link.name);
    return link;
  }

  /** The index of the interface with this name. */
  linkIndex(name: string): number {
    return this.link(name).index;
  }

  /** Brings a link up or down. */
  setLinkUp(index: number, up = true): void {
    this.changeFlags(index, up ? IFF.UP : 0, IFF.UP, up ? "up" : "down");
  }

  /** Sets the link flags in change to their values in set (e.g. IFF_NOARP while DAD must not run). */
  setLinkFlags(index: number, set: number, change: number): void {
    this.changeFlags(index, set, change, `flags 0x${set.toString(16)}/0x${change.toString(16)}`);
  }

  /** Sets a link's MTU. */
  setMtu(index: number, mtu: number): void {
    const what = `RTM_NEWLINK ${this.dev(index)} mtu ${mtu}`;
    this.beginLink(index);
    this.writer.attrU32(IFLA.MTU, mtu);
    this.exchange(what);
  }

  /** Sets the largest GSO packet the stack builds for a link, for IPv6 and (Linux 6.3 and later) IPv4. */
  setGsoMaxSize(index: number, size: number): void {
    const what = `RTM_NEWLINK ${this.dev(index)} gso_max_size ${size}`;
    this.beginLink(index);
    this.writer.attrU32(IFLA.GSO_MAX_SIZE, size);
    // Older kernels skip the attribute they do not know: IPv4 then keeps 64 KiB packets.
    this.writer.attrU32(IFLA.GSO_IPV4_MAX_SIZE, size);
    this.exchange(what);
  }

  /** Sets a link's MAC address ("9a:55:9a:55:9a:55"). */
  setMac(index: number, mac: string): void {
    const what = `RTM_NEWLINK ${this.dev(index)} address ${mac}`;
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new NetlinkError(Errno.EINVAL, "not a MAC address", what);
    this.beginLink(index);
    this.writer.attr(IFLA.ADDRESS, Uint8Array.from(mac.split(":"), (x) => parseInt(x, 16)));
    this.exchange(what);
  }

  /** Addresses of one IP version (or both), of one interface (or all: index 0). */
  addresses(version?: IpVersion, index = 0): AddressInfo[] {
    return this.dump("RTM_GETADDR dump", () => this.beginAddressDump(version, index), (type, b, off, len) => {
      const a = type === RTM.NEWADDR ? decodeAddress(b, off, len) : undefined;
      return a && (!version || a.version === version) && (!index || a.index === index) ? a : undefined;
    });
  }

  /** Adds an address with its prefix length; IPv6 addresses skip duplicate address detection (IFA_F_NODAD). */
  addAddress(index: number, address: string, prefixLen: number): void {
    const what = `RTM_NEWADDR ${address}/${prefixLen} on ${this.dev(index)}`;
    const version: IpVersion = address.includes(":") ? 6 : 4;
    const bytes = this.addressBytes(address, version, what);
    checkPrefixLen(prefixLen, version, what);
    this.writer.begin(RTM.NEWADDR, NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL);
    const hdr = this.writer.reserve(IFADDRMSG.size);
    this.tx.bytes[hdr + IFADDRMSG.family] = familyOf(version);
    this.tx.bytes[hdr + IFADDRMSG.prefixLen] = prefixLen;
    // We are the only other node on the tap link: duplicate detection would only hold the address back.
    this.tx.bytes[hdr + IFADDRMSG.flags] = version === 6 ? IFA_F.NODAD : 0;
    this.tx.bytes[hdr + IFADDRMSG.scope] = RT.SCOPE_UNIVERSE;
    this.tx.view.setUint32(hdr + IFADDRMSG.index, index, true);
    this.writer.attr(IFA.LOCAL, bytes);
    this.writer.attr(IFA.ADDRESS, bytes);
    this.exchange(what);
  }

  /** Routes of one IP version (or both) in one table (RT_TABLE_MAIN by default; 0: every table). */
  routes(version?: IpVersion, table: number = RT.TABLE_MAIN): RouteInfo[] {
    return this.dump("RTM_GETROUTE dump", () => this.beginRouteDump(version, table), (type, b, off, len) => {
      const r = type === RTM.NEWROUTE ? decodeRoute(b, off, len) : undefined;
      return r && (!version || r.version === version) && (!table || r.table === table) ? r : undefined;
    });
  }

  /** Adds a unicast route in the main table (protocol "boot", as pasta's own routes). */
  addRoute(spec: RouteSpec): void {
    const dstLen = spec.dst === undefined ? 0 : spec.dstLen ?? 0;
    const route = { dst: spec.dst, dstLen, gateway: spec.gateway, multipath: [] };
    const what = `RTM_NEWROUTE ${describeRoute(route)} dev ${this.dev(spec.ifindex)}`;
    const text = spec.dst ?? spec.gateway;
    const version = spec.version ?? (text === undefined ? undefined : text.includes(":") ? 6 : 4);
    if (!version) throw new NetlinkError(Errno.EINVAL, "route of unknown IP version", what);
    checkPrefixLen(dstLen, version, what);
    const dst = dstLen > 0 && spec.dst !== undefined ? this.addressBytes(spec.dst, version, what) : undefined;
    const gateway = spec.gateway !== undefined ? this.addressBytes(spec.gateway, version, what) : undefined;
    this.writer.begin(RTM.NEWROUTE, NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL);
    const hdr = this.writer.reserve(RTMSG.size);
    const b = this.tx.bytes;
    b[hdr + RTMSG.family] = familyOf(version);
    b[hdr + RTMSG.dstLen] = dstLen;
    b[hdr + RTMSG.table] = RT.TABLE_MAIN;
    b[hdr + RTMSG.protocol] = RT.PROT_BOOT;
    // Without a gateway the destination is on the link itself.
    b[hdr + RTMSG.scope] = gateway ? RT.SCOPE_UNIVERSE : RT.SCOPE_LINK;
    b[hdr + RTMSG.type] = RT.UNICAST;
    if (dst) this.writer.attr(RTA.DST, dst);
    if (gateway) this.writer.attr(RTA.GATEWAY, gateway);
    this.writer.attrU32(RTA.OIF, spec.ifindex);
    if (spec.metric !== undefined) this.writer.attrU32(RTA.PRIORITY, spec.metric);
    this.exchange(what);
  }

  /** Adds a default route via a gateway through an interface. */
  addDefaultRoute(ifindex: number, gateway: string): void {
    this.addRoute({ ifindex, gateway });
  }

  /**
   * Recreates here, on interface toIndex, the main-table unicast routes that go only through interface fromIndex
   * of the client `from` (the host's template interface). Routes can depend on each other (a gateway reachable
   * only through another copied route) and the kernel takes them in order, so the set is submitted again, up to
   * once per route, while a pass makes progress; EEXIST counts as done, ENETUNREACH and EHOSTUNREACH wait for
   * the next pass, anything else is thrown.
   */
  copyRoutes(from: Netlink, fromIndex: number, toIndex: number, version?: IpVersion): RouteCopyResult {
    const routes: NlBuffer[] = [];
    for (const v of versionsOf(version)) {
      routes.push(...from.dump("RTM_GETROUTE dump", () => from.beginRouteDump(v, RT.TABLE_MAIN), (type, b, off, len) => {
        const r = type === RTM.NEWROUTE ? decodeRoute(b, off, len) : undefined;
        if (!r || r.version !== v || r.table !== RT.TABLE_MAIN || r.type !== RT.UNICAST) return undefined;
        return routeUsesOnly(b, off, len, fromIndex) ? nlBuffer(b.bytes.slice(off, off + len)) : undefined;
      }));
    }
    const dev = this.dev(toIndex);
    let pending = routes.map((b) => ({ b, what: `RTM_NEWROUTE ${describeRoute(decodeRoute(b, 0, b.bytes.length)!)} dev ${dev}` }));
    let copied = 0;
    let failed: NetlinkError[] = [];
    for (let pass = 0; pass < routes.length && pending.length > 0; pass++) {
      const retry: typeof pending = [];
      failed = [];
      for (const p of pending) {
        writeRouteCopy(this.writer, p.b, 0, p.b.bytes.length, toIndex);
        const error = this.attempt(p.what);
        if (error && RETRY_ERRNOS.has(error.errno)) {
          retry.push(p);
          failed.push(error);
        } else if (error && error.errno !== Errno.EEXIST) {
          throw error;
        } else {
          copied++;
        }
      }
      if (retry.length === pending.length) break;
      pending = retry;
    }
    return { copied, failed };
  }

  /**
   * Recreates here, on interface toIndex, the addresses of interface fromIndex of the client `from`, except
   * link-scope and deprecated ones, with IFA_F_NODAD and without labels or lifetimes. Returns them as
   * "address/prefix".
   */
  copyAddresses(from: Netlink, fromIndex: number, toIndex: number, version?: IpVersion): string[] {
    const addresses = from.dump("RTM_GETADDR dump", () => from.beginAddressDump(version, fromIndex), (type, b, off, len) => {
      const a = type === RTM.NEWADDR ? decodeAddress(b, off, len) : undefined;
      if (!a || (version && a.version !== version) || a.index !== fromIndex) return undefined;
      if (a.scope >= RT.SCOPE_LINK || a.flags & IFA_F.DEPRECATED) return undefined;
      return { text: `${a.address}/${a.prefixLen}`, b: nlBuffer(b.bytes.slice(off, off + len)) };
    });
    const dev = this.dev(toIndex);
    for (const a of addresses) {
      writeAddressCopy(this.writer, a.b, 0, a.b.bytes.length, toIndex);
      this.exchange(`RTM_NEWADDR ${a.text} on ${dev}`);
    }
    return addresses.map((a) => a.text);
  }

  /** Marks an interface's IPv6 link-local addresses IFA_F_NODAD, so they need not wait for duplicate detection. */
  setLinkLocalNoDad(index: number): void {
    const dev = this.dev(index);
    const lls = this.dump("RTM_GETADDR dump", () => this.beginAddressDump(6, index), (type, b, off, len) => {
      const a = type === RTM.NEWADDR ? decodeAddress(b, off, len) : undefined;
      if (!a || a.version !== 6 || a.index !== index || a.scope !== RT.SCOPE_LINK) return undefined;
      return { text: a.address, b: nlBuffer(b.bytes.slice(off, off + len)) };
    });
    for (const a of lls) {
      writeAddressCopy(this.writer, a.b, 0, a.b.bytes.length, index);
      this.exchange(`RTM_NEWADDR ${a.text} nodad on ${dev}`);
    }
  }

  /** An interface's IPv6 link-local address, waiting up to timeoutMs for the kernel to make one (after link-up). */
  linkLocal(index: number, timeoutMs = 1000): string {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const ll = this.addresses(6, index).find((a) => a.scope === RT.SCOPE_LINK);
      if (ll) return ll.address;
      if (performance.now() >= deadline) {
        throw new NetlinkError(Errno.ETIMEDOUT, `none within ${timeoutMs} ms`, `IPv6 link-local address of ${this.dev(index)}`);
      }
      Bun.sleepSync(LINK_LOCAL_POLL_MS);
    }
  }

  /**
   * The host's addressing per IP version (doc/tap-l2.md §8): the template interface (the given name, else the
   * interface of the first default route, else of the first route), its address, gateway and link-local address;
   * a version without a template interface is absent.
   */
  hostAddressing(opts: { ifname4?: string; ifname6?: string } = {}): HostAddressing {
    const links = this.links();
    const one = (version: IpVersion, ifname: string | undefined): HostInterface | undefined => {
      const routes = this.routes(version);
      const index = ifname !== undefined ? this.linkIndex(ifname) : templateIndex(version, routes, links);
      if (!index) return undefined;
      return hostInterface(version, index, { links, routes, addresses: this.addresses(version, index) });
    };
    return { v4: one(4, opts.ifname4), v6: one(6, opts.ifname6) };
  }

  private changeFlags(index: number, set: number, change: number, label: string): void {
    const what = `RTM_NEWLINK ${this.dev(index)} ${label}`;
    const hdr = this.beginLink(index);
    this.tx.view.setUint32(hdr + IFINFOMSG.flags, set, true);
    this.tx.view.setUint32(hdr + IFINFOMSG.change, change, true);
    this.exchange(what);
  }

  /** Starts an RTM_NEWLINK for an existing link; returns the ifinfomsg's offset. */
  private beginLink(index: number): number {
    this.writer.begin(RTM.NEWLINK, NLM_F.ACK);
    const hdr = this.writer.reserve(IFINFOMSG.size);
    this.tx.view.setInt32(hdr + IFINFOMSG.index, index, true);
    return hdr;
  }

  private beginAddressDump(version: IpVersion | undefined, index: number): void {
    this.writer.begin(RTM.GETADDR, NLM_F.DUMP);
    const hdr = this.writer.reserve(IFADDRMSG.size);
    this.tx.bytes[hdr + IFADDRMSG.family] = version ? familyOf(version) : AF_UNSPEC;
    // With strict checking the kernel filters by interface; without, the records are filtered here.
    this.tx.view.setUint32(hdr + IFADDRMSG.index, index, true);
  }

  private beginRouteDump(version: IpVersion | undefined, table: number): void {
    this.writer.begin(RTM.GETROUTE, NLM_F.DUMP);
    const hdr = this.writer.reserve(RTMSG.size);
    this.tx.bytes[hdr + RTMSG.family] = version ? familyOf(version) : AF_UNSPEC;
    // Tables above 255 do not fit the header: those dumps are filtered here only.
    this.tx.bytes[hdr + RTMSG.table] = table < 256 ? table : 0;
  }

  /** Runs the dump request build() writes; returns the records decode() keeps. */
  private dump<T>(what: string, build: () => void, decode: (type: number, b: NlBuffer, off: number, len: number) => T | undefined): T[] {
    for (let attempt = 1; ; attempt++) {
      const records: T[] = [];
      build();
      const interrupted = this.exchange(what, (type, b, off, len) => {
        const r = decode(type, b, off, len);
        if (r !== undefined) records.push(r);
      });
      if (!interrupted) return records;
      if (attempt === DUMP_ATTEMPTS) throw new NetlinkError(Errno.EAGAIN, `tables kept changing over ${attempt} attempts`, what);
    }
  }

  /** exchange() for a request whose failure the caller sorts out: the error, or undefined on success. */
  private attempt(what: string): NetlinkError | undefined {
    try {
      this.exchange(what);
      return undefined;
    } catch (e) {
      if (e instanceof NetlinkError) return e;
      throw e;
    }
  }

  /**
   * Sends the request in the writer and reads the replies to it until its ACK, error or NLMSG_DONE; onReply sees
   * each data message. A record onReply cannot decode is reported after the dump has been read to its end, so the
   * socket is left clean for the next request. Returns whether the kernel marked a dump inconsistent.
   */
  private exchange(what: string, onReply?: ReplyVisitor): boolean {
    const seq = this.seq;
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    this.send(this.writer.finish(seq), what);
    const deadline = performance.now() + this.timeoutMs;
    let finished = false;
    let interrupted = false;
    let deferred: NetlinkError | undefined;
    while (!finished) {
      let n: number;
      try {
        n = this.receive(deadline, what);
      } catch (e) {
        // A dump that went bad and then stopped: the bad record says more than the silence.
        throw deferred && e instanceof NetlinkError && e.errno === Errno.ETIMEDOUT ? deferred.withRequest(what) : e;
      }
      try {
        forEachMessage(this.rx, n, (type, flags, mseq, off, len) => {
          // Replies to an earlier request that timed out, or that failed before its dump ended.
          if (mseq !== seq) return;
          if (type === NLMSG.ERROR) {
            const ack = decodeAck(this.rx, off, len, flags);
            if (ack.errno) throw new NetlinkError(ack.errno, ack.text, what);
            finished = true;
            return false;
          }
          if (type === NLMSG.DONE) {
            const errno = decodeDone(this.rx, off, len);
            if (errno) throw new NetlinkError(errno, "", what);
            finished = true;
            return false;
          }
          if (type === NLMSG.OVERRUN) throw new NetlinkError(Errno.ENOBUFS, "kernel reports lost replies", what);
          if (type < NLMSG.MIN_TYPE) return;
          if (flags & NLM_F.DUMP_INTR) interrupted = true;
          if (!onReply || deferred) return;
          try {
            onReply(type, this.rx, off, len);
          } catch (e) {
            if (!(e instanceof NetlinkError)) throw e;
            deferred = e;
          }
        });
      } catch (e) {
        throw e instanceof NetlinkError ? e.withRequest(what) : e;
      }
    }
    if (deferred) throw deferred.withRequest(what);
    return interrupted;
  }

  private send(len: number, what: string): void {
    for (;;) {
      // MSG_DONTWAIT: the kernel takes requests at once; a peer that does not must not block us.
      const r = send(this.fd, this.tx.addr, len, MSG_DONTWAIT);
      if (r === -Errno.EINTR) continue;
      if (r < 0) throw new NetlinkError(-r, "send failed", what);
      if (r !== len) throw new NetlinkError(Errno.EMSGSIZE, `sent ${r} of ${len} bytes`, what);
      return;
    }
  }

  /** Waits (until the deadline) for one datagram; returns its length. */
  private receive(deadline: number, what: string): number {
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new NetlinkError(Errno.ETIMEDOUT, `no reply within ${this.timeoutMs} ms`, what);
      const p = pollOne(this.fd, POLLIN, Math.ceil(left));
      if (p === 0 || p === -Errno.EINTR) continue;
      if (p < 0) throw new NetlinkError(-p, "poll failed", what);
      const n = recv(this.fd, this.rx.addr, RX_SIZE, MSG_DONTWAIT | MSG_TRUNC);
      if (n === -Errno.EAGAIN || n === -Errno.EINTR) continue;
      if (n === -Errno.ENOBUFS) throw new NetlinkError(Errno.ENOBUFS, "replies lost: the socket's receive buffer overflowed", what);
      if (n < 0) throw new NetlinkError(-n, "recv failed", what);
      if (n > RX_SIZE) throw new NetlinkError(Errno.EMSGSIZE, `reply of ${n} bytes exceeds the ${RX_SIZE}-byte buffer`, what);
      return n;
    }
  }

  /** An interface's name for messages, looked up when not seen yet, "ifindex N" when there is no such interface. */
  private dev(index: number): string {
    const known = this.names.get(index);
    if (known !== undefined) return known;
    try {
      return this.link(index).name;
    } catch (e) {
      if (e instanceof NetlinkError) return `ifindex ${index}`;
      throw e;
    }
  }

  /** Parses address text; throws EINVAL naming the request when it is not an address of that version. */
  private addressBytes(text: string, version: IpVersion, what: string): Uint8Array {
    const bytes = new Uint8Array(addressLength(version));
    const ok = version === 4 ? parseIPv4Into(text, bytes, 0) : parseIPv6Into(text, bytes, 0);
    if (!ok) throw new NetlinkError(Errno.EINVAL, `'${text}' is not an IPv${version} address`, what);
    return bytes;
  }
}

function checkPrefixLen(len: number, version: IpVersion, what: string): void {
  if (!Number.isInteger(len) || len < 0 || len > addressLength(version) * 8) throw new NetlinkError(Errno.EINVAL, `prefix length ${len}`, what);
}

/** The IP versions an optional version argument means. */
function versionsOf(version: IpVersion | undefined): IpVersion[] {
  return version ? [version] : [4, 6];
}

/** Runs a syscall wrapper, reporting its failure as a NetlinkError. */
function syscall<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SyscallError) throw new NetlinkError(e.errno, "", name);
    throw e;
  }
}

/** Throws unless fd is a NETLINK_ROUTE socket. */
function checkRouteSocket(fd: number): void {
  const domain = syscall(`fd ${fd}`, () => getsockoptInt(fd, SOL_SOCKET, SO_DOMAIN));
  const protocol = syscall(`fd ${fd}`, () => getsockoptInt(fd, SOL_SOCKET, SO_PROTOCOL));
  if (domain !== AF_NETLINK || protocol !== NETLINK_ROUTE) {
    throw new NetlinkError(Errno.EINVAL, `not a NETLINK_ROUTE socket (family ${domain}, protocol ${protocol})`, `fd ${fd}`);
  }
}

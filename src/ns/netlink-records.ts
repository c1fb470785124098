/**
 * rtnetlink records: links, addresses and routes decoded from dump replies into plain objects, and the rewriting
 * of dumped addresses and routes into requests that recreate them on another interface (pasta's --config-net
 * copies the host's configuration of the template interface onto the namespace's tap this way).
 *
 * Decoders take a message payload (b[off, off + len)) and throw a NetlinkError on malformed content; records of
 * address families other than IPv4 and IPv6 decode to undefined.
 */
import {
  AttrTable, IFA, IFA_F, IFADDRMSG, IFINFOMSG, IFLA, malformed, MessageWriter, NLM_F, RTA, RTM, RTMSG,
  RTATTR, RTNEXTHOP, RTNH_STATE_FLAGS, addressLength, forEachAttr, nlAlign, versionOf, type IpVersion, type NlBuffer,
} from "./netlink-msg.ts";

/** One network interface. */
export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  /** ARPHRD_* hardware type (1: Ethernet, 772: loopback). */
  readonly type: number;
  /** IFF_* flags. */
  readonly flags: number;
  readonly mtu: number;
  /** Hardware address as colon-separated hex, when the link has one. */
  readonly mac?: string;
  /** Largest GSO packet the stack builds for the link (IFLA_GSO_MAX_SIZE; IPv6 only above 64 KiB). */
  readonly gsoMaxSize?: number;
  /** The same for IPv4 (IFLA_GSO_IPV4_MAX_SIZE, Linux 6.3 and later). */
  readonly gsoIpv4MaxSize?: number;
  /** Largest GSO packet the device takes (IFLA_TSO_MAX_SIZE, Linux 5.19 and later). */
  readonly tsoMaxSize?: number;
}

/** One IPv4 or IPv6 address of an interface. */
export interface AddressInfo {
  readonly version: IpVersion;
  readonly index: number;
  readonly prefixLen: number;
  /** RT_SCOPE_* (0: global, 253: link). */
  readonly scope: number;
  /** IFA_F_* flags, all 32 bits when the kernel sent IFA_FLAGS. */
  readonly flags: number;
  /** The interface's own address (IFA_LOCAL, else IFA_ADDRESS). */
  readonly address: string;
  readonly label?: string;
}

/** One nexthop of a multipath route. */
export interface NextHop {
  readonly ifindex: number;
  readonly gateway?: string;
  /** Relative weight, 1 to 256. */
  readonly weight: number;
  /** RTNH_F_* flags. */
  readonly flags: number;
}

/** One route. */
export interface RouteInfo {
  readonly version: IpVersion;
  readonly table: number;
  /** RTPROT_* (2: kernel, 3: boot, 4: static). */
  readonly protocol: number;
  readonly scope: number;
  /** RTN_* (1: unicast). */
  readonly type: number;
  readonly flags: number;
  /** Destination prefix; absent for a default route. */
  readonly dst?: string;
  readonly dstLen: number;
  readonly gateway?: string;
  /** Output interface index, 0 for multipath routes. */
  readonly oif: number;
  /** The route's metric. */
  readonly priority?: number;
  /** Preferred source address. */
  readonly prefsrc?: string;
  /** Nexthops of a multipath route; empty otherwise. */
  readonly multipath: readonly NextHop[];
}

const attrs = new AttrTable();
const hopAttrs = new AttrTable();

/** Decodes an RTM_NEWLINK payload. */
export function decodeLink(b: NlBuffer, off: number, len: number): LinkInfo {
  needHeader(len, IFINFOMSG.size, "link");
  const a = attrs.parse(b, off + IFINFOMSG.size, off + len);
  const name = a.str(IFLA.IFNAME);
  if (name === undefined) throw malformed("link without a name");
  const v = b.view;
  return {
    index: v.getInt32(off + IFINFOMSG.index, true),
    name,
    type: v.getUint16(off + IFINFOMSG.type, true),
    flags: v.getUint32(off + IFINFOMSG.flags, true),
    mtu: a.u32(IFLA.MTU) ?? 0,
    mac: a.mac(IFLA.ADDRESS),
    gsoMaxSize: a.u32(IFLA.GSO_MAX_SIZE),
    gsoIpv4MaxSize: a.u32(IFLA.GSO_IPV4_MAX_SIZE),
    tsoMaxSize: a.u32(IFLA.TSO_MAX_SIZE),
  };
}

/** Decodes an RTM_NEWADDR payload; undefined for families other than IPv4 and IPv6. */
export function decodeAddress(b: NlBuffer, off: number, len: number): AddressInfo | undefined {
  const ip = ipHeader(b, off, len, IFADDRMSG.size, "address");
  if (!ip) return undefined;
  const { version, prefixLen } = ip;
  const a = attrs.parse(b, off + IFADDRMSG.size, off + len);
  const address = a.addr(IFA.LOCAL, version) ?? a.addr(IFA.ADDRESS, version);
  if (address === undefined) throw malformed("address message without an address");
  return {
    version,
    index: b.view.getUint32(off + IFADDRMSG.index, true),
    prefixLen,
    scope: b.bytes[off + IFADDRMSG.scope],
    flags: a.u32(IFA.FLAGS) ?? b.bytes[off + IFADDRMSG.flags],
    address,
    label: a.str(IFA.LABEL),
  };
}

/** Decodes an RTM_NEWROUTE payload; undefined for families other than IPv4 and IPv6. */
export function decodeRoute(b: NlBuffer, off: number, len: number): RouteInfo | undefined {
  const ip = ipHeader(b, off, len, RTMSG.size, "route");
  if (!ip) return undefined;
  const { version, prefixLen: dstLen } = ip;
  const a = attrs.parse(b, off + RTMSG.size, off + len);
  const multipath: NextHop[] = [];
  if (a.has(RTA.MULTIPATH)) {
    const start = a.offset(RTA.MULTIPATH);
    forEachNexthop(b, start, start + a.length(RTA.MULTIPATH), (hop, hopLen) => {
      const h = hopAttrs.parse(b, hop + RTNEXTHOP.size, hop + hopLen);
      multipath.push({
        ifindex: b.view.getInt32(hop + RTNEXTHOP.ifindex, true),
        gateway: h.addr(RTA.GATEWAY, version),
        weight: b.bytes[hop + RTNEXTHOP.hops] + 1,
        flags: b.bytes[hop + RTNEXTHOP.flags],
      });
    });
  }
  return {
    version,
    table: a.u32(RTA.TABLE) ?? b.bytes[off + RTMSG.table],
    protocol: b.bytes[off + RTMSG.protocol],
    scope: b.bytes[off + RTMSG.scope],
    type: b.bytes[off + RTMSG.type],
    flags: b.view.getUint32(off + RTMSG.flags, true),
    dst: dstLen > 0 ? a.addr(RTA.DST, version) : undefined,
    dstLen,
    gateway: a.addr(RTA.GATEWAY, version),
    oif: a.u32(RTA.OIF) ?? 0,
    priority: a.u32(RTA.PRIORITY),
    prefsrc: a.addr(RTA.PREFSRC, version),
    multipath,
  };
}

/** Walks the rtnexthop entries of an RTA_MULTIPATH attribute's data b[off, end); throws on a bad length. */
export function forEachNexthop(b: NlBuffer, off: number, end: number, visit: (hopOff: number, hopLen: number) => void): void {
  for (let pos = off; end - pos >= RTNEXTHOP.size; ) {
    const len = b.view.getUint16(pos + RTNEXTHOP.len, true);
    if (len < RTNEXTHOP.size || len > end - pos) throw malformed(`nexthop length ${len} at offset ${pos} (${end - pos} bytes left)`);
    visit(pos, len);
    pos += nlAlign(len);
  }
}

/** Throws unless a payload holds its fixed header of size bytes. */
function needHeader(len: number, size: number, what: string): void {
  if (len < size) throw malformed(`${what} message of ${len} bytes`);
}

/**
 * The IP version and prefix length that open an ifaddrmsg or an rtmsg (both start with the family, then the
 * prefix length); undefined for families other than IPv4 and IPv6.
 */
function ipHeader(b: NlBuffer, off: number, len: number, size: number, what: string): { version: IpVersion; prefixLen: number } | undefined {
  needHeader(len, size, what);
  const version = versionOf(b.bytes[off + RTMSG.family]);
  if (!version) return undefined;
  const prefixLen = b.bytes[off + RTMSG.dstLen];
  if (prefixLen > addressLength(version) * 8) throw malformed(`IPv${version} prefix length ${prefixLen}`);
  return { version, prefixLen };
}

/**
 * Whether a dumped route (payload b[off, off + len)) goes only through interface fromIndex: its output interface,
 * or every nexthop of a multipath route. Routes that also use other interfaces cannot be recreated on one tap.
 */
export function routeUsesOnly(b: NlBuffer, off: number, len: number, fromIndex: number): boolean {
  needHeader(len, RTMSG.size, "route");
  let uses = false;
  let other = false;
  const note = (index: number) => (index === fromIndex ? (uses = true) : (other = true));
  forEachAttr(b, off + RTMSG.size, off + len, (type, data, dataLen) => {
    if (type === RTA.OIF) {
      if (dataLen !== 4) throw malformed(`RTA_OIF of ${dataLen} bytes`);
      note(b.view.getUint32(data, true));
    } else if (type === RTA.MULTIPATH) {
      forEachNexthop(b, data, data + dataLen, (hop) => note(b.view.getInt32(hop + RTNEXTHOP.ifindex, true)));
    }
  });
  return uses && !other;
}

/**
 * Writes an RTM_NEWROUTE that recreates a dumped route (see routeUsesOnly) through interface toIndex: the
 * interface indexes rewritten, everything else kept (metrics, table, protocol, scope), except what cannot hold in
 * another namespace or on a new route: the preferred source (one of the host's addresses, which the namespace
 * may not have), the nexthop object id (host-only), the cache statistics (output only) and nexthop state flags
 * (the kernel refuses them). NLM_F_EXCL: a route with the same key, e.g. the one the kernel made for a copied
 * address, is left as it is (EEXIST) instead of getting a near-duplicate next to it.
 */
export function writeRouteCopy(w: MessageWriter, b: NlBuffer, off: number, len: number, toIndex: number): void {
  needHeader(len, RTMSG.size, "route");
  w.begin(RTM.NEWROUTE, NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL);
  const hdr = w.reserve(RTMSG.size);
  w.copy(hdr, b.bytes, off, RTMSG.size);
  w.setU32(hdr + RTMSG.flags, b.view.getUint32(off + RTMSG.flags, true) & ~RTNH_STATE_FLAGS);
  forEachAttr(b, off + RTMSG.size, off + len, (type, data, dataLen) => {
    if (type === RTA.PREFSRC || type === RTA.NH_ID || type === RTA.CACHEINFO) return;
    if (type === RTA.OIF) {
      w.attrU32(RTA.OIF, toIndex);
      return;
    }
    const copy = w.attrRaw(b.bytes, data - RTATTR.size, dataLen + RTATTR.size) + RTATTR.size;
    if (type !== RTA.MULTIPATH) return;
    forEachNexthop(b, data, data + dataLen, (hop) => {
      const at = copy + (hop - data);
      w.setU8(at + RTNEXTHOP.flags, b.bytes[hop + RTNEXTHOP.flags] & ~RTNH_STATE_FLAGS);
      w.setU32(at + RTNEXTHOP.ifindex, toIndex);
    });
  });
}

/**
 * Writes an RTM_NEWADDR that recreates a dumped address on interface toIndex, with IFA_F_NODAD (the address is
 * the host's, so duplicate detection on the tap would only delay it), without its label (named after the host's
 * interface) or lifetimes (cache info). NLM_F_REPLACE: an address that is already there is updated, not an error.
 */
export function writeAddressCopy(w: MessageWriter, b: NlBuffer, off: number, len: number, toIndex: number): void {
  needHeader(len, IFADDRMSG.size, "address");
  w.begin(RTM.NEWADDR, NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE);
  const hdr = w.reserve(IFADDRMSG.size);
  w.copy(hdr, b.bytes, off, IFADDRMSG.size);
  w.setU8(hdr + IFADDRMSG.flags, b.bytes[off + IFADDRMSG.flags] | IFA_F.NODAD);
  w.setU32(hdr + IFADDRMSG.index, toIndex);
  forEachAttr(b, off + IFADDRMSG.size, off + len, (type, data, dataLen) => {
    if (type === IFA.LABEL || type === IFA.CACHEINFO) return;
    if (type === IFA.FLAGS) {
      if (dataLen !== 4) throw malformed(`IFA_FLAGS of ${dataLen} bytes`);
      w.attrU32(IFA.FLAGS, b.view.getUint32(data, true) | IFA_F.NODAD);
      return;
    }
    w.attrRaw(b.bytes, data - RTATTR.size, dataLen + RTATTR.size);
  });
}

/** A route as text for messages: "default via 192.0.2.1", "10.0.0.0/8 nexthops 192.0.2.1,192.0.2.2". */
export function describeRoute(r: Pick<RouteInfo, "dst" | "dstLen" | "gateway" | "multipath">): string {
  let text = r.dstLen === 0 ? "default" : `${r.dst ?? "?"}/${r.dstLen}`;
  if (r.gateway) text += ` via ${r.gateway}`;
  if (r.multipath.length > 0) text += ` nexthops ${r.multipath.map((h) => h.gateway ?? "direct").join(",")}`;
  return text;
}

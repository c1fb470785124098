/**
 * The DHCPv4 server (doc/tap-l2.md §11, RFC 2131): one fixed lease, the guest's assigned address, forever.
 *
 * There is no pool and no state. DISCOVER gets an OFFER (or, when the client asks for Rapid Commit, option 80, an
 * ACK straight away, RFC 4039); REQUEST gets an ACK whatever address it asks for (the assigned one simply
 * overrides it: no NAK is ever sent); a plain BOOTP request (no message type) gets an ACK too. DECLINE, RELEASE,
 * INFORM and the rest are ignored: with one address and an infinite lease there is nothing to do about them.
 *
 * The reply copies the request's fixed part (transaction id, flags, client hardware address, relay address)
 * and carries: message type (53), subnet mask (1), router (3), server identifier (54, our tap address), lease
 * time (51, infinite), and as configured the nameservers (6), MTU (26), host name (12), client FQDN (81, RFC 4702,
 * wire encoded), search list (119, RFC 3397, compressed) and, when the gateway lies outside the guest's subnet,
 * classless routes (121, RFC 3442) to reach it: a host route to the gateway and the default route through it
 * (clients that take option 121 ignore option 3, so both are needed). Order: some old clients want the message
 * type first, so it is, unless the client's parameter request list (55) places it; then the options in the order
 * the client listed them; then the rest in numeric order. The options area is at most 308 bytes, END included,
 * so the whole message fits the 576 bytes every client accepts (options that do not fit are left out), and at
 * least 60, padded, as RFC 951's vendor area was.
 *
 * The reply goes from our tap address, port 67, to port 68 of the assigned address and the client's MAC, or to the
 * broadcast addresses when the client set the broadcast flag (it cannot receive unicast before it is configured).
 */
import { log, logEnabled } from "../log.ts";
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { copyBytes, rd16, rd32, wr32 } from "../wire/bytes.ts";
import {
  BOOTREPLY, BOOTREQUEST, DHCP_CLIENT_PORT, DHCP_FLAG_BROADCAST, DHCP_FLAGS, DHCP_FQDN, DHCP_HOPS, DHCP_MSG, DHCP_OP,
  DHCP_OPT, DHCP_OPTIONS, DHCP_SECS, DHCP_SERVER_PORT, DHCP_SIADDR, DHCP_SNAME, DHCP_YIADDR, DhcpOptionWriter,
  dhcpClasslessRoutesEncode, dhcpFqdnEncode, dhcpParse, dhcpSearchListEncode,
} from "../wire/dhcp.ts";
import { ETH_HLEN, ETH_SRC, MAC_BROADCAST, formatMac } from "../wire/ethernet.ts";
import { INANY_V4_OFF } from "../wire/ip.ts";
import { UDP_HLEN, udpParse } from "../wire/udp.ts";
import { UDP4_DATA, commitUdp4 } from "./frame.ts";
import { encodableDomains } from "./names.ts";
import { type L2Stats, countMalformed } from "./stats.ts";

/** Largest options area, END included: 576 bytes less the IPv4 and UDP headers and the fixed part. */
const OPTIONS_MAX = 576 - 20 - UDP_HLEN - DHCP_OPTIONS;
/** Smallest options area, padded up to: RFC 951's 64-byte vendor area less the magic cookie. */
const OPTIONS_MIN = 60;
/** The largest reply frame. */
const FRAME_MAX = UDP4_DATA + DHCP_OPTIONS + OPTIONS_MAX;
/** End of the sname and file fields, zeroed in replies. */
const DHCP_FILE_END = DHCP_OPTIONS - 4;
/** Infinite lease time (option 51). */
const LEASE_INFINITE = Uint8Array.of(0xff, 0xff, 0xff, 0xff);
/** The IPv4 broadcast address. */
const IP4_BROADCAST = Uint8Array.of(255, 255, 255, 255);
/** The unspecified IPv4 address: the gateway of an on-link route (option 121). */
const IP4_ANY = new Uint8Array(4);
/** The most nameservers passed (option 6). */
const MAX_DNS = 3;

/** What the scan of a request's options found. */
interface RequestOptions {
  /** Message type (option 53), or -1 when absent or empty (plain BOOTP). */
  type: number;
  /** Absolute offset and length of the parameter request list (55); length 0 when absent. */
  prlOff: number;
  prlLen: number;
  /** The client asked for Rapid Commit (80). */
  rapidCommit: boolean;
}

/** Answers DHCP and BOOTP requests with the one lease orzo gives. */
export class DhcpService {
  /** Option values of the reply being built, by code; null: not sent. */
  private readonly values: (Uint8Array | null)[] = new Array<Uint8Array | null>(256).fill(null);
  /** Which codes the reply being built already holds. */
  private readonly placed = new Uint8Array(256);
  /** Reused for every request. */
  private readonly req: RequestOptions = { type: -1, prlOff: 0, prlLen: 0, rapidCommit: false };

  constructor(
    private readonly nc: NetConf,
    private readonly link: Link,
    private readonly stats: L2Stats,
  ) {}

  /**
   * Handles the UDP datagram (to port 67) in l4Len bytes at buf[l4Off], behind the IPv4 header at buf[l3Off] in
   * the frame at buf[frameOff].
   */
  request(buf: Uint8Array, frameOff: number, l3Off: number, l4Off: number, l4Len: number): void {
    this.stats["dhcp.requests"]++;
    if (this.nc.noDhcp || !this.nc.ip4.enabled) {
      this.stats["dhcp.disabled"]++;
      return;
    }
    const framed = frameOff >= 0 && frameOff + ETH_HLEN <= l3Off && l3Off < l4Off;
    const ulen = framed ? udpParse(buf, l4Off, l4Len) : -1;
    const msg = l4Off + UDP_HLEN;
    const end = l4Off + ulen;
    // The UDP length must account for exactly the bytes IPv4 delivered: anything else is a broken packet.
    const optOff = ulen >= 0 && ulen === l4Len ? dhcpParse(buf, msg, ulen - UDP_HLEN) : -1;
    if (optOff < 0 || buf[msg + DHCP_OP] !== BOOTREQUEST || !this.scan(buf, optOff, end)) {
      countMalformed(this.stats, "dhcp");
      return;
    }
    const req = this.req;
    let replyType: number;
    if (req.type === DHCP_MSG.DISCOVER) replyType = req.rapidCommit ? DHCP_MSG.ACK : DHCP_MSG.OFFER;
    else if (req.type === DHCP_MSG.REQUEST || req.type < 0) replyType = DHCP_MSG.ACK;
    else {
      this.stats["dhcp.ignored"]++;
      return;
    }
    this.reply(buf, frameOff, msg, replyType);
    this.stats["dhcp.replies"]++;
  }

  /**
   * Walks the options in [p, end) up to END (or the end of the message, as some BOOTP clients stop there) and
   * fills req; false when an option's length runs past the message.
   */
  private scan(buf: Uint8Array, p: number, end: number): boolean {
    const req = this.req;
    req.type = -1;
    req.prlLen = 0;
    req.rapidCommit = false;
    while (p < end) {
      const code = buf[p];
      if (code === DHCP_OPT.END) return true;
      if (code === DHCP_OPT.PAD) {
        p++;
        continue;
      }
      if (p + 2 > end || p + 2 + buf[p + 1] > end) return false;
      const len = buf[p + 1];
      if (code === DHCP_OPT.MSG_TYPE && len > 0) req.type = buf[p + 2];
      else if (code === DHCP_OPT.PARAM_LIST && req.prlLen === 0) {
        req.prlOff = p + 2;
        req.prlLen = len;
      } else if (code === DHCP_OPT.RAPID_COMMIT) req.rapidCommit = true;
      p += 2 + len;
    }
    return true;
  }

  /** Builds and queues the reply of the given type to the request message at buf[msg]. */
  private reply(buf: Uint8Array, frameOff: number, msg: number, type: number): void {
    const nc = this.nc;
    const b = this.link.out.bytes;
    const at = this.link.reserve(FRAME_MAX);
    const r = at + UDP4_DATA;
    // The fixed part is the request's (xid, flags, ciaddr, giaddr, chaddr, magic), with the server's fields set.
    copyBytes(b, r, buf, msg, DHCP_OPTIONS);
    b[r + DHCP_OP] = BOOTREPLY;
    b[r + DHCP_HOPS] = 0;
    b.fill(0, r + DHCP_SECS, r + DHCP_SECS + 2);
    copyBytes(b, r + DHCP_YIADDR, nc.ip4.addr, INANY_V4_OFF, 4);
    b.fill(0, r + DHCP_SIADDR, r + DHCP_SIADDR + 4);
    b.fill(0, r + DHCP_SNAME, r + DHCP_FILE_END);

    this.fillValues(type);
    const optLen = this.writeOptions(b, r + DHCP_OPTIONS, buf);
    const clientMac = frameOff + ETH_SRC;
    const len = DHCP_OPTIONS + optLen;
    if ((rd16(buf, msg + DHCP_FLAGS) & DHCP_FLAG_BROADCAST) !== 0) {
      commitUdp4(this.link, nc, at, MAC_BROADCAST, 0, IP4_BROADCAST, 0, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, len);
    } else {
      commitUdp4(this.link, nc, at, buf, clientMac, nc.ip4.addr, INANY_V4_OFF, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, len);
    }
    if (logEnabled("debug")) {
      log.debug(`DHCP: ${type === DHCP_MSG.OFFER ? "offer" : "ack"} to ${formatMac(buf, clientMac)}`);
    }
  }

  /** Sets the value of every option the reply of the given type carries. */
  private fillValues(type: number): void {
    const nc = this.nc;
    const ip4 = nc.ip4;
    const v = this.values;
    v.fill(null);
    const mask = ip4.prefixLen <= 0 ? 0 : (0xffffffff << (32 - Math.min(ip4.prefixLen, 32))) >>> 0;
    const maskBytes = new Uint8Array(4);
    wr32(maskBytes, 0, mask);
    v[DHCP_OPT.MSG_TYPE] = Uint8Array.of(type);
    v[DHCP_OPT.SUBNET_MASK] = maskBytes;
    v[DHCP_OPT.ROUTER] = ip4.gateway.subarray(INANY_V4_OFF);
    v[DHCP_OPT.SERVER_ID] = ip4.ourTapAddr.subarray(INANY_V4_OFF);
    v[DHCP_OPT.LEASE_TIME] = LEASE_INFINITE;
    if (this.req.rapidCommit && type === DHCP_MSG.ACK && this.req.type === DHCP_MSG.DISCOVER) {
      v[DHCP_OPT.RAPID_COMMIT] = new Uint8Array(0);
    }
    if (nc.dhcpDns && ip4.dns.length > 0) {
      const n = Math.min(ip4.dns.length, MAX_DNS);
      const dns = new Uint8Array(4 * n);
      for (let i = 0; i < n; i++) copyBytes(dns, 4 * i, ip4.dns[i], INANY_V4_OFF, 4);
      v[DHCP_OPT.DNS] = dns;
    }
    if (nc.mtu !== 0) v[DHCP_OPT.MTU] = Uint8Array.of(nc.mtu >>> 8, nc.mtu & 0xff);
    if (nc.hostname) v[DHCP_OPT.HOSTNAME] = new TextEncoder().encode(nc.hostname);
    if (nc.fqdn) v[DHCP_OPT.CLIENT_FQDN] = dhcpFqdnEncode(DHCP_FQDN.E, nc.fqdn);
    if (nc.dhcpSearch) {
      const names = encodableDomains(nc.searchDomains);
      if (names.length > 0) v[DHCP_OPT.SEARCH] = dhcpSearchListEncode(names);
    }
    const gw = rd32(ip4.gateway, INANY_V4_OFF);
    if (((rd32(ip4.addr, INANY_V4_OFF) ^ gw) & mask) !== 0) {
      const gateway = ip4.gateway.subarray(INANY_V4_OFF);
      v[DHCP_OPT.CLASSLESS_ROUTES] = dhcpClasslessRoutesEncode([
        { dst: gateway, prefixLen: 32, gateway: IP4_ANY },
        { dst: IP4_ANY, prefixLen: 0, gateway },
      ]);
    }
  }

  /** Writes the options in reply order at b[off] (the request, for its list, in buf); returns the area's length. */
  private writeOptions(b: Uint8Array, off: number, buf: Uint8Array): number {
    const { prlOff, prlLen } = this.req;
    const w = new DhcpOptionWriter(b, off, OPTIONS_MAX);
    this.placed.fill(0);
    let typeListed = false;
    for (let i = 0; i < prlLen; i++) if (buf[prlOff + i] === DHCP_OPT.MSG_TYPE) typeListed = true;
    if (!typeListed) this.place(w, DHCP_OPT.MSG_TYPE);
    for (let i = 0; i < prlLen; i++) this.place(w, buf[prlOff + i]);
    for (let code = 1; code < DHCP_OPT.END; code++) this.place(w, code);
    return w.finish(OPTIONS_MIN);
  }

  /** Adds the option with this code to the reply, unless it has no value or is already there. */
  private place(w: DhcpOptionWriter, code: number): void {
    const value = this.values[code];
    if (value === null || this.placed[code] !== 0) return;
    this.placed[code] = 1;
    if (!w.add(code, value)) log.debug(`DHCP: option ${code} does not fit, left out`);
  }
}

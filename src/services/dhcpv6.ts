/**
 * The DHCPv6 server (doc/tap-l2.md §12, RFC 8415): one fixed address, the guest's assigned one, forever.
 *
 * Like the DHCPv4 server it keeps no state. SOLICIT gets an ADVERTISE; REQUEST, RENEW, REBIND and CONFIRM get a
 * REPLY granting the assigned address; INFORMATION-REQUEST gets a REPLY with configuration only. Whom a message
 * is for follows RFC 8415 §16: SOLICIT and CONFIRM must not name a server; REQUEST and RENEW must name us; REBIND
 * and INFORMATION-REQUEST may name only us (a compliant REBIND names nobody). Anything else (RELEASE, DECLINE,
 * messages for other servers, relay messages) is ignored. Every message must carry a Client ID to echo.
 *
 * A reply carries our Server ID (a DUID-LLT from our MAC and the start-up time), an IA_NA with the client's IAID
 * holding the assigned address (T1, T2 and both lifetimes infinite: the lease never needs renewing), the Client
 * ID, and as configured the nameservers (23), the search list (24) and the client FQDN (39, RFC 4704: O set when
 * the client asked us to do the update with S, which we override by doing nothing). An ADVERTISE also carries
 * preference 255, so clients take it at once instead of waiting for other servers (RFC 8415 §18.2.1).
 *
 * A client that names an address other than ours in an IA (say, one it was given on another network) is told
 * NotOnLink (status 4) in that IA, and for CONFIRM also at the top level (RFC 8415 §18.3.3), so it starts over
 * with SOLICIT instead of keeping an address that does not work here.
 *
 * Requests come from the client's link-local address to the All_DHCP_Relay_Agents_and_Servers group; anything
 * not sent to a multicast address is not for an on-link server and is ignored. Replies go from our link-local
 * address, port 547, to the client's address and MAC, port 546, with the transaction id as flow label.
 */
import { log, logEnabled } from "../log.ts";
import type { NetConf } from "../netconf.ts";
import type { Link } from "../tap/link.ts";
import { bytesEqual } from "../wire/bytes.ts";
import {
  DHCP6_CLIENT_PORT, DHCP6_FQDN, DHCP6_HLEN, DHCP6_MSG, DHCP6_OPT, DHCP6_SERVER_PORT, DHCP6_STATUS, type Dhcp6Option,
  dhcp6ClientFqdn, dhcp6DnsServers, dhcp6DomainList, dhcp6DuidLlt, dhcp6DuidTime, dhcp6Emit, dhcp6Find, dhcp6IaAddr,
  dhcp6IaDecode, dhcp6IaNa, dhcp6Option, dhcp6Options, dhcp6Parse, dhcp6StatusCode, dhcp6Xid,
} from "../wire/dhcpv6.ts";
import { ETH_HLEN, ETH_SRC, formatMac } from "../wire/ethernet.ts";
import { IP6_DST, IP6_HLEN, IP6_SRC } from "../wire/ipv6.ts";
import { UDP_HLEN, udpParse } from "../wire/udp.ts";
import { UDP6_DATA, commitUdp6 } from "./frame.ts";
import { encodableDomains } from "./names.ts";
import { type L2Stats, countMalformed } from "./stats.ts";

/** Lifetimes and renewal times meaning "forever". */
const INFINITE = 0xffffffff;
/** The most nameservers passed (option 23). */
const MAX_DNS = 3;
/** Preference option of an ADVERTISE: the highest, so the client need not wait for other servers. */
const PREFERENCE_MAX = dhcp6Option(DHCP6_OPT.PREFERENCE, Uint8Array.of(255));
/** Fixed part of IA_NA (IAID, T1, T2) and of IA_TA (IAID). */
const IA_NA_FIXED = 12;
const IA_TA_FIXED = 4;
/** The Status Code put in an IA holding an address that is not ours. */
const NOT_ON_LINK = dhcp6StatusCode(DHCP6_STATUS.NOT_ON_LINK, "Prefix not appropriate for link.");

/** True for the unspecified address at buf[off]. */
function isUnspecified(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/** The whole option (header and data) found by dhcp6Options, copied. */
function wholeOption(buf: Uint8Array, o: Dhcp6Option): Uint8Array {
  return buf.slice(o.off - 4, o.off + o.len);
}

/** Answers DHCPv6 clients with the one address orzo gives. */
export class Dhcpv6Service {
  /** Our DUID (DUID-LLT): what clients must name in REQUEST and RENEW. */
  readonly duid: Uint8Array;
  /** Our Server ID option. */
  private readonly serverId: Uint8Array;

  /** startMs: the start-up time (Unix milliseconds) the DUID carries. */
  constructor(
    private readonly nc: NetConf,
    private readonly link: Link,
    private readonly stats: L2Stats,
    startMs: number = Date.now(),
  ) {
    this.duid = dhcp6DuidLlt(dhcp6DuidTime(startMs), nc.ourMac, 0);
    this.serverId = dhcp6Option(DHCP6_OPT.SERVERID, this.duid);
  }

  /**
   * Handles the UDP datagram (to port 547) in l4Len bytes at buf[l4Off], behind the IPv6 header at buf[l3Off] in
   * the frame at buf[frameOff].
   */
  request(buf: Uint8Array, frameOff: number, l3Off: number, l4Off: number, l4Len: number): void {
    this.stats["dhcpv6.requests"]++;
    if (this.nc.noDhcpv6 || !this.nc.ip6.enabled) {
      this.stats["dhcpv6.disabled"]++;
      return;
    }
    const framed = frameOff >= 0 && frameOff + ETH_HLEN <= l3Off && l3Off + IP6_HLEN <= l4Off;
    const ulen = framed ? udpParse(buf, l4Off, l4Len) : -1;
    const src = l3Off + IP6_SRC;
    const msg = l4Off + UDP_HLEN;
    const msgLen = ulen - UDP_HLEN;
    if (ulen < 0 || ulen !== l4Len || msgLen < DHCP6_HLEN || isUnspecified(buf, src) || buf[src] === 0xff) {
      countMalformed(this.stats, "dhcpv6");
      return;
    }
    const type = buf[msg];
    if (buf[l3Off + IP6_DST] !== 0xff || type < DHCP6_MSG.SOLICIT || type > DHCP6_MSG.INFORMATION_REQUEST) {
      this.stats["dhcpv6.ignored"]++;
      return;
    }
    const options = dhcp6Parse(buf, msg, msgLen) === type ? dhcp6Options(buf, msg + DHCP6_HLEN, msg + msgLen) : null;
    const clientId = options === null ? undefined : dhcp6Find(options, DHCP6_OPT.CLIENTID);
    if (options === null || clientId === undefined) {
      countMalformed(this.stats, "dhcpv6");
      return;
    }
    const replyType = this.replyType(buf, type, options);
    if (replyType < 0) {
      this.stats["dhcpv6.ignored"]++;
      return;
    }
    const xid = dhcp6Xid(buf, msg);
    const grantsOnly = type === DHCP6_MSG.SOLICIT || type === DHCP6_MSG.INFORMATION_REQUEST;
    const foreign = grantsOnly ? undefined : this.foreignIa(buf, options);
    const reply = foreign === undefined
      ? this.grant(buf, type, options, clientId)
      : this.refuse(buf, type, foreign, clientId);
    const len = reply.reduce((n, o) => n + o.length, DHCP6_HLEN);
    const at = this.link.reserve(UDP6_DATA + len);
    dhcp6Emit(this.link.out.bytes, at + UDP6_DATA, replyType, xid, reply);
    const clientMac = frameOff + ETH_SRC;
    commitUdp6(this.link, this.nc, at, buf, clientMac, buf, src, DHCP6_SERVER_PORT, DHCP6_CLIENT_PORT, len, xid);
    this.stats["dhcpv6.replies"]++;
    if (foreign !== undefined) this.stats["dhcpv6.notOnLink"]++;
    else if (replyType === DHCP6_MSG.REPLY && dhcp6Find(options, DHCP6_OPT.IA_NA) !== undefined) {
      // The client now holds the assigned address: inbound traffic for the guest goes there.
      this.nc.ip6.addrSeen.set(this.nc.ip6.addr);
    }
    if (logEnabled("debug")) {
      log.debug(`DHCPv6: message type ${type} from ${formatMac(buf, clientMac)}, reply type ${replyType}`);
    }
  }

  /** The type of the answer to a message of this type, or -1 when it gets none (RFC 8415 §16). */
  private replyType(buf: Uint8Array, type: number, options: Dhcp6Option[]): number {
    const server = dhcp6Find(options, DHCP6_OPT.SERVERID);
    const duid = this.duid;
    const ours = server !== undefined && server.len === duid.length && bytesEqual(buf, server.off, duid, 0, duid.length);
    switch (type) {
      case DHCP6_MSG.SOLICIT:
        return server === undefined ? DHCP6_MSG.ADVERTISE : -1;
      case DHCP6_MSG.REQUEST:
      case DHCP6_MSG.RENEW:
        return ours ? DHCP6_MSG.REPLY : -1;
      case DHCP6_MSG.CONFIRM:
        return server === undefined ? DHCP6_MSG.REPLY : -1;
      case DHCP6_MSG.REBIND:
        return server === undefined || ours ? DHCP6_MSG.REPLY : -1;
      case DHCP6_MSG.INFORMATION_REQUEST: {
        const asksAddresses = options.some((o) => o.code === DHCP6_OPT.IA_NA || o.code === DHCP6_OPT.IA_TA);
        return (server === undefined || ours) && !asksAddresses ? DHCP6_MSG.REPLY : -1;
      }
      default:
        return -1;
    }
  }

  /** The first IA_NA or IA_TA option naming an address other than the assigned one, if any. */
  private foreignIa(buf: Uint8Array, options: Dhcp6Option[]): Dhcp6Option | undefined {
    for (const o of options) {
      if (o.code !== DHCP6_OPT.IA_NA && o.code !== DHCP6_OPT.IA_TA) continue;
      const ia = dhcp6IaDecode(buf, o);
      if (ia !== null && ia.addresses.some((a) => !bytesEqual(a.addr, 0, this.nc.ip6.addr, 0, 16))) return o;
    }
    return undefined;
  }

  /** The options of an answer granting the assigned address (or, to INFORMATION-REQUEST, only configuration). */
  private grant(buf: Uint8Array, type: number, options: Dhcp6Option[], clientId: Dhcp6Option): Uint8Array[] {
    const nc = this.nc;
    const reply = [this.serverId];
    const iaNa = dhcp6Find(options, DHCP6_OPT.IA_NA);
    if (iaNa !== undefined) {
      const address = dhcp6IaAddr(nc.ip6.addr, 0, INFINITE, INFINITE);
      reply.push(dhcp6IaNa(dhcp6IaDecode(buf, iaNa)?.iaid ?? 0, INFINITE, INFINITE, [address]));
    }
    reply.push(wholeOption(buf, clientId));
    if (type === DHCP6_MSG.SOLICIT) reply.push(PREFERENCE_MAX);
    if (nc.dhcpDns && nc.ip6.dns.length > 0) reply.push(dhcp6DnsServers(nc.ip6.dns.slice(0, MAX_DNS)));
    if (nc.dhcpSearch) {
      const names = encodableDomains(nc.searchDomains);
      const list = names.length > 0 ? dhcp6DomainList(names) : null;
      if (list !== null) reply.push(list);
    }
    if (nc.fqdn) {
      const asked = dhcp6Find(options, DHCP6_OPT.CLIENT_FQDN);
      const override = asked !== undefined && asked.len > 0 && (buf[asked.off] & DHCP6_FQDN.S) !== 0;
      const fqdn = dhcp6ClientFqdn(override ? DHCP6_FQDN.O : 0, nc.fqdn);
      if (fqdn !== null) reply.push(fqdn);
    }
    return reply;
  }

  /** The options of a REPLY refusing the address named in the IA option ia: that IA says NotOnLink. */
  private refuse(buf: Uint8Array, type: number, ia: Dhcp6Option, clientId: Dhcp6Option): Uint8Array[] {
    const fixed = ia.code === DHCP6_OPT.IA_NA ? IA_NA_FIXED : IA_TA_FIXED;
    const data = new Uint8Array(fixed + NOT_ON_LINK.length);
    data.set(buf.subarray(ia.off, ia.off + fixed), 0);
    data.set(NOT_ON_LINK, fixed);
    const reply = [this.serverId, dhcp6Option(ia.code, data)];
    if (type === DHCP6_MSG.CONFIRM) reply.push(NOT_ON_LINK);
    reply.push(wholeOption(buf, clientId));
    return reply;
  }
}

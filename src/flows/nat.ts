/**
 * Address translation between the guest's view and the host's, shared by every flow type.
 *
 * Outbound (guest to host): the --map-host-loopback address (the gateway by default) means the host's loopback,
 * the --map-guest-addr address means the host's own address, the --dns-forward address means the host's
 * resolver; everything else is used as it is. Inbound (host to guest): the reverse, so that a connection from the
 * host's loopback appears to the guest to come from the gateway, and one from the host's own address from the
 * --map-guest-addr address. Addresses are 16-byte inany throughout.
 */
import type { NetConf } from "../netconf.ts";
import { INANY_LEN, inanyEqual, inanyIsV4 } from "../wire/inany.ts";

/** ::ffff:127.0.0.1 */
export const LOOPBACK4 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
/** ::1 */
export const LOOPBACK6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** True when the 16 bytes at a[off] are all zero (an unset address). */
export function inanyIsUnset(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < INANY_LEN; i++) if (a[off + i] !== 0) return false;
  return true;
}

/** True for 127.0.0.0/8 (as inany) and ::1. */
export function inanyIsLoopback(a: Uint8Array, off: number): boolean {
  if (inanyIsV4(a, off)) return a[off + 12] === 127;
  for (let i = 0; i < 15; i++) if (a[off + i] !== 0) return false;
  return a[off + 15] === 1;
}

/** True for addresses a connection may be made to or from: not unset, multicast, broadcast or loopback. */
export function inanyIsUnicast(a: Uint8Array, off: number): boolean {
  if (inanyIsV4(a, off)) {
    const b0 = a[off + 12];
    if (b0 === 0 || b0 >= 224) return false;
    return true;
  }
  if (a[off] === 0xff) return false;
  return !inanyIsUnset(a, off);
}

/**
 * Where a guest's packet to the address at dst[dstOff] goes on the host; writes it to out[outOff].
 * dnsPort: true when the packet is to port 53 (only then does the --dns-forward address apply).
 */
export function natOutbound(nc: NetConf, dst: Uint8Array, dstOff: number, dnsPort: boolean, out: Uint8Array, outOff: number): void {
  const v4 = inanyIsV4(dst, dstOff);
  const fam = v4 ? nc.ip4 : nc.ip6;
  if (dnsPort && !inanyIsUnset(fam.dnsMatch) && inanyEqual(dst, dstOff, fam.dnsMatch, 0) && !inanyIsUnset(fam.dnsHost)) {
    out.set(fam.dnsHost, outOff);
  } else if (!inanyIsUnset(fam.mapHostLoopback) && inanyEqual(dst, dstOff, fam.mapHostLoopback, 0)) {
    out.set(v4 ? LOOPBACK4 : LOOPBACK6, outOff);
  } else if (!inanyIsUnset(fam.mapGuestAddr) && inanyEqual(dst, dstOff, fam.mapGuestAddr, 0)) {
    out.set(fam.addr, outOff);
  } else {
    out.set(dst.subarray(dstOff, dstOff + INANY_LEN), outOff);
  }
}

/**
 * The address a host peer at peer[peerOff] appears to come from, seen from the guest (doc/udp-icmp.md §7);
 * written to out[outOff]. 127.0.0.1 and ::1 become the --map-host-loopback address, the host's own address (the
 * guest's) the --map-guest-addr one; an address the guest could not tell from its own or from nowhere (other
 * loopback, unspecified, the guest's own without --map-guest-addr) becomes our tap address. Returns false when
 * there is none to use.
 */
export function natInboundSource(nc: NetConf, peer: Uint8Array, peerOff: number, out: Uint8Array, outOff: number): boolean {
  const v4 = inanyIsV4(peer, peerOff);
  const fam = v4 ? nc.ip4 : nc.ip6;
  const exactLoopback = v4 ? peer[peerOff + 12] === 127 && peer[peerOff + 13] === 0 && peer[peerOff + 14] === 0 && peer[peerOff + 15] === 1 : inanyIsLoopback(peer, peerOff);
  const guests = inanyEqual(peer, peerOff, fam.addr, 0) || inanyEqual(peer, peerOff, fam.addrSeen, 0);
  let src: Uint8Array | undefined;
  if (exactLoopback && !inanyIsUnset(fam.mapHostLoopback)) src = fam.mapHostLoopback;
  else if (guests && !inanyIsUnset(fam.mapGuestAddr)) src = fam.mapGuestAddr;
  else if (!guests && !inanyIsLoopback(peer, peerOff) && !inanyIsUnset(peer, peerOff) && !(v4 && peer[peerOff + 12] === 0)) {
    out.set(peer.subarray(peerOff, peerOff + INANY_LEN), outOff);
    return true;
  } else src = v4 ? nc.ip4.ourTapAddr : nc.ip6.ourTapLinkLocal;
  if (inanyIsUnset(src) || (v4 && src[12] === 0)) return false;
  out.set(src, outOff);
  return true;
}

/**
 * The guest's address for a connection of the given family, written to out[outOff]: the address its traffic
 * showed, else the configured one; for a link-local source (IPv6), its link-local address. False when there is
 * none yet.
 */
export function guestAddress(nc: NetConf, v4: boolean, out: Uint8Array, outOff: number, linkLocal = false): boolean {
  const fam = v4 ? nc.ip4 : nc.ip6;
  if (linkLocal && !v4 && !inanyIsUnset(nc.ip6.addrLinkLocalSeen)) {
    out.set(nc.ip6.addrLinkLocalSeen, outOff);
    return true;
  }
  const a = !inanyIsUnset(fam.addrSeen) ? fam.addrSeen : fam.addr;
  if (inanyIsUnset(a) || (v4 && a[12] === 0)) {
    if (v4 || inanyIsUnset(nc.ip6.addrLinkLocalSeen)) return false;
    out.set(nc.ip6.addrLinkLocalSeen, outOff);
    return true;
  }
  out.set(a, outOff);
  return true;
}

/**
 * Ethernet II framing: destination MAC, source MAC, EtherType; 14 bytes, no VLAN tags, no FCS.
 *
 * Both links orzo serves (the tap device and qemu's stream socket) carry bare Ethernet II frames. Frames shorter
 * than 60 bytes are padded on the way out (ETH_ZLEN); on the way in, IPv4 trims padding by its total length.
 */
import { bytesEqual, copyBytes, rd16, wr16 } from "./bytes.ts";

/** Ethernet header length. */
export const ETH_HLEN = 14;
/** MAC address length. */
export const ETH_ALEN = 6;
/** Minimum frame length without FCS: shorter frames are zero-padded to it. */
export const ETH_ZLEN = 60;
/** Offset of the destination MAC. */
export const ETH_DST = 0;
/** Offset of the source MAC. */
export const ETH_SRC = 6;
/** Offset of the EtherType. */
export const ETH_TYPE = 12;

/** EtherType of IPv4. */
export const ETHERTYPE_IPV4 = 0x0800;
/** EtherType of ARP. */
export const ETHERTYPE_ARP = 0x0806;
/** EtherType of IPv6. */
export const ETHERTYPE_IPV6 = 0x86dd;

/** The broadcast MAC address ff:ff:ff:ff:ff:ff. */
export const MAC_BROADCAST: Readonly<Uint8Array> = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Checks that len bytes at buf[off] hold an Ethernet header; returns the EtherType, or -1 when too short. */
export function ethParse(buf: Uint8Array, off: number, len: number): number {
  if (len < ETH_HLEN || off < 0 || off + len > buf.length) return -1;
  return rd16(buf, off + ETH_TYPE);
}

/** Writes an Ethernet header at buf[off] from the MACs at dst[dstOff] and src[srcOff]; returns 14, or 0 if no room. */
export function ethEmit(
  buf: Uint8Array, off: number, dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, type: number,
): number {
  if (off < 0 || off + ETH_HLEN > buf.length) return 0;
  copyBytes(buf, off + ETH_DST, dst, dstOff, ETH_ALEN);
  copyBytes(buf, off + ETH_SRC, src, srcOff, ETH_ALEN);
  wr16(buf, off + ETH_TYPE, type);
  return ETH_HLEN;
}

/** Zero-pads a frame of len bytes at buf[off] to ETH_ZLEN if it fits; returns the length to send. */
export function ethPad(buf: Uint8Array, off: number, len: number): number {
  if (len >= ETH_ZLEN || off + ETH_ZLEN > buf.length) return len;
  buf.fill(0, off + len, off + ETH_ZLEN);
  return ETH_ZLEN;
}

/** True for group (multicast or broadcast) MACs: the I/G bit of the first byte. */
export function macIsMulticast(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 1) === 1;
}

/** True when the 6 bytes at a[aOff] and b[bOff] are the same MAC. */
export function macEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return bytesEqual(a, aOff, b, bOff, ETH_ALEN);
}

/** Parses "9a:55:9a:55:9a:55" (one or two hex digits per byte) into 6 bytes, or null when it is not a MAC. */
export function parseMac(text: string): Uint8Array | null {
  const parts = text.split(":");
  if (parts.length !== ETH_ALEN) return null;
  const out = new Uint8Array(ETH_ALEN);
  for (let i = 0; i < ETH_ALEN; i++) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(parts[i])) return null;
    out[i] = parseInt(parts[i], 16);
  }
  return out;
}

/** Formats the MAC at buf[off] as lowercase colon-separated hex. */
export function formatMac(buf: Uint8Array, off: number): string {
  const hex: string[] = [];
  for (let i = 0; i < ETH_ALEN; i++) hex.push(buf[off + i].toString(16).padStart(2, "0"));
  return hex.join(":");
}

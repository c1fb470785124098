/**
 * ARP for IPv4 over Ethernet (RFC 826): 28 bytes after the Ethernet header.
 *
 * Only the Ethernet/IPv4 flavour exists on orzo's links, so the parser insists on hardware type 1, protocol type
 * 0x0800, address lengths 6 and 4, and opcode request or reply; everything else is not ARP orzo can answer.
 */
import { copyBytes, rd16, wr16 } from "./bytes.ts";
import { ETH_ALEN, ETHERTYPE_IPV4 } from "./ethernet.ts";

/** Offset of the hardware type. */
export const ARP_HTYPE = 0;
/** Offset of the protocol type. */
export const ARP_PTYPE = 2;
/** Offset of the hardware address length. */
export const ARP_HLEN = 4;
/** Offset of the protocol address length. */
export const ARP_PLEN = 5;
/** Offset of the opcode. */
export const ARP_OP = 6;
/** Offset of the sender hardware address. */
export const ARP_SHA = 8;
/** Offset of the sender protocol address. */
export const ARP_SPA = 14;
/** Offset of the target hardware address. */
export const ARP_THA = 18;
/** Offset of the target protocol address. */
export const ARP_TPA = 24;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_LEN = 28;

/** Hardware type of Ethernet. */
export const ARPHRD_ETHER = 1;
/** Opcode of a request. */
export const ARP_REQUEST = 1;
/** Opcode of a reply. */
export const ARP_REPLY = 2;

/** Validates the ARP packet in len bytes at buf[off]; returns its opcode (request or reply), or -1. */
export function arpParse(buf: Uint8Array, off: number, len: number): number {
  if (len < ARP_LEN || off < 0 || off + len > buf.length) return -1;
  if (rd16(buf, off + ARP_HTYPE) !== ARPHRD_ETHER || rd16(buf, off + ARP_PTYPE) !== ETHERTYPE_IPV4) return -1;
  if (buf[off + ARP_HLEN] !== ETH_ALEN || buf[off + ARP_PLEN] !== 4) return -1;
  const op = rd16(buf, off + ARP_OP);
  return op === ARP_REQUEST || op === ARP_REPLY ? op : -1;
}

/**
 * Writes an ARP packet at buf[off]: opcode, sender MAC/IPv4 at sha[shaOff]/spa[spaOff], target MAC/IPv4 at
 * tha[thaOff]/tpa[tpaOff]; returns 28, or 0 when it does not fit.
 */
export function arpEmit(
  buf: Uint8Array, off: number, op: number,
  sha: Uint8Array, shaOff: number, spa: Uint8Array, spaOff: number,
  tha: Uint8Array, thaOff: number, tpa: Uint8Array, tpaOff: number,
): number {
  if (off < 0 || off + ARP_LEN > buf.length) return 0;
  wr16(buf, off + ARP_HTYPE, ARPHRD_ETHER);
  wr16(buf, off + ARP_PTYPE, ETHERTYPE_IPV4);
  buf[off + ARP_HLEN] = ETH_ALEN;
  buf[off + ARP_PLEN] = 4;
  wr16(buf, off + ARP_OP, op);
  copyBytes(buf, off + ARP_SHA, sha, shaOff, ETH_ALEN);
  copyBytes(buf, off + ARP_SPA, spa, spaOff, 4);
  copyBytes(buf, off + ARP_THA, tha, thaOff, ETH_ALEN);
  copyBytes(buf, off + ARP_TPA, tpa, tpaOff, 4);
  return ARP_LEN;
}

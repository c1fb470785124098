/**
 * DHCPv6 (RFC 8415) client/server messages: a message type, a 24-bit transaction id, then options.
 *
 * Options are TLVs with a 16-bit code and a 16-bit length. Some carry options of their own: IA_NA (IAID, T1, T2,
 * then options) and IA_TA (IAID, then options) hold IA Address options (address, preferred and valid lifetimes,
 * then options such as a Status Code). Every length is checked against its container; a bad one makes the whole
 * message invalid. Relay messages (types 12, 13) have another layout and are refused: orzo serves one link directly.
 *
 * Builders for what a server sends: DUID-LLT (type 1, hardware type 1, seconds since 2000-01-01 UTC modulo 2^32,
 * the MAC), Status Code, IA_NA with IA Address, DNS servers (23), domain list (24, RFC 1035 names without
 * compression) and Client FQDN (39, RFC 4704: flags byte, then the name in wire format). Control path.
 */
import { concatBytes, rd16, rd32, wr16, wr32 } from "./bytes.ts";
import { dnsNameDecode, dnsNameEncode, dnsNamesEncode } from "./dnsname.ts";

/** Offset of the message type. */
export const DHCP6_MSG_TYPE = 0;
/** Offset of the 24-bit transaction id. */
export const DHCP6_XID = 1;
/** Length of the message header. */
export const DHCP6_HLEN = 4;
/** UDP port of clients. */
export const DHCP6_CLIENT_PORT = 546;
/** UDP port of servers and relays. */
export const DHCP6_SERVER_PORT = 547;

/** Message types. */
export const DHCP6_MSG = {
  SOLICIT: 1, ADVERTISE: 2, REQUEST: 3, CONFIRM: 4, RENEW: 5, REBIND: 6, REPLY: 7, RELEASE: 8, DECLINE: 9,
  RECONFIGURE: 10, INFORMATION_REQUEST: 11, RELAY_FORW: 12, RELAY_REPL: 13,
} as const;

/** Option codes. */
export const DHCP6_OPT = {
  CLIENTID: 1, SERVERID: 2, IA_NA: 3, IA_TA: 4, IAADDR: 5, ORO: 6, PREFERENCE: 7, ELAPSED_TIME: 8,
  STATUS_CODE: 13, RAPID_COMMIT: 14, DNS_SERVERS: 23, DOMAIN_LIST: 24, CLIENT_FQDN: 39,
} as const;

/** Status codes. */
export const DHCP6_STATUS = {
  SUCCESS: 0, UNSPEC_FAIL: 1, NO_ADDRS_AVAIL: 2, NO_BINDING: 3, NOT_ON_LINK: 4, USE_MULTICAST: 5,
} as const;

/** Client FQDN flags (option 39): S (server should update AAAA), O (server overrode), N (no update). */
export const DHCP6_FQDN = { S: 0x01, O: 0x02, N: 0x04 } as const;

/** DUID type of a link-layer address plus time. */
export const DUID_LLT = 1;
/** DUID type of a link-layer address. */
export const DUID_LL = 3;

/** Seconds from the Unix epoch to 2000-01-01 00:00 UTC, the DUID-LLT epoch. */
const DUID_EPOCH = 946684800;
/** Fixed part of IA_NA: IAID, T1, T2. */
const IA_NA_FIXED = 12;
/** Fixed part of IA_TA: IAID. */
const IA_TA_FIXED = 4;
/** Fixed part of IA Address: address, preferred and valid lifetimes. */
const IAADDR_FIXED = 24;
/** Longest DUID (RFC 8415 §11.1). */
const MAX_DUID = 128;

/** One option: its code and where its data is (absolute offset, length). */
export interface Dhcp6Option {
  /** Option code. */
  code: number;
  /** Absolute offset of the option's data. */
  off: number;
  /** Length of the data. */
  len: number;
}

/** An address inside an IA. */
export interface Dhcp6IaAddress {
  /** The 16-byte address. */
  addr: Uint8Array;
  /** Preferred lifetime in seconds. */
  preferred: number;
  /** Valid lifetime in seconds. */
  valid: number;
  /** Options inside the IA Address option. */
  options: Dhcp6Option[];
}

/** An identity association (IA_NA or IA_TA) decoded with its addresses. */
export interface Dhcp6Ia {
  /** DHCP6_OPT.IA_NA or DHCP6_OPT.IA_TA. */
  code: number;
  /** Identity association id. */
  iaid: number;
  /** Renewal time (IA_NA only, else 0). */
  t1: number;
  /** Rebinding time (IA_NA only, else 0). */
  t2: number;
  /** Options inside the IA. */
  options: Dhcp6Option[];
  /** The IA Address options among them. */
  addresses: Dhcp6IaAddress[];
}

/** Lists the options in [off, end), or null when a header or length runs past end. */
export function dhcp6Options(buf: Uint8Array, off: number, end: number): Dhcp6Option[] | null {
  if (off < 0 || end > buf.length || off > end) return null;
  const list: Dhcp6Option[] = [];
  let p = off;
  while (p < end) {
    if (p + 4 > end) return null;
    const len = rd16(buf, p + 2);
    if (p + 4 + len > end) return null;
    list.push({ code: rd16(buf, p), off: p + 4, len });
    p += 4 + len;
  }
  return list;
}

/** The first option with the given code, or undefined. */
export function dhcp6Find(options: Dhcp6Option[], code: number): Dhcp6Option | undefined {
  return options.find((o) => o.code === code);
}

/** Decodes an IA_NA or IA_TA option and its IA Address options; null when anything inside is malformed. */
export function dhcp6IaDecode(buf: Uint8Array, opt: Dhcp6Option): Dhcp6Ia | null {
  const fixed = opt.code === DHCP6_OPT.IA_NA ? IA_NA_FIXED : opt.code === DHCP6_OPT.IA_TA ? IA_TA_FIXED : -1;
  if (fixed < 0 || opt.len < fixed) return null;
  const options = dhcp6Options(buf, opt.off + fixed, opt.off + opt.len);
  if (options === null) return null;
  const addresses: Dhcp6IaAddress[] = [];
  for (const o of options) {
    if (o.code !== DHCP6_OPT.IAADDR) continue;
    if (o.len < IAADDR_FIXED) return null;
    const inner = dhcp6Options(buf, o.off + IAADDR_FIXED, o.off + o.len);
    if (inner === null) return null;
    addresses.push({
      addr: buf.slice(o.off, o.off + 16),
      preferred: rd32(buf, o.off + 16),
      valid: rd32(buf, o.off + 20),
      options: inner,
    });
  }
  const na = fixed === IA_NA_FIXED;
  return {
    code: opt.code,
    iaid: rd32(buf, opt.off),
    t1: na ? rd32(buf, opt.off + 4) : 0,
    t2: na ? rd32(buf, opt.off + 8) : 0,
    options,
    addresses,
  };
}

/**
 * Validates the DHCPv6 message in len bytes at buf[off]: a client/server type, options well formed down into
 * IA_NA/IA_TA and their addresses, Client/Server IDs no longer than 128 bytes. Returns the message type, or -1.
 */
export function dhcp6Parse(buf: Uint8Array, off: number, len: number): number {
  if (len < DHCP6_HLEN || off < 0 || off + len > buf.length) return -1;
  const type = buf[off + DHCP6_MSG_TYPE];
  if (type < DHCP6_MSG.SOLICIT || type > DHCP6_MSG.INFORMATION_REQUEST) return -1;
  const options = dhcp6Options(buf, off + DHCP6_HLEN, off + len);
  if (options === null) return -1;
  for (const o of options) {
    if ((o.code === DHCP6_OPT.IA_NA || o.code === DHCP6_OPT.IA_TA) && dhcp6IaDecode(buf, o) === null) return -1;
    if ((o.code === DHCP6_OPT.CLIENTID || o.code === DHCP6_OPT.SERVERID) && (o.len < 2 || o.len > MAX_DUID)) return -1;
  }
  return type;
}

/** Reads the 24-bit transaction id of the message at buf[off]. */
export function dhcp6Xid(buf: Uint8Array, off: number): number {
  return (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
}

/** Builds one option: code, length, data. */
export function dhcp6Option(code: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length);
  wr16(out, 0, code);
  wr16(out, 2, data.length);
  out.set(data, 4);
  return out;
}

/** DUID-LLT time for a moment given in Unix milliseconds: seconds since 2000-01-01 UTC, modulo 2^32. */
export function dhcp6DuidTime(unixMs: number): number {
  return (Math.floor(unixMs / 1000) - DUID_EPOCH) >>> 0;
}

/** Builds a DUID-LLT (Ethernet) from its time and the 6-byte MAC at mac[macOff]. */
export function dhcp6DuidLlt(time: number, mac: Uint8Array, macOff: number): Uint8Array {
  const out = new Uint8Array(14);
  wr16(out, 0, DUID_LLT);
  wr16(out, 2, 1);
  wr32(out, 4, time);
  out.set(mac.subarray(macOff, macOff + 6), 8);
  return out;
}

/** Builds a Status Code option with its UTF-8 message. */
export function dhcp6StatusCode(status: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message);
  const data = new Uint8Array(2 + text.length);
  wr16(data, 0, status);
  data.set(text, 2);
  return dhcp6Option(DHCP6_OPT.STATUS_CODE, data);
}

/** Builds an IA Address option for the 16-byte address at addr[addrOff], with options inside. */
export function dhcp6IaAddr(
  addr: Uint8Array, addrOff: number, preferred: number, valid: number, inner: Uint8Array[] = [],
): Uint8Array {
  const fixed = new Uint8Array(IAADDR_FIXED);
  fixed.set(addr.subarray(addrOff, addrOff + 16), 0);
  wr32(fixed, 16, preferred);
  wr32(fixed, 20, valid);
  return dhcp6Option(DHCP6_OPT.IAADDR, concatBytes([fixed, ...inner]));
}

/** Builds an IA_NA option with options (IA Address, Status Code) inside. */
export function dhcp6IaNa(iaid: number, t1: number, t2: number, inner: Uint8Array[]): Uint8Array {
  const fixed = new Uint8Array(IA_NA_FIXED);
  wr32(fixed, 0, iaid);
  wr32(fixed, 4, t1);
  wr32(fixed, 8, t2);
  return dhcp6Option(DHCP6_OPT.IA_NA, concatBytes([fixed, ...inner]));
}

/** Builds a DNS Recursive Name Server option from 16-byte addresses. */
export function dhcp6DnsServers(servers: Uint8Array[]): Uint8Array {
  return dhcp6Option(DHCP6_OPT.DNS_SERVERS, concatBytes(servers.map((s) => s.subarray(0, 16))));
}

/** Builds a Domain Search List option (names without compression), or null when a name is invalid. */
export function dhcp6DomainList(names: string[]): Uint8Array | null {
  const wire = dnsNamesEncode(names, false);
  return wire === null ? null : dhcp6Option(DHCP6_OPT.DOMAIN_LIST, wire);
}

/** Builds a Client FQDN option: flags, then the name in wire format; null when the name is invalid. */
export function dhcp6ClientFqdn(flags: number, name: string): Uint8Array | null {
  const wire = dnsNameEncode(name);
  return wire === null ? null : dhcp6Option(DHCP6_OPT.CLIENT_FQDN, concatBytes([Uint8Array.of(flags), wire]));
}

/** Decodes a Client FQDN option's data (flags, possibly partial name), or null when malformed. */
export function dhcp6ClientFqdnDecode(buf: Uint8Array, opt: Dhcp6Option): { flags: number; name: string } | null {
  if (opt.len < 1) return null;
  const name = dnsNameDecode(buf, opt.off + 1, opt.len - 1);
  return name === null ? null : { flags: buf[opt.off], name };
}

/** Writes a message (type, transaction id, the built options) at buf[off]; returns its length, or 0 if no room. */
export function dhcp6Emit(buf: Uint8Array, off: number, type: number, xid: number, options: Uint8Array[]): number {
  const len = DHCP6_HLEN + options.reduce((n, o) => n + o.length, 0);
  if (off < 0 || off + len > buf.length) return 0;
  buf[off + DHCP6_MSG_TYPE] = type;
  buf[off + 1] = xid >>> 16;
  buf[off + 2] = xid >>> 8;
  buf[off + 3] = xid;
  let p = off + DHCP6_HLEN;
  for (const o of options) {
    buf.set(o, p);
    p += o.length;
  }
  return len;
}

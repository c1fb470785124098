/**
 * DHCPv4 (RFC 2131) on the BOOTP layout, with options per RFC 2132.
 *
 * Fixed part: op, htype, hlen, hops, xid, secs, flags, four addresses, a 16-byte client hardware address, the
 * 64-byte sname and 128-byte file fields, then the magic cookie 99.130.83.99: 240 bytes before the options.
 * Options: PAD (0) is one byte, END (255) stops the list, every other code has a length byte. An option that
 * appears more than once is the concatenation of its pieces (RFC 3396), which is also how values longer than 255
 * bytes are sent. The option overload (52) into sname/file is not used by the clients orzo serves and is ignored.
 * A list without END, or with a length running past the message, is invalid.
 *
 * Also here: the encodings of option 119 (search list: DNS names with compression, RFC 3397), option 81 (client
 * FQDN, RFC 4702) and option 121 (classless static routes, RFC 3442). Control path: small allocations are fine.
 */
import { concatBytes, copyBytes, rd16, rd32, wr16, wr32 } from "./bytes.ts";
import { dnsNameDecode, dnsNameEncode, dnsNamesEncode } from "./dnsname.ts";

/** Offset of op (BOOTREQUEST or BOOTREPLY). */
export const DHCP_OP = 0;
/** Offset of the hardware type. */
export const DHCP_HTYPE = 1;
/** Offset of the hardware address length. */
export const DHCP_HLEN = 2;
/** Offset of the relay hop count. */
export const DHCP_HOPS = 3;
/** Offset of the transaction id. */
export const DHCP_XID = 4;
/** Offset of the seconds since the client began. */
export const DHCP_SECS = 8;
/** Offset of the flags (broadcast bit). */
export const DHCP_FLAGS = 10;
/** Offset of the client's current address. */
export const DHCP_CIADDR = 12;
/** Offset of "your" (the offered) address. */
export const DHCP_YIADDR = 16;
/** Offset of the next server address. */
export const DHCP_SIADDR = 20;
/** Offset of the relay agent address. */
export const DHCP_GIADDR = 24;
/** Offset of the client hardware address (16 bytes). */
export const DHCP_CHADDR = 28;
/** Offset of the server host name field (64 bytes). */
export const DHCP_SNAME = 44;
/** Offset of the boot file name field (128 bytes). */
export const DHCP_FILE = 108;
/** Offset of the magic cookie. */
export const DHCP_MAGIC = 236;
/** Offset of the options. */
export const DHCP_OPTIONS = 240;
/** The magic cookie. */
export const DHCP_MAGIC_COOKIE = 0x63825363;
/** Broadcast bit of the flags. */
export const DHCP_FLAG_BROADCAST = 0x8000;
/** UDP port of servers. */
export const DHCP_SERVER_PORT = 67;
/** UDP port of clients. */
export const DHCP_CLIENT_PORT = 68;

/** op of a client message. */
export const BOOTREQUEST = 1;
/** op of a server message. */
export const BOOTREPLY = 2;

/** Message types (option 53). */
export const DHCP_MSG = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;

/** Option codes. */
export const DHCP_OPT = {
  PAD: 0, SUBNET_MASK: 1, ROUTER: 3, DNS: 6, HOSTNAME: 12, DOMAIN_NAME: 15, MTU: 26, BROADCAST: 28,
  REQUESTED_IP: 50, LEASE_TIME: 51, OVERLOAD: 52, MSG_TYPE: 53, SERVER_ID: 54, PARAM_LIST: 55, MAX_SIZE: 57,
  RENEWAL_TIME: 58, REBINDING_TIME: 59, VENDOR_CLASS: 60, CLIENT_ID: 61, RAPID_COMMIT: 80, CLIENT_FQDN: 81,
  SEARCH: 119, CLASSLESS_ROUTES: 121, END: 255,
} as const;

/** Client FQDN flags (option 81): S (server should update A), O (server overrode), E (wire encoding), N (no update). */
export const DHCP_FQDN = { S: 0x01, O: 0x02, E: 0x04, N: 0x08 } as const;

/** The fixed BOOTP fields of a message. */
export interface DhcpHeader {
  /** BOOTREQUEST or BOOTREPLY. */
  op: number;
  /** Hardware type (1: Ethernet). */
  htype: number;
  /** Hardware address length. */
  hlen: number;
  /** Relay hops. */
  hops: number;
  /** Transaction id. */
  xid: number;
  /** Seconds since the client began. */
  secs: number;
  /** Flags. */
  flags: number;
  /** Client address (4 bytes). */
  ciaddr: Uint8Array;
  /** Offered address (4 bytes). */
  yiaddr: Uint8Array;
  /** Next server address (4 bytes). */
  siaddr: Uint8Array;
  /** Relay address (4 bytes). */
  giaddr: Uint8Array;
  /** Client hardware address field (16 bytes; the first hlen matter). */
  chaddr: Uint8Array;
}

/**
 * Validates the fixed part of the DHCP message in len bytes at buf[off] (size, op, hlen ≤ 16, magic cookie);
 * returns the absolute offset of its options, or -1.
 */
export function dhcpParse(buf: Uint8Array, off: number, len: number): number {
  if (len < DHCP_OPTIONS || off < 0 || off + len > buf.length) return -1;
  const op = buf[off + DHCP_OP];
  if ((op !== BOOTREQUEST && op !== BOOTREPLY) || buf[off + DHCP_HLEN] > 16) return -1;
  return rd32(buf, off + DHCP_MAGIC) === DHCP_MAGIC_COOKIE ? off + DHCP_OPTIONS : -1;
}

/** Reads the fixed fields of the (validated) message at buf[off]. */
export function dhcpHeaderDecode(buf: Uint8Array, off: number): DhcpHeader {
  return {
    op: buf[off + DHCP_OP],
    htype: buf[off + DHCP_HTYPE],
    hlen: buf[off + DHCP_HLEN],
    hops: buf[off + DHCP_HOPS],
    xid: rd32(buf, off + DHCP_XID),
    secs: rd16(buf, off + DHCP_SECS),
    flags: rd16(buf, off + DHCP_FLAGS),
    ciaddr: buf.slice(off + DHCP_CIADDR, off + DHCP_CIADDR + 4),
    yiaddr: buf.slice(off + DHCP_YIADDR, off + DHCP_YIADDR + 4),
    siaddr: buf.slice(off + DHCP_SIADDR, off + DHCP_SIADDR + 4),
    giaddr: buf.slice(off + DHCP_GIADDR, off + DHCP_GIADDR + 4),
    chaddr: buf.slice(off + DHCP_CHADDR, off + DHCP_CHADDR + 16),
  };
}

/** Writes the 240-byte fixed part (sname and file zeroed, magic cookie) at buf[off]; returns 240, or 0 if no room. */
export function dhcpHeaderEmit(buf: Uint8Array, off: number, h: DhcpHeader): number {
  if (off < 0 || off + DHCP_OPTIONS > buf.length) return 0;
  buf.fill(0, off, off + DHCP_OPTIONS);
  buf[off + DHCP_OP] = h.op;
  buf[off + DHCP_HTYPE] = h.htype;
  buf[off + DHCP_HLEN] = h.hlen;
  buf[off + DHCP_HOPS] = h.hops;
  wr32(buf, off + DHCP_XID, h.xid);
  wr16(buf, off + DHCP_SECS, h.secs);
  wr16(buf, off + DHCP_FLAGS, h.flags);
  copyBytes(buf, off + DHCP_CIADDR, h.ciaddr, 0, 4);
  copyBytes(buf, off + DHCP_YIADDR, h.yiaddr, 0, 4);
  copyBytes(buf, off + DHCP_SIADDR, h.siaddr, 0, 4);
  copyBytes(buf, off + DHCP_GIADDR, h.giaddr, 0, 4);
  copyBytes(buf, off + DHCP_CHADDR, h.chaddr, 0, Math.min(16, h.chaddr.length));
  wr32(buf, off + DHCP_MAGIC, DHCP_MAGIC_COOKIE);
  return DHCP_OPTIONS;
}

/**
 * Walks the options in [optOff, end) up to END; returns code → value (repeated codes concatenated, in order of
 * first appearance), or null when a length overruns or END is missing.
 */
export function dhcpOptionsParse(buf: Uint8Array, optOff: number, end: number): Map<number, Uint8Array> | null {
  if (optOff < 0 || end > buf.length) return null;
  const pieces = new Map<number, Uint8Array[]>();
  let p = optOff;
  for (;;) {
    if (p >= end) return null;
    const code = buf[p];
    if (code === DHCP_OPT.END) break;
    if (code === DHCP_OPT.PAD) {
      p++;
      continue;
    }
    if (p + 2 > end || p + 2 + buf[p + 1] > end) return null;
    const value = buf.slice(p + 2, p + 2 + buf[p + 1]);
    const list = pieces.get(code);
    if (list) list.push(value);
    else pieces.set(code, [value]);
    p += 2 + buf[p + 1];
  }
  const out = new Map<number, Uint8Array>();
  for (const [code, list] of pieces) out.set(code, list.length === 1 ? list[0] : concatBytes(list));
  return out;
}

/** Builds an options list in a caller's buffer without ever exceeding a size limit (END included). */
export class DhcpOptionWriter {
  private pos: number;

  /** Writes from buf[off]; the list, END included, never exceeds maxLen bytes nor the buffer. */
  constructor(
    private readonly buf: Uint8Array,
    private readonly off: number,
    private readonly maxLen: number,
  ) {
    this.pos = off;
  }

  /** Bytes written so far (END not yet included). */
  get length(): number {
    return this.pos - this.off;
  }

  /** Adds an option, split into 255-byte pieces if longer; false (nothing written) when it does not fit. */
  add(code: number, data: Uint8Array): boolean {
    const pieces = Math.max(1, Math.ceil(data.length / 255));
    const need = 2 * pieces + data.length;
    const limit = Math.min(this.off + this.maxLen, this.buf.length) - 1;
    if (code === DHCP_OPT.PAD || code === DHCP_OPT.END || this.pos + need > limit) return false;
    for (let i = 0; i < pieces; i++) {
      const chunk = data.subarray(255 * i, Math.min(data.length, 255 * (i + 1)));
      this.buf[this.pos] = code;
      this.buf[this.pos + 1] = chunk.length;
      this.buf.set(chunk, this.pos + 2);
      this.pos += 2 + chunk.length;
    }
    return true;
  }

  /** Adds a one-byte option. */
  addU8(code: number, v: number): boolean {
    return this.add(code, Uint8Array.of(v));
  }

  /** Adds a two-byte big-endian option. */
  addU16(code: number, v: number): boolean {
    return this.add(code, Uint8Array.of(v >>> 8, v & 0xff));
  }

  /** Adds a four-byte big-endian option. */
  addU32(code: number, v: number): boolean {
    return this.add(code, Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
  }

  /** Writes END and pads with PAD up to minLen (within the limits); returns the list's length, 0 if END won't fit. */
  finish(minLen = 0): number {
    if (this.pos >= Math.min(this.off + this.maxLen, this.buf.length)) return 0;
    this.buf[this.pos++] = DHCP_OPT.END;
    const padTo = Math.min(this.off + minLen, this.off + this.maxLen, this.buf.length);
    if (this.pos < padTo) {
      this.buf.fill(DHCP_OPT.PAD, this.pos, padTo);
      this.pos = padTo;
    }
    return this.pos - this.off;
  }
}

/** Encodes a domain search list for option 119 (DNS names with compression); null when a name is invalid. */
export function dhcpSearchListEncode(names: string[]): Uint8Array | null {
  return dnsNamesEncode(names, true);
}

/**
 * Encodes a client FQDN option value: flags, RCODE1 and RCODE2 (255, as servers send per RFC 4702 §3.2), then the
 * name, in DNS wire format when flags has E, else as ASCII. Null when the name is invalid.
 */
export function dhcpFqdnEncode(flags: number, name: string): Uint8Array | null {
  let enc: Uint8Array | null;
  if (flags & DHCP_FQDN.E) enc = dnsNameEncode(name);
  else enc = /^[\x21-\x7e]*$/.test(name) ? new TextEncoder().encode(name) : null;
  if (enc === null || enc.length > 252) return null;
  const out = new Uint8Array(3 + enc.length);
  out[0] = flags;
  out[1] = 0xff;
  out[2] = 0xff;
  out.set(enc, 3);
  return out;
}

/** Decodes a client FQDN option value into its flags and name, or null when malformed. */
export function dhcpFqdnDecode(data: Uint8Array): { flags: number; name: string } | null {
  if (data.length < 3) return null;
  const flags = data[0];
  const name = flags & DHCP_FQDN.E ? dnsNameDecode(data, 3, data.length - 3) : String.fromCharCode(...data.subarray(3));
  return name === null ? null : { flags, name };
}

/** A classless static route: destination, prefix length, gateway (4-byte addresses). */
export interface DhcpRoute {
  /** Destination network. */
  dst: Uint8Array;
  /** Prefix length, 0-32. */
  prefixLen: number;
  /** Gateway. */
  gateway: Uint8Array;
}

/** Encodes option 121: per route the prefix length, the significant bytes of the destination, the gateway. */
export function dhcpClasslessRoutesEncode(routes: DhcpRoute[]): Uint8Array | null {
  const out: number[] = [];
  for (const r of routes) {
    if (!Number.isInteger(r.prefixLen) || r.prefixLen < 0 || r.prefixLen > 32) return null;
    out.push(r.prefixLen);
    for (let i = 0; i < Math.ceil(r.prefixLen / 8); i++) out.push(r.dst[i]);
    for (let i = 0; i < 4; i++) out.push(r.gateway[i]);
  }
  return new Uint8Array(out);
}

/**
 * rtnetlink framing: struct layouts and constants (defined once), the module's error type, a reader that checks
 * every length against its container, and a writer that builds requests in a preallocated buffer.
 *
 * Netlink content is as untrusted as any other input: a message or attribute whose length is too short to be one,
 * or reaches past its container, is a NetlinkError (EBADMSG), never an out-of-bounds read or a walk that stops
 * advancing. Integers are in host byte order (little-endian on x86_64); addresses are bytes in network order.
 */
import { AF_INET, AF_INET6 } from "../syscalls/constants.ts";
import { Errno, errnoName, errnoText } from "../syscalls/errno.ts";
import { formatIPv4, formatIPv6 } from "../wire/inany.ts";

/** struct nlmsghdr. */
export const NLMSGHDR = { size: 16, len: 0, type: 4, flags: 6, seq: 8, pid: 12 } as const;
/** struct nlmsgerr: the (negative) error, then a copy of the header of the request it answers. */
export const NLMSGERR = { size: 20, error: 0, request: 4 } as const;
/** struct rtattr: the attribute header; attributes and messages are aligned to NL_ALIGN bytes. */
export const RTATTR = { size: 4, len: 0, type: 2 } as const;
/** Alignment of messages and attributes. */
export const NL_ALIGN = 4;
/** struct ifinfomsg. */
export const IFINFOMSG = { size: 16, family: 0, type: 2, index: 4, flags: 8, change: 12 } as const;
/** struct ifaddrmsg. */
export const IFADDRMSG = { size: 8, family: 0, prefixLen: 1, flags: 2, scope: 3, index: 4 } as const;
/** struct rtmsg. */
export const RTMSG = { size: 12, family: 0, dstLen: 1, srcLen: 2, tos: 3, table: 4, protocol: 5, scope: 6, type: 7, flags: 8 } as const;
/** struct rtnexthop: one nexthop inside RTA_MULTIPATH, followed by its own attributes. */
export const RTNEXTHOP = { size: 8, len: 0, flags: 2, hops: 3, ifindex: 4 } as const;

/** Control message types (below MIN_TYPE), and the first type of a protocol's own messages. */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4, MIN_TYPE: 0x10 } as const;
/** rtnetlink message types used here. */
export const RTM = { NEWLINK: 16, GETLINK: 18, NEWADDR: 20, GETADDR: 22, NEWROUTE: 24, GETROUTE: 26 } as const;
/** nlmsghdr flags (REPLACE/EXCL/CREATE for new-requests; CAPPED/ACK_TLVS on error messages). */
export const NLM_F = {
  REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, DUMP_INTR: 0x10, DUMP: 0x300,
  REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, CAPPED: 0x100, ACK_TLVS: 0x200,
} as const;
/** Link attributes. */
export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, GSO_MAX_SIZE: 41, TSO_MAX_SIZE: 59, GSO_IPV4_MAX_SIZE: 63 } as const;
/** Address attributes. */
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, CACHEINFO: 6, FLAGS: 8 } as const;
/** Address flags. */
export const IFA_F = { NODAD: 0x02, DEPRECATED: 0x20 } as const;
/** Route attributes. */
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, MULTIPATH: 9, CACHEINFO: 12, TABLE: 15, NH_ID: 30 } as const;
/** Route tables, protocols, scopes and types. */
export const RT = {
  TABLE_MAIN: 254, PROT_BOOT: 3, SCOPE_UNIVERSE: 0, SCOPE_LINK: 253, SCOPE_HOST: 254, UNICAST: 1,
} as const;
/** Nexthop state flags the kernel reports but refuses in new routes (RTNH_COMPARE_MASK). */
export const RTNH_STATE_FLAGS = 0x01 | 0x08 | 0x10 | 0x40;
/** Interface flags. */
export const IFF = { UP: 0x1, LOOPBACK: 0x8, NOARP: 0x80 } as const;
/** Extended ack attribute carrying the kernel's error text. */
const NLMSGERR_ATTR_MSG = 1;
/** Attribute type bits (the top two are the nested and byte-order markers). */
const NLA_TYPE_MASK = 0x3fff;

/** A netlink failure: the kernel refused a request, a reply was malformed, or none came in time. */
export class NetlinkError extends Error {
  /** Positive errno (EBADMSG for malformed content, ETIMEDOUT for a silent kernel). */
  readonly errno: number;
  /** Symbolic errno name, e.g. "EEXIST". */
  readonly code: string;
  /** The request that failed, e.g. "RTM_NEWADDR 198.51.100.2/24 on tap0". */
  readonly request?: string;
  /** What went wrong beyond the errno: the kernel's extended-ack text, or what was malformed. */
  readonly detail: string;

  constructor(errno: number, detail: string, request?: string) {
    const head = request ? `netlink: ${request}: ` : "netlink: ";
    super(`${head}${errnoText(errno)}${detail ? `: ${detail}` : ""}`);
    this.name = "NetlinkError";
    this.errno = errno;
    this.code = errnoName(errno);
    this.request = request;
    this.detail = detail;
  }

  /** The same failure attributed to a request (errors from the parser know no request). */
  withRequest(request: string): NetlinkError {
    return this.request ? this : new NetlinkError(this.errno, this.detail, request);
  }
}

/** A malformed-content error. */
export function malformed(detail: string): NetlinkError {
  return new NetlinkError(Errno.EBADMSG, detail);
}

/** A buffer as the reader and writer use it: bytes and a DataView over the same memory (a Mem fits). */
export interface NlBuffer {
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** Wraps bytes (e.g. a copy of a message) for the reader. */
export function nlBuffer(bytes: Uint8Array): NlBuffer {
  return { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/** Rounds a length up to the netlink alignment. */
export function nlAlign(len: number): number {
  return (len + NL_ALIGN - 1) & ~(NL_ALIGN - 1);
}

/** Receives one message: its header fields and payload bounds; returning false stops the walk. */
export type MessageVisitor = (type: number, flags: number, seq: number, payloadOff: number, payloadLen: number) => boolean | void;

/** Walks the messages in the first len bytes of b; throws a NetlinkError on a length that does not fit. */
export function forEachMessage(b: NlBuffer, len: number, visit: MessageVisitor): void {
  if (len > b.bytes.length) throw malformed(`datagram of ${len} bytes in a ${b.bytes.length}-byte buffer`);
  const v = b.view;
  for (let off = 0; off < len; ) {
    if (len - off < NLMSGHDR.size) throw malformed(`${len - off} stray bytes at offset ${off}`);
    const mlen = v.getUint32(off + NLMSGHDR.len, true);
    if (mlen < NLMSGHDR.size || mlen > len - off) {
      throw malformed(`message length ${mlen} at offset ${off} of a ${len}-byte datagram`);
    }
    const type = v.getUint16(off + NLMSGHDR.type, true);
    const flags = v.getUint16(off + NLMSGHDR.flags, true);
    const seq = v.getUint32(off + NLMSGHDR.seq, true);
    if (visit(type, flags, seq, off + NLMSGHDR.size, mlen - NLMSGHDR.size) === false) return;
    off += nlAlign(mlen);
  }
}

/** Receives one attribute: its type (flag bits masked off) and data bounds. */
export type AttrVisitor = (type: number, dataOff: number, dataLen: number) => void;

/** Walks the attributes in b[off, end); throws a NetlinkError on a length that does not fit. */
export function forEachAttr(b: NlBuffer, off: number, end: number, visit: AttrVisitor): void {
  if (off < 0 || end > b.bytes.length || off > end) throw malformed(`attributes at [${off}, ${end}) outside the buffer`);
  const v = b.view;
  // Fewer than 4 trailing bytes can only be padding: the kernel pads every attribute.
  for (let pos = off; end - pos >= RTATTR.size; ) {
    const len = v.getUint16(pos + RTATTR.len, true);
    if (len < RTATTR.size || len > end - pos) throw malformed(`attribute length ${len} at offset ${pos} (${end - pos} bytes left)`);
    visit(v.getUint16(pos + RTATTR.type, true) & NLA_TYPE_MASK, pos + RTATTR.size, len - RTATTR.size);
    pos += nlAlign(len);
  }
}

/** Attribute types beyond this are not looked up (none of the ones used here is). */
const ATTR_SLOTS = 64;
const decoder = new TextDecoder();

/** The attributes of one message by type (the last one of a type wins, as in the kernel), with checked getters. */
export class AttrTable {
  private readonly offs = new Int32Array(ATTR_SLOTS);
  private readonly lens = new Int32Array(ATTR_SLOTS);
  private buf: NlBuffer = nlBuffer(new Uint8Array(0));

  /** Indexes the attributes in b[off, end); throws on malformed ones. */
  parse(b: NlBuffer, off: number, end: number): this {
    this.lens.fill(-1);
    this.buf = b;
    forEachAttr(b, off, end, (type, dataOff, dataLen) => {
      if (type >= ATTR_SLOTS) return;
      this.offs[type] = dataOff;
      this.lens[type] = dataLen;
    });
    return this;
  }

  /** Whether an attribute of this type was present. */
  has(type: number): boolean {
    return this.lens[type] >= 0;
  }

  /** Offset of an attribute's data in the parsed buffer. */
  offset(type: number): number {
    return this.offs[type];
  }

  /** Length of an attribute's data (-1 when absent). */
  length(type: number): number {
    return this.lens[type];
  }

  /** A 32-bit attribute, or undefined when absent; malformed unless exactly 4 bytes. */
  u32(type: number): number | undefined {
    if (!this.has(type)) return undefined;
    if (this.lens[type] !== 4) throw malformed(`attribute ${type}: ${this.lens[type]} bytes, expected 4`);
    return this.buf.view.getUint32(this.offs[type], true);
  }

  /** A string attribute up to its NUL, or undefined when absent. */
  str(type: number): string | undefined {
    if (!this.has(type)) return undefined;
    const data = this.buf.bytes.subarray(this.offs[type], this.offs[type] + this.lens[type]);
    const nul = data.indexOf(0);
    return decoder.decode(nul < 0 ? data : data.subarray(0, nul));
  }

  /** An address attribute as text; malformed unless it has the family's length. */
  addr(type: number, version: IpVersion): string | undefined {
    if (!this.has(type)) return undefined;
    return addressText(this.buf.bytes, this.offs[type], this.lens[type], version);
  }

  /** A hardware address attribute as colon-separated hex, or undefined when absent. */
  mac(type: number): string | undefined {
    if (!this.has(type)) return undefined;
    const data = this.buf.bytes.subarray(this.offs[type], this.offs[type] + this.lens[type]);
    return Array.from(data, (x) => x.toString(16).padStart(2, "0")).join(":");
  }
}

/** IP version of an address, route or request. */
export type IpVersion = 4 | 6;

/** Address family number of an IP version. */
export function familyOf(version: IpVersion): number {
  return version === 4 ? AF_INET : AF_INET6;
}

/** IP version of an address family number, or undefined for other families. */
export function versionOf(family: number): IpVersion | undefined {
  return family === AF_INET ? 4 : family === AF_INET6 ? 6 : undefined;
}

/** Address length in bytes of an IP version. */
export function addressLength(version: IpVersion): number {
  return version === 4 ? 4 : 16;
}

/** Formats len address bytes at bytes[off] (4 for IPv4, 16 for IPv6); malformed for any other length. */
export function addressText(bytes: Uint8Array, off: number, len: number, version: IpVersion): string {
  if (len !== addressLength(version)) throw malformed(`IPv${version} address of ${len} bytes`);
  return version === 4 ? formatIPv4(bytes, off) : formatIPv6(bytes, off);
}

/** An NLMSG_ERROR payload: the errno (0 for an acknowledgement) and the kernel's extended-ack text, if any. */
export interface Ack {
  readonly errno: number;
  readonly text: string;
}

const ackAttrs = new AttrTable();
/** Errno values the kernel can report (MAX_ERRNO). */
const MAX_ERRNO = 4095;

/** Decodes the payload of an NLMSG_ERROR message with its header flags; throws on malformed content. */
export function decodeAck(b: NlBuffer, off: number, len: number, flags: number): Ack {
  if (len < NLMSGERR.size) throw malformed(`error message of ${len} bytes`);
  const error = b.view.getInt32(off + NLMSGERR.error, true);
  if (error > 0 || error < -MAX_ERRNO) throw malformed(`error code ${error}`);
  if (!(flags & NLM_F.ACK_TLVS)) return { errno: -error, text: "" };
  // The request comes back in full unless the kernel capped it; the extended-ack attributes follow it.
  let tlv = off + NLMSGERR.size;
  if (!(flags & NLM_F.CAPPED)) {
    const requestLen = b.view.getUint32(off + NLMSGERR.request + NLMSGHDR.len, true);
    if (requestLen < NLMSGHDR.size || requestLen > len - NLMSGERR.request) throw malformed(`echoed request of ${requestLen} bytes`);
    tlv = off + NLMSGERR.request + nlAlign(requestLen);
  }
  const end = off + len;
  const text = tlv < end ? ackAttrs.parse(b, tlv, end).str(NLMSGERR_ATTR_MSG) : undefined;
  return { errno: -error, text: text ?? "" };
}

/** Decodes the payload of an NLMSG_DONE message: the dump's errno, 0 when it completed. */
export function decodeDone(b: NlBuffer, off: number, len: number): number {
  if (len < 4) return 0;
  const error = b.view.getInt32(off, true);
  if (error > 0 || error < -MAX_ERRNO) throw malformed(`dump status ${error}`);
  return -error;
}

/** Builds one request at a time in a preallocated buffer; every write is bounds-checked. */
export class MessageWriter {
  private len = 0;

  constructor(private readonly b: NlBuffer) {}

  /** Starts a request: the header with its type and flags (NLM_F_REQUEST added). */
  begin(type: number, flags: number): void {
    this.len = 0;
    const off = this.reserve(NLMSGHDR.size);
    this.b.view.setUint16(off + NLMSGHDR.type, type, true);
    this.b.view.setUint16(off + NLMSGHDR.flags, flags | NLM_F.REQUEST, true);
  }

  /** The message type being built. */
  get type(): number {
    return this.b.view.getUint16(NLMSGHDR.type, true);
  }

  /** Reserves n zeroed bytes (a fixed header, attribute data) and returns their offset. */
  reserve(n: number): number {
    const off = this.len;
    const end = off + nlAlign(n);
    if (end > this.b.bytes.length) throw new NetlinkError(Errno.EMSGSIZE, `request over ${this.b.bytes.length} bytes`);
    this.b.bytes.fill(0, off, end);
    this.len = end;
    return off;
  }

  /** Appends an attribute with len bytes of data copied from src[srcOff]. */
  attr(type: number, src: Uint8Array, srcOff = 0, len = src.length - srcOff): void {
    const off = this.attrHeader(type, len);
    this.b.bytes.set(src.subarray(srcOff, srcOff + len), off + RTATTR.size);
  }

  /** Appends a 32-bit attribute. */
  attrU32(type: number, value: number): void {
    this.b.view.setUint32(this.attrHeader(type, 4) + RTATTR.size, value >>> 0, true);
  }

  /** Appends a whole attribute (header and data) as received, len bytes at src[srcOff]; returns its offset. */
  attrRaw(src: Uint8Array, srcOff: number, len: number): number {
    const off = this.reserve(len);
    this.b.bytes.set(src.subarray(srcOff, srcOff + len), off);
    return off;
  }

  /** Copies len bytes from src[srcOff] into space already reserved at off. */
  copy(off: number, src: Uint8Array, srcOff: number, len: number): void {
    this.checkWritten(off, len);
    this.b.bytes.set(src.subarray(srcOff, srcOff + len), off);
  }

  /** Patches a byte in space already reserved. */
  setU8(off: number, value: number): void {
    this.checkWritten(off, 1);
    this.b.bytes[off] = value;
  }

  /** Patches a 32-bit field in space already reserved. */
  setU32(off: number, value: number): void {
    this.checkWritten(off, 4);
    this.b.view.setUint32(off, value >>> 0, true);
  }

  private checkWritten(off: number, len: number): void {
    if (off < NLMSGHDR.size || off + len > this.len) throw new RangeError(`write at [${off}, ${off + len}) outside the request`);
  }

  /** Appends an attribute header with room for len bytes of data; returns the attribute's offset. */
  attrHeader(type: number, len: number): number {
    if (RTATTR.size + len > 0xffff) throw new NetlinkError(Errno.EMSGSIZE, `attribute of ${len} bytes`);
    const off = this.reserve(RTATTR.size + len);
    this.b.view.setUint16(off + RTATTR.len, RTATTR.size + len, true);
    this.b.view.setUint16(off + RTATTR.type, type, true);
    return off;
  }

  /** Sets the sequence number and total length; returns the length to send. */
  finish(seq: number): number {
    this.b.view.setUint32(NLMSGHDR.len, this.len, true);
    this.b.view.setUint32(NLMSGHDR.seq, seq, true);
    this.b.view.setUint32(NLMSGHDR.pid, 0, true);
    return this.len;
  }
}

/**
 * Checkers for option values: each takes the raw text of one option argument and returns it converted, or throws
 * CliError with a reason that shows the value, so the message the user gets names both the option and the value.
 */
import { formatIPv4, formatIPv6, parseIPv4Into, parseIPv6Into } from "../wire/inany.ts";
import { CliError } from "./errors.ts";
import { LOG_SIZE_MIN } from "../log_outputs.ts";

// Linux PATH_MAX, including the terminating NUL: longer paths would fail in every system call anyway.
const PATH_MAX = 4096;
// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
const UNIX_PATH_MAX = 108;
// IFNAMSIZ, including the terminating NUL.
const IFNAMSIZ = 16;
// Longest MTU a frame of at most 65535 bytes (tun and qemu's length prefix) can carry behind a 14-byte header.
const MAX_MTU = 65535 - 14;
// A domain name in text, without the trailing dot (RFC 1035 limits the wire form to 255 bytes).
const MAX_DOMAIN = 253;
const MAX_LABEL = 63;
// Longest value shown in a message: enough to recognise it, short enough to keep the message on one line.
const SHOWN_MAX = 64;
const INT_MAX = 0x7fffffff;
// (uid_t)-1 means "unchanged" to setuid and friends, so the largest usable ID is one less.
const ID_MAX = 0xfffffffe;
// LOGIN_NAME_MAX: no user or group name in a real database is longer.
const NAME_MAX = 256;

/** A value as messages show it: quoted, control characters escaped (one line), long values cut short. */
export function shown(raw: string): string {
  const cut = raw.length > SHOWN_MAX ? `${raw.slice(0, SHOWN_MAX)}…` : raw;
  const escaped = cut.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return `'${escaped}'`;
}

/** A file system path: not empty, and short enough for the kernel. */
export function filePath(raw: string): string {
  if (raw === "") throw new CliError("empty path");
  if (Buffer.byteLength(raw) >= PATH_MAX) throw new CliError(`path longer than ${PATH_MAX - 1} bytes`);
  return raw;
}

/** A UNIX domain socket path: a file path that also fits sockaddr_un. */
export function socketPath(raw: string): string {
  filePath(raw);
  if (Buffer.byteLength(raw) >= UNIX_PATH_MAX) {
    throw new CliError(`${shown(raw)} is longer than ${UNIX_PATH_MAX - 1} bytes, the limit for a socket path`);
  }
  return raw;
}

/** --netns: a path, or a name (no '/') of a namespace that `ip netns` keeps under /run/netns. */
export function netnsPath(raw: string): string {
  if (raw === "" || raw === "." || raw === "..") throw new CliError(`${shown(raw)} is not a namespace name or path`);
  return filePath(raw.includes("/") ? raw : `/run/netns/${raw}`);
}

/** An interface name as the kernel accepts it: 1 to 15 bytes, not "." or "..", no '/', ':' or whitespace. */
export function interfaceName(raw: string): string {
  if (Buffer.byteLength(raw) >= IFNAMSIZ) throw new CliError(`${shown(raw)} is longer than ${IFNAMSIZ - 1} bytes`);
  if (raw === "" || raw === "." || raw === ".." || /[/:\s]/.test(raw)) {
    throw new CliError(`${shown(raw)} is not a valid interface name`);
  }
  return raw;
}

/** A decimal number from 0 to max; `what` names it in the message. */
function decimal(raw: string, max: number, what: string): number {
  if (!/^[0-9]+$/.test(raw)) throw new CliError(`${shown(raw)} is not a number`);
  const value = Number(raw);
  if (value > max) throw new CliError(`${shown(raw)} is out of range for ${what} (0-${max})`);
  return value;
}

/** --log-size: bytes, as strtoul reads them (decimal, 0x hex, 0 octal), at least passt's least. */
export function logSize(raw: string): number {
  const m = /^(?:(0[xX][0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(raw);
  const value = m === null ? NaN : m[1] !== undefined ? parseInt(m[1].slice(2), 16) : m[2] !== undefined ? parseInt(m[2], 8) : Number(m[3]);
  if (!Number.isSafeInteger(value)) throw new CliError(`${shown(raw)} is not a number of bytes`);
  if (value < LOG_SIZE_MIN) throw new CliError(`${shown(raw)} is less than the least log size, ${LOG_SIZE_MIN} bytes`);
  return value;
}

/** -m: the MTU, 0 (do not advertise one) up to 65521. */
export function mtu(raw: string): number {
  return decimal(raw, MAX_MTU, "an MTU");
}

/** --stats: whole seconds between two rows of event counts (0: none). */
export function statsDelay(raw: string): number {
  return decimal(raw, INT_MAX, "a number of seconds");
}

/** -F: an inherited file descriptor number. */
export function fdNumber(raw: string): number {
  return decimal(raw, INT_MAX, "a file descriptor");
}

/** Six bytes from "xx:xx:xx:xx:xx:xx" text (hex digits, either case), or undefined when it is not that. */
export function parseMacText(text: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) return undefined;
  return Uint8Array.from(text.split(":"), (octet) => parseInt(octet, 16));
}

/** -M, --ns-mac-addr: a unicast MAC address, returned in lowercase. */
export function macAddress(raw: string): string {
  const mac = parseMacText(raw);
  if (mac === undefined) throw new CliError(`${shown(raw)} is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  // The group bit: such an address cannot be the source of a frame or the address of an interface.
  if (mac[0] & 1) throw new CliError(`${shown(raw)} is a multicast MAC address`);
  if (mac.every((b) => b === 0)) throw new CliError(`${shown(raw)} is the all-zeros MAC address`);
  return raw.toLowerCase();
}

/** An IP address given on the command line, in canonical text. */
export interface IpAddress {
  readonly family: 4 | 6;
  /** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
  readonly text: string;
}

/** Kinds of address that most options refuse: none of them can stand for a single host on the link. */
export type AddressKind = "unspecified" | "loopback" | "multicast" | "broadcast";

/** Every refusable kind: an option refusing them all takes only an ordinary unicast address. */
export const SPECIAL_ADDRESSES: readonly AddressKind[] = ["unspecified", "loopback", "multicast", "broadcast"];

/** Parses IPv4 or IPv6 text (no brackets, no zone) into its family, bytes and canonical text. */
export function parseIpText(text: string): (IpAddress & { readonly bytes: Uint8Array }) | undefined {
  if (text.includes(":")) {
    const bytes = new Uint8Array(16);
    if (!parseIPv6Into(text, bytes, 0)) return undefined;
    return { family: 6, bytes, text: formatIPv6(bytes, 0) };
  }
  const bytes = new Uint8Array(4);
  if (!parseIPv4Into(text, bytes, 0)) return undefined;
  return { family: 4, bytes, text: formatIPv4(bytes, 0) };
}

/** The refused kind an address is, if any. */
function addressKind(family: 4 | 6, b: Uint8Array): AddressKind | undefined {
  if (family === 4) {
    if (b.every((x) => x === 0)) return "unspecified";
    if (b.every((x) => x === 255)) return "broadcast";
    if (b[0] === 127) return "loopback";
    if ((b[0] & 0xf0) === 224) return "multicast";
    return undefined;
  }
  if (b.every((x) => x === 0)) return "unspecified";
  if (b[0] === 0xff) return "multicast";
  if (b.subarray(0, 15).every((x) => x === 0) && b[15] === 1) return "loopback";
  return undefined;
}

const KIND_TEXT: Record<AddressKind, string> = {
  unspecified: "the unspecified address",
  loopback: "a loopback address",
  multicast: "a multicast address",
  broadcast: "the broadcast address",
};

/** Checks address text, refusing the given kinds and IPv4-mapped IPv6 (the IPv4 form must be used). */
function checkedAddress(raw: string, refused: readonly AddressKind[]): IpAddress {
  const parsed = parseIpText(raw);
  if (parsed === undefined) throw new CliError(`${shown(raw)} is not an IPv4 or IPv6 address`);
  const { family, bytes, text } = parsed;
  if (family === 6 && bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    throw new CliError(`${shown(raw)} is an IPv4-mapped IPv6 address: give the IPv4 address`);
  }
  const kind = addressKind(family, bytes);
  if (kind !== undefined && refused.includes(kind)) throw new CliError(`${shown(raw)} is ${KIND_TEXT[kind]}`);
  return { family, text };
}

/** A checker for an address option that refuses the given kinds of address. */
export function address(refused: readonly AddressKind[]): (raw: string) => IpAddress {
  return (raw) => checkedAddress(raw, refused);
}

/** A checker for an option that takes an address or the word "none". */
export function addressOrNone(refused: readonly AddressKind[]): (raw: string) => IpAddress | "none" {
  return (raw) => (raw === "none" ? "none" : checkedAddress(raw, refused));
}

/** -a: the guest's address with an optional prefix length. */
export interface GuestAddress extends IpAddress {
  readonly prefixLen?: number;
}

/** -a ADDR[/LEN]: a unicast, non-loopback address; LEN up to 32 (IPv4) or 128 (IPv6). */
export function guestAddress(raw: string): GuestAddress {
  const slash = raw.indexOf("/");
  const addr = checkedAddress(slash < 0 ? raw : raw.slice(0, slash), SPECIAL_ADDRESSES);
  if (slash < 0) return addr;
  const len = raw.slice(slash + 1);
  const max = addr.family === 4 ? 32 : 128;
  if (!/^[0-9]{1,3}$/.test(len) || Number(len) > max) {
    throw new CliError(`${shown(raw)} has a bad prefix length (0-${max} for IPv${addr.family})`);
  }
  return { ...addr, prefixLen: Number(len) };
}

/** -n: an IPv4 prefix length, given as a length (0-32) or as a dotted-quad netmask with contiguous ones. */
export function netmask(raw: string): number {
  if (/^[0-9]{1,2}$/.test(raw) && Number(raw) <= 32) return Number(raw);
  const mask = new Uint8Array(4);
  if (parseIPv4Into(raw, mask, 0)) {
    const bits = ((mask[0] << 24) | (mask[1] << 16) | (mask[2] << 8) | mask[3]) >>> 0;
    // The leading ones give the length; the mask is valid only if no other bit is set.
    const len = Math.clz32(~bits);
    if ((len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0) === bits) return len;
  }
  throw new CliError(`${shown(raw)} is not a prefix length (0-32) or a netmask`);
}

/** Checks a domain name: at most 253 bytes (plus an optional trailing dot), labels of 1 to 63 bytes, printable. */
export function isDomainName(text: string): boolean {
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name === "" || Buffer.byteLength(name) > MAX_DOMAIN || /[\s\x00-\x1f\x7f]/.test(name)) return false;
  return name.split(".").every((label) => label !== "" && Buffer.byteLength(label) <= MAX_LABEL);
}

/** --fqdn, -S: a domain name. */
export function domainName(raw: string): string {
  if (!isDomainName(raw)) throw new CliError(`${shown(raw)} is not a valid domain name`);
  return raw;
}

/** -S: a space-separated list of search domains (pasta(1): "-S a.example b.example"), or "none" for no search list. */
export function searchDomains(raw: string): readonly string[] | "none" {
  if (raw === "none") return raw;
  const names = raw.split(/[ \t]+/).filter((name) => name !== "");
  if (names.length === 0) throw new CliError(`${shown(raw)} is not a valid domain name`);
  for (const name of names) domainName(name);
  return names;
}

/** -H: a host name for DHCP and the namespace: 1 to 253 bytes, no whitespace or control characters. */
export function hostName(raw: string): string {
  if (raw === "" || Buffer.byteLength(raw) > MAX_DOMAIN || /[\s\x00-\x1f\x7f]/.test(raw)) {
    throw new CliError(`${shown(raw)} is not a valid host name`);
  }
  return raw;
}

/** A user or group: a numeric ID, or a name to look up when the process changes identity. */
export type Identity = number | string;

/** --runas: the user (and group) to run as. */
export interface RunAs {
  readonly user: Identity;
  readonly group?: Identity;
}

/** One side of --runas: a decimal ID, or a name without ':', whitespace or control characters. */
function identity(part: string, raw: string): Identity {
  if (/^[0-9]+$/.test(part)) {
    const id = Number(part);
    if (id > ID_MAX) throw new CliError(`${shown(raw)} has an ID out of range (0-${ID_MAX})`);
    return id;
  }
  if (part === "" || part.length > NAME_MAX || /[:\s\x00-\x1f\x7f]/.test(part)) {
    throw new CliError(`${shown(raw)} is not UID[:GID] or USER[:GROUP]`);
  }
  return part;
}

/** --runas UID[:GID] or USER[:GROUP], names and numbers mixed freely. */
export function runAs(raw: string): RunAs {
  const colon = raw.indexOf(":");
  if (colon < 0) return { user: identity(raw, raw) };
  return { user: identity(raw.slice(0, colon), raw), group: identity(raw.slice(colon + 1), raw) };
}

/** -t/-u/-T/-U: a port forwarding specification, kept as text; its grammar is checked when rules are built. */
export function portSpec(raw: string): string {
  if (raw === "") throw new CliError("empty port specification");
  return raw;
}

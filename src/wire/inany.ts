/**
 * "inany" addresses: one 16-byte form for IPv4 and IPv6 alike.
 *
 * IPv6 addresses are stored as they are; IPv4 addresses as IPv4-mapped IPv6 (::ffff:a.b.c.d). Flows, forwarding
 * rules and sockaddrs all use this form, so code that does not care about the family never branches on it.
 * Bytes are in network order, as on the wire.
 */

/** Size of an inany address in bytes. */
export const INANY_LEN = 16;

/** Parses dotted-quad IPv4 text into 4 bytes at out[off]; false when it is not a valid address. */
export function parseIPv4Into(text: string, out: Uint8Array, off: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p)) return false;
    const v = Number(p);
    if (v > 255 || (p.length > 1 && p[0] === "0")) return false;
    out[off + i] = v;
  }
  return true;
}

/** Parses IPv6 text (with "::" and an optional trailing dotted quad) into 16 bytes at out[off]. */
export function parseIPv6Into(text: string, out: Uint8Array, off: number): boolean {
  if (text.length < 2 || text.length > 45) return false;
  const words: number[] = [];
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const parseHalf = (s: string, isLast: boolean): number[] | null => {
    if (s === "") return [];
    const groups = s.split(":");
    const res: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (isLast && i === groups.length - 1 && g.includes(".")) {
        const v4 = new Uint8Array(4);
        if (!parseIPv4Into(g, v4, 0)) return null;
        res.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        res.push(parseInt(g, 16));
      }
    }
    return res;
  };
  const head = parseHalf(halves[0], halves.length === 1);
  if (!head) return false;
  if (halves.length === 1) {
    if (head.length !== 8) return false;
    words.push(...head);
  } else {
    const tail = parseHalf(halves[1], true);
    if (!tail || head.length + tail.length > 7) return false;
    words.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  }
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = words[i] >> 8;
    out[off + 2 * i + 1] = words[i] & 0xff;
  }
  return true;
}

/** Writes the IPv4-mapped inany form of 4 IPv4 bytes taken from src[srcOff] into out[off]. */
export function inanyFromIPv4(out: Uint8Array, off: number, src: Uint8Array, srcOff: number): void {
  out.fill(0, off, off + 10);
  out[off + 10] = 0xff;
  out[off + 11] = 0xff;
  out[off + 12] = src[srcOff];
  out[off + 13] = src[srcOff + 1];
  out[off + 14] = src[srcOff + 2];
  out[off + 15] = src[srcOff + 3];
}

/** True when the inany at buf[off] is an IPv4-mapped address. */
export function inanyIsV4(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 10] === 0xff && buf[off + 11] === 0xff;
}

/** Parses IPv4 or IPv6 text (IPv6 optionally in brackets) into an inany at out[off]; false if invalid. */
export function inanyParseInto(text: string, out: Uint8Array, off: number): boolean {
  const t = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (t.includes(":")) return parseIPv6Into(t, out, off);
  const v4 = new Uint8Array(4);
  if (!parseIPv4Into(t, v4, 0)) return false;
  inanyFromIPv4(out, off, v4, 0);
  return true;
}

/** Parses address text into a new 16-byte inany, or null when it is not an address. */
export function inanyParse(text: string): Uint8Array | null {
  const out = new Uint8Array(INANY_LEN);
  return inanyParseInto(text, out, 0) ? out : null;
}

/** Formats 4 IPv4 bytes at buf[off] as dotted-quad text. */
export function formatIPv4(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** Formats 16 IPv6 bytes at buf[off] in RFC 5952 form (longest zero run compressed, lowercase). */
export function formatIPv6(buf: Uint8Array, off: number): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number) => w.slice(a, b).map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Formats an inany as text: dotted quad for IPv4-mapped addresses, IPv6 text otherwise. */
export function inanyToText(buf: Uint8Array, off: number): string {
  return inanyIsV4(buf, off) ? formatIPv4(buf, off + 12) : formatIPv6(buf, off);
}

/** True when two inany addresses are equal. */
export function inanyEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < INANY_LEN; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

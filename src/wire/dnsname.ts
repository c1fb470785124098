/**
 * DNS names in wire format (RFC 1035 §3.1): a sequence of length-prefixed labels ending with a zero byte.
 *
 * Several L2 services carry them: DHCP option 119 (search list, RFC 3397) with compression pointers relative to
 * the start of the option data; DHCPv6 option 24 and the NDP DNSSL option (RFC 8106), uncompressed; the FQDN
 * options (DHCP 81, DHCPv6 39), uncompressed and possibly partial (no final zero). Control path: allocation is fine.
 *
 * Labels are 1-63 bytes of ASCII and a name is at most 255 bytes on the wire. Decoding only follows pointers that go
 * strictly backwards, which rules out loops.
 */

/** Longest label. */
const MAX_LABEL = 63;
/** Longest name on the wire, final zero included. */
const MAX_NAME = 255;
/** Largest offset a compression pointer can hold. */
const MAX_POINTER = 0x3fff;

/** Splits a name into its labels (an empty list for the root); null when a label is empty, too long or not ASCII. */
function labelsOf(name: string): string[] | null {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  if (trimmed === "") return [];
  const labels = trimmed.split(".");
  let wire = 1;
  for (const l of labels) {
    if (l.length === 0 || l.length > MAX_LABEL || !/^[\x21-\x7e]+$/.test(l)) return null;
    wire += l.length + 1;
  }
  return wire > MAX_NAME ? null : labels;
}

/** Appends one label (length byte, then the characters) to out. */
function pushLabel(out: number[], label: string): void {
  out.push(label.length);
  for (let i = 0; i < label.length; i++) out.push(label.charCodeAt(i));
}

/** Encodes one name without compression, final zero included; null when the name is invalid. */
export function dnsNameEncode(name: string): Uint8Array | null {
  return dnsNamesEncode([name], false);
}

/**
 * Encodes a list of names back to back; with compress, a name whose tail was already written ends in a pointer to
 * it (offsets relative to the start of the result). Null when any name is invalid.
 */
export function dnsNamesEncode(names: string[], compress: boolean): Uint8Array | null {
  const out: number[] = [];
  const suffixAt = new Map<string, number>();
  for (const name of names) {
    const labels = labelsOf(name);
    if (labels === null) return null;
    const keys = labels.map((_, i) => labels.slice(i).join(".").toLowerCase());
    let shared = labels.length;
    if (compress) {
      for (let i = 0; i < labels.length; i++) {
        if (suffixAt.has(keys[i])) {
          shared = i;
          break;
        }
      }
    }
    for (let i = 0; i < shared; i++) {
      if (compress && out.length <= MAX_POINTER && !suffixAt.has(keys[i])) suffixAt.set(keys[i], out.length);
      pushLabel(out, labels[i]);
    }
    if (shared < labels.length) {
      const target = suffixAt.get(keys[shared]) ?? 0;
      out.push(0xc0 | (target >>> 8), target & 0xff);
    } else {
      out.push(0);
    }
  }
  return new Uint8Array(out);
}

/** Reads one name starting at pos (start = where pointers count from); returns [name, next pos] or null. */
function readName(
  buf: Uint8Array, start: number, pos: number, end: number, compress: boolean, partialOk: boolean,
): [string, number] | null {
  const labels: string[] = [];
  let wire = 1;
  let next = -1;
  let limit = pos;
  for (;;) {
    if (pos >= end) return partialOk && next < 0 ? [labels.join("."), pos] : null;
    const b = buf[pos];
    if (b === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((b & 0xc0) === 0xc0) {
      if (!compress || pos + 2 > end) return null;
      const target = start + (((b & 0x3f) << 8) | buf[pos + 1]);
      if (target >= limit) return null;
      if (next < 0) next = pos + 2;
      limit = target;
      pos = target;
      continue;
    }
    if (b > MAX_LABEL || pos + 1 + b > end) return null;
    wire += b + 1;
    if (wire > MAX_NAME) return null;
    labels.push(String.fromCharCode(...buf.subarray(pos + 1, pos + 1 + b)));
    pos += 1 + b;
  }
  return [labels.join("."), next];
}

/**
 * Decodes names packed in len bytes at buf[off] (pointers allowed with compress); root names, such as the
 * zero padding of an NDP DNSSL option, are skipped. Null when anything is malformed.
 */
export function dnsNamesDecode(buf: Uint8Array, off: number, len: number, compress: boolean): string[] | null {
  if (off < 0 || len < 0 || off + len > buf.length) return null;
  const names: string[] = [];
  const end = off + len;
  let pos = off;
  while (pos < end) {
    const r = readName(buf, off, pos, end, compress, false);
    if (r === null) return null;
    if (r[0] !== "") names.push(r[0]);
    pos = r[1];
  }
  return names;
}

/** Decodes the single uncompressed name filling len bytes at buf[off], which may lack its final zero (partial). */
export function dnsNameDecode(buf: Uint8Array, off: number, len: number): string | null {
  if (off < 0 || len < 0 || off + len > buf.length) return null;
  const r = readName(buf, off, off, off + len, false, true);
  return r !== null && r[1] === off + len ? r[0] : null;
}

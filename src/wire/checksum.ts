/**
 * The Internet checksum (RFC 1071): the ones'-complement sum of 16-bit big-endian words, complemented.
 *
 * Speed comes from two properties of ones'-complement arithmetic. It is commutative and 2^16 ≡ 1 (mod 0xffff), so
 * 32-bit words can be summed into wide accumulators and folded once at the end. It is byte-order independent: a
 * sum taken over little-endian words is the byte swap of the big-endian sum, so the bulk is summed through native
 * Uint32Array loads (little-endian on every platform Bun runs on) and swapped once. The Uint32Array needs 4-byte alignment, so up to 3 leading
 * bytes are summed one at a time; when their count is odd, the word loads straddle the big-endian word pairs and
 * already carry the right byte weights, so no swap is needed. JS numbers are exact to 2^53: accumulators add u32
 * values for at most 2^18 steps each before folding.
 *
 * csumPartial returns a folded 16-bit sum that can seed the next call, as long as every piece but the last has an
 * even length. Sums are 0 only when every summed byte is 0, like the classic end-around-carry loop.
 */
import { rd16 } from "./bytes.ts";
import { IP4_DST, IP4_PROTO, IP4_SRC } from "./ipv4.ts";
import { IP6_DST, IP6_SRC } from "./ipv6.ts";

/** Below this length the word setup costs more than it saves. */
const SHORT = 64;
/** Words per accumulation chunk: 4 accumulators × 2^18 additions of < 2^32 stay below 2^53 together. */
const CHUNK_WORDS = 1 << 20;

const wordViews = new WeakMap<ArrayBufferLike, Uint32Array>();
let lastBuffer: ArrayBufferLike | null = null;
let lastWords: Uint32Array = new Uint32Array(0);

/**
 * The Uint32Array over a whole ArrayBuffer, made once per buffer (hot paths reuse a few long-lived buffers), and
 * again if a growable buffer has grown since.
 */
function wordsOf(ab: ArrayBufferLike): Uint32Array {
  const words = ab.byteLength >>> 2;
  if (ab === lastBuffer && lastWords.length === words) return lastWords;
  let w = wordViews.get(ab);
  if (w === undefined || w.length !== words) {
    w = new Uint32Array(ab, 0, words);
    wordViews.set(ab, w);
  }
  lastBuffer = ab;
  lastWords = w;
  return w;
}

/** Folds a non-negative sum (below 2^53) to 16 bits with end-around carry. */
export function csumFold(sum: number): number {
  while (sum > 0xffffffff) sum = (sum % 0x100000000) + Math.floor(sum / 0x100000000);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Complements a sum into the value that goes into a checksum field. */
export function csumFinish(sum: number): number {
  return ~csumFold(sum) & 0xffff;
}

/** Sums len bytes at buf[off] as big-endian 16-bit words onto initial; returns the folded 16-bit sum. */
export function csumPartial(buf: Uint8Array, off: number, len: number, initial: number): number {
  let end = off + len;
  if (end > buf.length) end = buf.length;
  let sum = initial;
  let i = off;
  if (end - i < SHORT) {
    for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
    if (i < end) sum += buf[i] << 8;
    return csumFold(sum);
  }
  const head = (4 - ((buf.byteOffset + i) & 3)) & 3;
  for (let k = 0; k < head; k++) sum += k & 1 ? buf[i + k] : buf[i + k] << 8;
  i += head;
  let words = (end - i) >>> 2;
  const w = wordsOf(buf.buffer);
  let p = (buf.byteOffset + i) >>> 2;
  i += words << 2;
  let le = 0;
  while (words > 0) {
    const n = words < CHUNK_WORDS ? words : CHUNK_WORDS;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    const stop4 = p + (n & ~3);
    const stop = p + n;
    for (; p < stop4; p += 4) {
      a0 += w[p];
      a1 += w[p + 1];
      a2 += w[p + 2];
      a3 += w[p + 3];
    }
    for (; p < stop; p++) a0 += w[p];
    le = csumFold(le + csumFold(a0 + a1) + csumFold(a2 + a3));
    words -= n;
  }
  sum += head & 1 ? le : ((le & 0xff) << 8) | (le >>> 8);
  for (; i < end; i++) sum += (i - off) & 1 ? buf[i] : buf[i] << 8;
  return csumFold(sum);
}

/** Unfolded sum of the IPv4 pseudo-header: 4-byte source and destination, protocol, L4 length. */
export function pseudoHeader4(
  src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, len: number,
): number {
  return rd16(src, srcOff) + rd16(src, srcOff + 2) + rd16(dst, dstOff) + rd16(dst, dstOff + 2) + proto + len;
}

/** Unfolded sum of the IPv6 pseudo-header: 16-byte source and destination, 32-bit L4 length, next header. */
export function pseudoHeader6(
  src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, proto: number, len: number,
): number {
  let sum = proto + (len & 0xffff) + Math.floor(len / 65536);
  for (let k = 0; k < 16; k += 2) sum += rd16(src, srcOff + k) + rd16(dst, dstOff + k);
  return sum;
}

/**
 * Checksum of an L4 segment behind the IPv4 header at buf[ipOff], over the bytes as they are: zero the checksum
 * field first to compute one, or leave it in place to verify (a valid segment gives 0).
 */
export function l4Checksum4(buf: Uint8Array, ipOff: number, l4Off: number, l4Len: number): number {
  const ph = pseudoHeader4(buf, ipOff + IP4_SRC, buf, ipOff + IP4_DST, buf[ipOff + IP4_PROTO], l4Len);
  return csumFinish(csumPartial(buf, l4Off, l4Len, ph));
}

/** Like l4Checksum4 behind the IPv6 header at buf[ipOff]; proto is the upper-layer protocol after extension headers. */
export function l4Checksum6(buf: Uint8Array, ipOff: number, proto: number, l4Off: number, l4Len: number): number {
  const ph = pseudoHeader6(buf, ipOff + IP6_SRC, buf, ipOff + IP6_DST, proto, l4Len);
  return csumFinish(csumPartial(buf, l4Off, l4Len, ph));
}

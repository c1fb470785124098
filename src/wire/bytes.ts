/**
 * Big-endian field access on a caller's Uint8Array.
 *
 * Plain shifts and masks rather than a DataView: a DataView per packet would be an allocation, and these small
 * functions are inlined by the JIT. Callers check bounds first (every parser validates lengths before reading).
 */

/** Reads a big-endian 16-bit value at buf[off]. */
export function rd16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

/** Reads a big-endian 32-bit unsigned value at buf[off]. */
export function rd32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

/** Writes a big-endian 16-bit value at buf[off]. */
export function wr16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 8;
  buf[off + 1] = v;
}

/** Writes a big-endian 32-bit value at buf[off]. */
export function wr32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = v >>> 16;
  buf[off + 2] = v >>> 8;
  buf[off + 3] = v;
}

/** Copies len bytes from src[srcOff] to dst[dstOff] without creating a subarray. */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i];
}

/** True when len bytes at a[aOff] and b[bOff] are equal. */
export function bytesEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** Concatenates byte arrays into a new one (control path). */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

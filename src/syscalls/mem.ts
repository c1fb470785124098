/**
 * Pinned memory for the kernel to read and write: preallocated once, address computed once.
 *
 * bun:ffi computes a typed array's address in 11-13 ns per ptr() call and a raw address kept as a number does
 * not keep the array alive; a Mem holds both, so hot paths pass `mem.addr + offset` with no call and no
 * allocation, and the memory lives as long as the Mem.
 */
import { addressOf, libc } from "./libc.ts";

/**
 * Copies len bytes between raw addresses (memmove: the ranges may overlap). For payloads on hot paths: no view is
 * made, and the C library copies at memory speed where a JS byte loop manages a fraction of it.
 */
export function copyMem(dst: number, src: number, len: number): void {
  libc.memmove(dst, src, len);
}

/** A preallocated buffer with its address and typed views over the same bytes. */
export class Mem {
  /** The bytes. */
  readonly bytes: Uint8Array;
  /** A DataView for mixed-width fields. */
  readonly view: DataView;
  /** 32-bit words (native endianness), for structs written as u32 halves. */
  readonly u32: Uint32Array;
  /** The address of bytes[0]. */
  readonly addr: number;

  constructor(size: number) {
    const rounded = Math.max(8, (size + 7) & ~7);
    this.bytes = new Uint8Array(rounded);
    this.view = new DataView(this.bytes.buffer);
    this.u32 = new Uint32Array(this.bytes.buffer);
    this.addr = addressOf(this.bytes);
  }

  /** Writes a 64-bit value (an address or a size below 2^53) as two u32 halves, little-endian. */
  setU64(off: number, v: number): void {
    this.view.setUint32(off, v >>> 0, true);
    this.view.setUint32(off + 4, Math.floor(v / 4294967296) >>> 0, true);
  }

  /** Reads a 64-bit value below 2^53 written as two u32 halves, little-endian. */
  getU64(off: number): number {
    return this.view.getUint32(off, true) + this.view.getUint32(off + 4, true) * 4294967296;
  }
}

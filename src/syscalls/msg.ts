/**
 * Preallocated vectors of iovecs and mmsghdrs for batched I/O (writev, recvmmsg, sendmmsg).
 *
 * The kernel reads these structs by address, so they live in Mem and are filled in place: setting up a batch of
 * 32 datagrams touches a few words and allocates nothing.
 */
import { Mem } from "./mem.ts";
import { IOVEC, MMSGHDR, MSGHDR, SOCKADDR } from "./structs.ts";

/** An array of struct iovec. */
export class IovecArray {
  /** Capacity in iovecs. */
  readonly capacity: number;
  /** The raw memory. */
  readonly mem: Mem;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.mem = new Mem(capacity * IOVEC.size);
  }

  /** Points iovec i at len bytes at an address. */
  set(i: number, addr: number, len: number): void {
    const off = i * IOVEC.size;
    this.mem.setU64(off + IOVEC.base, addr);
    this.mem.setU64(off + IOVEC.len, len);
  }

  /** The length field of iovec i. */
  length(i: number): number {
    return this.mem.getU64(i * IOVEC.size + IOVEC.len);
  }

  /** The address of iovec i, to pass to readv/writev or a msghdr. */
  addressOf(i: number): number {
    return this.mem.addr + i * IOVEC.size;
  }
}

/** An array of struct mmsghdr, each with its own sockaddr slot, over a shared IovecArray. */
export class MmsgArray {
  /** Capacity in messages. */
  readonly capacity: number;
  /** The mmsghdr array. */
  readonly mem: Mem;
  /** Per-message sockaddr storage. */
  readonly names: Mem;
  /** The iovecs the messages point into. */
  readonly iov: IovecArray;

  constructor(capacity: number, iovCapacity = capacity) {
    this.capacity = capacity;
    this.mem = new Mem(capacity * MMSGHDR.size);
    this.names = new Mem(capacity * SOCKADDR.storageSize);
    this.iov = new IovecArray(iovCapacity);
  }

  /**
   * Sets message i to use iovecs [firstIov, firstIov + iovCount) and, when nameLen > 0, its own sockaddr slot
   * of nameLen bytes (for sendmmsg: the destination written there; for recvmmsg: room for the source).
   */
  setMessage(i: number, firstIov: number, iovCount: number, nameLen: number): void {
    const off = i * MMSGHDR.size + MMSGHDR.hdr;
    const m = this.mem;
    m.setU64(off + MSGHDR.name, nameLen > 0 ? this.nameAddress(i) : 0);
    m.view.setUint32(off + MSGHDR.namelen, nameLen, true);
    m.setU64(off + MSGHDR.iov, this.iov.addressOf(firstIov));
    m.setU64(off + MSGHDR.iovlen, iovCount);
    m.setU64(off + MSGHDR.control, 0);
    m.setU64(off + MSGHDR.controllen, 0);
    m.view.setInt32(off + MSGHDR.flags, 0, true);
    m.view.setUint32(i * MMSGHDR.size + MMSGHDR.len, 0, true);
  }

  /** Bytes transferred for message i by the last recvmmsg/sendmmsg. */
  messageLength(i: number): number {
    return this.mem.view.getUint32(i * MMSGHDR.size + MMSGHDR.len, true);
  }

  /** The sockaddr length the kernel left in message i's header. */
  nameLength(i: number): number {
    return this.mem.view.getUint32(i * MMSGHDR.size + MSGHDR.namelen, true);
  }

  /** Byte offset of message i's sockaddr slot within names. */
  nameOffset(i: number): number {
    return i * SOCKADDR.storageSize;
  }

  /** The address of message i's sockaddr slot. */
  nameAddress(i: number): number {
    return this.names.addr + i * SOCKADDR.storageSize;
  }
}

/**
 * Opening a tap device: /dev/net/tun with TUNSETIFF (IFF_TAP | IFF_NO_PI), in the calling thread's network
 * namespace. The namespace thread calls this inside the target namespace and passes the fd to the main process.
 */
import { IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, O_CLOEXEC, O_NONBLOCK, O_RDWR, TUNSETIFF } from "../syscalls/constants.ts";
import { SyscallError } from "../syscalls/errno.ts";
import { close, open } from "../syscalls/io.ts";
import { ioctlPtr } from "../syscalls/process.ts";
import { IFREQ } from "../syscalls/structs.ts";

/** Longest interface name (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

/**
 * Opens (creating if needed) the tap interface `name`; returns its non-blocking fd. With vnetHdr every frame
 * read or written is preceded by a struct virtio_net_hdr (offloads: doc/tap-l2.md §3). Throws with the reason.
 */
export function openTap(name: string, vnetHdr = false): number {
  const nameBytes = new TextEncoder().encode(name);
  if (nameBytes.length === 0 || nameBytes.length > IFNAME_MAX) throw new RangeError(`interface name must be 1 to ${IFNAME_MAX} bytes: '${name}'`);
  const fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  const ifr = new Uint8Array(IFREQ.size);
  ifr.set(nameBytes, IFREQ.name);
  new DataView(ifr.buffer).setUint16(IFREQ.flags, IFF_TAP | IFF_NO_PI | (vnetHdr ? IFF_VNET_HDR : 0), true);
  const r = ioctlPtr(fd, TUNSETIFF, ifr);
  if (r < 0) {
    close(fd);
    throw new SyscallError("ioctl", -r, `TUNSETIFF ${name}`);
  }
  return fd;
}

/**
 * A plain UDP socket for tests: the host-side peer of orzo's UDP flows (servers, clients, senders to listeners),
 * driven synchronously with bounded waits, so it can be used inside inPrivateNetns and in fixture processes.
 */
import { AF_INET, AF_INET6, MSG_DONTWAIT, POLLIN, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK } from "../../src/syscalls/constants.ts";
import { Errno } from "../../src/syscalls/errno.ts";
import { close, recvfrom, sendto } from "../../src/syscalls/io.ts";
import { Mem } from "../../src/syscalls/mem.ts";
import { pollOne } from "../../src/syscalls/poll.ts";
import { decodeSockaddr, encodeSockaddr, type SockAddr } from "../../src/syscalls/sockaddr.ts";
import { bind, connect, getsockname, socket } from "../../src/syscalls/socket.ts";
import { SOCKADDR } from "../../src/syscalls/structs.ts";

/** A received datagram: its bytes and where it came from. */
export interface Received {
  data: Uint8Array;
  from: { address: string; port: number };
}

/** A non-blocking UDP socket bound to an address and port (0: the kernel picks). */
export class UdpPeer {
  readonly fd: number;
  /** The bound port. */
  readonly port: number;
  private readonly buf = new Mem(65536);
  private readonly name = new Mem(SOCKADDR.storageSize + 8);

  constructor(readonly address: string, port = 0) {
    const v6 = address.includes(":");
    this.fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bind(this.fd, v6 ? { family: "ipv6", address, port } : { family: "ipv4", address, port });
    this.port = (getsockname(this.fd) as { port: number }).port;
  }

  /** Connects to a peer (then only its datagrams arrive); returns 0 or -errno. */
  connect(address: string, port: number): number {
    return connect(this.fd, address.includes(":") ? { family: "ipv6", address, port } : { family: "ipv4", address, port });
  }

  /** Sends a datagram; returns the count or -errno. */
  sendTo(address: string, port: number, data: Uint8Array): number {
    const sa: SockAddr = address.includes(":") ? { family: "ipv6", address, port } : { family: "ipv4", address, port };
    const len = encodeSockaddr(sa, this.name, 0);
    this.buf.bytes.set(data, 0);
    return sendto(this.fd, this.buf.addr, data.length, MSG_DONTWAIT, this.name.addr, len);
  }

  /** Sends a datagram on a connected socket; returns the count or -errno. */
  send(data: Uint8Array): number {
    this.buf.bytes.set(data, 0);
    return sendto(this.fd, this.buf.addr, data.length, MSG_DONTWAIT, 0, 0);
  }

  /** Receives one datagram, waiting up to timeoutMs; null on timeout (an error is returned as -errno). */
  recv(timeoutMs: number): Received | number | null {
    const r = this.tryRecv();
    if (r !== null || pollOne(this.fd, POLLIN, timeoutMs) <= 0) return r;
    return this.tryRecv();
  }

  /** Receives one datagram if one is queued: null when none is, -errno on an error. */
  tryRecv(): Received | number | null {
    this.name.view.setUint32(SOCKADDR.storageSize, SOCKADDR.storageSize, true);
    const n = recvfrom(this.fd, this.buf.addr, 65536, MSG_DONTWAIT, this.name.addr, this.name.addr + SOCKADDR.storageSize);
    if (n === -Errno.EAGAIN) return null;
    if (n < 0) return n;
    const sa = decodeSockaddr(this.name, 0, this.name.view.getUint32(SOCKADDR.storageSize, true)) as { address: string; port: number };
    return { data: this.buf.bytes.slice(0, n), from: { address: sa.address.replace(/^::ffff:/, ""), port: sa.port } };
  }

  /** Closes the socket. */
  close(): void {
    close(this.fd);
  }
}

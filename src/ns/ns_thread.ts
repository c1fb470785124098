/**
 * The main thread's side of the namespace thread (ns_worker.ts): start it, wait until it is in the target
 * namespace, then ask it for fds made there. Requests are synchronous at start-up and for the occasional
 * socket; socket pools refill asynchronously, their replies read when the socket pair turns readable in the
 * event loop (EpollType.NS_AGENT).
 */
import { AF_UNIX, MSG_DONTWAIT, MSG_NOSIGNAL, SOCK_CLOEXEC, SOCK_SEQPACKET, SOL_SOCKET } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { close, recv, send } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { setsockoptBytes, socketpair } from "../syscalls/socket.ts";
import { log } from "../log.ts";
import type { NsReply, NsRequest, NsStart, NsTarget } from "./ns_protocol.ts";

const SO_RCVTIMEO = 20;
/** How long the main thread waits for the namespace thread to answer, at most. */
const NS_TIMEOUT_MS = 10_000;
/** Largest request or reply. */
const MESSAGE_MAX = 16 * 1024;

/**
 * Where the namespace thread's code is: inside the executable (build.ts embeds it as a second entry point, named
 * relative to src/, where main.ts is), or next to this file when run from source. In the executable,
 * import.meta.url still names the source file, which need not exist where the executable runs.
 */
function workerEntry(): string {
  return Bun.main.startsWith("/$bunfs/") ? "./ns/ns_worker.ts" : new URL("./ns_worker.ts", import.meta.url).href;
}

/** Raised when the namespace thread fails, answers with an error, or does not answer in time. */
export class NsThreadError extends Error {
  override name = "NsThreadError";
}

type Request = NsRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

/** A running namespace thread. */
export class NamespaceThread {
  /** Our end of the socket pair: register it in the loop to receive asynchronous replies. */
  readonly sock: number;
  private readonly worker: Worker;
  private readonly buf = new Mem(MESSAGE_MAX);
  /** Asynchronous requests waiting for their reply, by id. */
  private readonly awaiting = new Map<number, { op: string; done: (result: number[] | NsThreadError) => void }>();
  private nextId = 1;
  private hungUp = false;

  private constructor(sock: number, worker: Worker) {
    this.sock = sock;
    this.worker = worker;
  }

  /** Starts the thread and waits until it is in its namespace; throws NsThreadError with its reason if not. */
  static start(target: NsTarget): NamespaceThread {
    return NamespaceThread.launch(target).ready();
  }

  /** Starts the thread without waiting: the caller does other start-up work meanwhile, then calls ready(). */
  static launch(target: NsTarget): { ready: () => NamespaceThread } {
    const [ours, theirs] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    const timeout = new Uint8Array(16);
    new DataView(timeout.buffer).setUint32(0, NS_TIMEOUT_MS / 1000, true);
    setsockoptBytes(ours, SOL_SOCKET, SO_RCVTIMEO, timeout);
    const worker = new Worker(workerEntry());
    worker.postMessage({ sock: theirs, target } satisfies NsStart);
    const t = new NamespaceThread(ours, worker);
    return {
      ready: () => {
        const first = t.receive();
        if (!first.ok) {
          t.close();
          throw new NsThreadError(`the namespace thread could not enter its namespace: ${first.error}`);
        }
        return t;
      },
    };
  }

  /** Sends a request and waits for its reply; returns the fds it made. Throws NsThreadError. */
  request(req: Request): number[] {
    const id = this.send(req);
    for (;;) {
      const msg = this.sort(this.receive());
      if (!msg) continue;
      if (msg.id !== id) {
        if (msg.ok) for (const fd of msg.fds) close(fd);
        continue;
      }
      if (!msg.ok) throw new NsThreadError(`${req.op}: ${msg.error}`);
      return [...msg.fds];
    }
  }

  /**
   * Sends a request without waiting: done gets the fds, or the error, once the reply arrives (read by
   * takeReplies when the socket is readable, or while a later request waits for its own reply).
   */
  requestAsync(req: Request, done: (result: number[] | NsThreadError) => void): void {
    this.awaiting.set(this.send(req), { op: req.op, done });
  }

  /** Opens the tap interface in the namespace; returns its fd. */
  openTap(ifname: string, vnetHdr = false): number {
    return this.one(this.request({ op: "tap", ifname, vnetHdr }));
  }

  /** Makes a socket in the namespace; returns its fd. */
  socket(domain: number, type: number, protocol: number): number {
    return this.one(this.request({ op: "socket", domain, type, protocol }));
  }

  /** Makes up to 16 sockets of one kind in the namespace at once (socket pools); returns their fds. */
  sockets(domain: number, type: number, protocol: number, count: number): number[] {
    return this.request({ op: "socket", domain, type, protocol, count });
  }

  /** As sockets(), without waiting: done gets the fds (or the error) when they arrive. */
  socketsAsync(domain: number, type: number, protocol: number, count: number, done: (result: number[] | NsThreadError) => void): void {
    this.requestAsync({ op: "socket", domain, type, protocol, count }, done);
  }

  /** Opens a file as seen from the namespace (e.g. /proc/net/tcp); returns its fd. */
  open(path: string, flags: number): number {
    return this.one(this.request({ op: "open", path, flags }));
  }

  /** Writes a file from inside the namespace (e.g. a sysctl under /proc/sys/net). */
  writeFile(path: string, text: string): void {
    this.request({ op: "write", path, text });
  }

  /** Handles the replies that arrived so far; false once the thread hung up. */
  takeReplies(): boolean {
    while (!this.hungUp) {
      const n = recv(this.sock, this.buf.addr, MESSAGE_MAX, MSG_DONTWAIT);
      if (n === -Errno.EAGAIN) return true;
      if (n <= 0) {
        this.hungUp = true;
        break;
      }
      // A reply nobody waits for any more (its request failed on our side): its fds have no owner.
      const msg = this.sort(this.decode(n));
      if (msg?.ok) for (const fd of msg.fds) close(fd);
    }
    return false;
  }

  /** Hangs up: the thread ends. */
  close(): void {
    close(this.sock);
    this.worker.unref();
  }

  private send(req: Request): number {
    const id = this.nextId++;
    const bytes = new TextEncoder().encode(JSON.stringify({ ...req, id }));
    this.buf.bytes.set(bytes);
    if (send(this.sock, this.buf.addr, bytes.length, MSG_NOSIGNAL) < 0) throw new NsThreadError(`${req.op}: the namespace thread is gone`);
    return id;
  }

  /** Replies to asynchronous requests go to their callback; returns any other reply. */
  private sort(msg: NsReply): NsReply | undefined {
    const waiter = this.awaiting.get(msg.id);
    if (!waiter) return msg;
    this.awaiting.delete(msg.id);
    // The callback may run inside another caller's request(): its failure must not become that caller's.
    try {
      waiter.done(msg.ok ? [...msg.fds] : new NsThreadError(`${waiter.op}: ${msg.error}`));
    } catch (e) {
      log.error(`namespace thread: handling the reply to ${waiter.op}: ${(e as Error).message}`);
    }
    return undefined;
  }

  private receive(): NsReply {
    let n = recv(this.sock, this.buf.addr, MESSAGE_MAX, 0);
    // A signal (the profiler's, a SIGCHLD) interrupts the blocking receive; that is not the thread failing.
    while (n === -Errno.EINTR) n = recv(this.sock, this.buf.addr, MESSAGE_MAX, 0);
    if (n === 0) throw new NsThreadError("the namespace thread ended");
    if (n < 0) {
      throw new NsThreadError(n === -Errno.EAGAIN ? `the namespace thread did not answer within ${NS_TIMEOUT_MS} ms` : `receiving from the namespace thread: errno ${-n}`);
    }
    return this.decode(n);
  }

  private decode(n: number): NsReply {
    return JSON.parse(new TextDecoder().decode(this.buf.bytes.subarray(0, n))) as NsReply;
  }

  private one(fds: number[]): number {
    if (fds.length !== 1) {
      for (const fd of fds) close(fd);
      throw new NsThreadError(`expected one descriptor from the namespace thread, got ${fds.length}`);
    }
    return fds[0];
  }
}

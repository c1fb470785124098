/**
 * The namespace thread's code (a Bun Worker; ns_thread.ts starts it): it enters the target network namespace
 * once, stays there for the whole run, and makes what only a thread inside can make: the tap, sockets for
 * spliced connections and namespace-side listeners, the namespace's /proc/net files.
 *
 * A thread, not a process: orzo is one process. Network namespace membership is per thread, and a rootless
 * thread cannot come back to the host's namespace once it has left it (setns needs CAP_SYS_ADMIN over the
 * host's), so the main thread never leaves and this one never comes back. Both share one fd table: what this
 * thread makes is usable by the main thread at once, under the same number.
 *
 * Requests arrive on a SOCK_SEQPACKET socket and are served one at a time with blocking reads: this thread has
 * nothing else to wait for. When the main thread hangs up, the thread ends.
 */
import { writeFileSync } from "node:fs";
import { CLONE_NEWNET, CLONE_NEWUTS, MSG_NOSIGNAL, O_CLOEXEC } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { close, recv, send, tryOpen } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { sethostname, setns, unshare } from "../syscalls/process.ts";
import { socket } from "../syscalls/socket.ts";
import { openTap } from "../tap/tun.ts";
import { NS_MAX_BATCH, type NsReply, type NsRequest, type NsStart, type NsTarget } from "./ns_protocol.ts";

/** Largest request or reply. */
const MESSAGE_MAX = 16 * 1024;

declare const self: Worker;

self.onmessage = (e: MessageEvent<NsStart>) => {
  const { sock, target } = e.data;
  const buf = new Mem(MESSAGE_MAX);
  const encoder = new TextEncoder();
  const reply = (r: NsReply) => {
    const bytes = encoder.encode(JSON.stringify(r));
    buf.bytes.set(bytes);
    send(sock, buf.addr, bytes.length, MSG_NOSIGNAL);
  };
  try {
    enter(target);
  } catch (err) {
    reply({ id: 0, ok: false, error: (err as Error).message });
    close(sock);
    return;
  }
  reply({ id: 0, ok: true, fds: [] });
  for (;;) {
    const n = recv(sock, buf.addr, MESSAGE_MAX, 0);
    if (n === -Errno.EINTR) continue;
    if (n <= 0) break;
    let req: NsRequest | undefined;
    try {
      req = JSON.parse(new TextDecoder().decode(buf.bytes.subarray(0, n))) as NsRequest;
      reply({ id: req.id, ok: true, fds: serve(req) });
    } catch (err) {
      reply({ id: req?.id ?? -1, ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  }
  close(sock);
  // Nothing keeps the thread alive any more: it ends.
  self.onmessage = null;
};

/** Moves this thread into its namespaces; sets the host name and ping range when asked. */
function enter(target: NsTarget): void {
  if (target.kind === "new") {
    unshare(CLONE_NEWNET);
    return;
  }
  setns(target.netnsFd, CLONE_NEWNET);
  close(target.netnsFd);
  if (target.utsnsFd !== undefined) {
    setns(target.utsnsFd, CLONE_NEWUTS);
    close(target.utsnsFd);
    if (target.hostname !== undefined) sethostname(target.hostname);
  }
  // Root in the namespace may use ping sockets, as in pasta (/proc/sys/net is this thread's namespace's).
  if (target.pingGroupRange) writeFileSync("/proc/sys/net/ipv4/ping_group_range", "0 0");
}

/** Serves one request; returns the fds it made. Throws with the reason. */
function serve(req: NsRequest): number[] {
  switch (req.op) {
    case "tap":
      return [openTap(req.ifname, req.vnetHdr === true)];
    case "socket":
      return Array.from({ length: Math.min(Math.max(req.count ?? 1, 1), NS_MAX_BATCH) }, () => socket(req.domain, req.type, req.protocol));
    case "open": {
      // /proc/net is the process's (its main thread's) namespace's: this thread's is under thread-self.
      const path = req.path.startsWith("/proc/net/") ? `/proc/thread-self/net/${req.path.slice(10)}` : req.path;
      const fd = tryOpen(path, req.flags | O_CLOEXEC);
      if (fd < 0) throw new Error(`open ${req.path}: errno ${-fd}`);
      return [fd];
    }
    case "write":
      writeFileSync(req.path, req.text);
      return [];
  }
}

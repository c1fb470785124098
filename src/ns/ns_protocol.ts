/**
 * The messages between orzo's main thread and its namespace thread (ns_thread.ts, ns_worker.ts): JSON in the
 * datagrams of a SOCK_SEQPACKET socket pair, one message per datagram. Both threads share one fd table, so a
 * reply names the fds it made by number and nothing is passed with SCM_RIGHTS.
 *
 * Requests carry an id and get exactly one reply with the same id. The socket pair, not postMessage, carries
 * them: the main thread spends its life blocked in epoll_wait, where no message event can reach it, and the
 * namespace thread likewise.
 */

/** Where the namespace thread goes before it serves requests. */
export type NsTarget =
  /** Join the network namespace behind this fd (and optionally the UTS namespace, to set the host name). */
  | { readonly kind: "join"; readonly netnsFd: number; readonly utsnsFd?: number; readonly hostname?: string; readonly pingGroupRange?: boolean }
  /** Make a new network namespace for the thread (tests, run as root). */
  | { readonly kind: "new" };

/** The one message posted to the worker: its end of the socket pair and its target. */
export interface NsStart {
  readonly sock: number;
  readonly target: NsTarget;
}

/** Requests from the main thread. */
export type NsRequest =
  | { readonly id: number; readonly op: "tap"; readonly ifname: string; readonly vnetHdr?: boolean }
  | { readonly id: number; readonly op: "socket"; readonly domain: number; readonly type: number; readonly protocol: number; readonly count?: number }
  | { readonly id: number; readonly op: "open"; readonly path: string; readonly flags: number }
  | { readonly id: number; readonly op: "write"; readonly path: string; readonly text: string };

/** Replies: the fds a request made, or why it failed. The first message (id 0) says the thread is in place. */
export type NsReply = { readonly id: number; readonly ok: true; readonly fds: readonly number[] } | { readonly id: number; readonly ok: false; readonly error: string };

/** Most sockets one request makes (socket pools ask for batches). */
export const NS_MAX_BATCH = 16;

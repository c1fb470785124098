/**
 * The protocol between orzo and its namespace agent: JSON messages on a SOCK_SEQPACKET socket pair, with file
 * descriptors attached (SCM_RIGHTS) to the replies that create them.
 *
 * Requests carry an id and get exactly one reply with the same id; the agent also sends unsolicited events
 * (the command it started has exited). One datagram is one message, so no framing is needed.
 */

/** How the agent gets into the target namespaces. */
export interface AgentSpec {
  /** "new": create namespaces; "join": enter existing ones. */
  readonly kind: "new" | "join";
  /** new: make a user namespace too (rootless), mapping root inside to this uid/gid outside. */
  readonly newUserns?: { readonly uid: number; readonly gid: number };
  /** join: the user namespace to enter first (rootless joining), if any. */
  readonly usernsPath?: string;
  /** join: the network namespace to enter. */
  readonly netnsPath?: string;
  /** The launcher (util-linux unshare or nsenter) already put the agent in its namespaces. */
  readonly entered?: boolean;
}

/** Requests from orzo to the agent. */
export type AgentRequest =
  | { readonly id: number; readonly op: "tap"; readonly ifname: string; readonly vnetHdr?: boolean }
  | { readonly id: number; readonly op: "socket"; readonly domain: number; readonly type: number; readonly protocol: number; readonly count?: number }
  | { readonly id: number; readonly op: "open"; readonly path: string; readonly flags: number }
  | { readonly id: number; readonly op: "write"; readonly path: string; readonly text: string }
  | { readonly id: number; readonly op: "spawn"; readonly argv: readonly string[]; readonly env: Readonly<Record<string, string>> }
  | { readonly id: number; readonly op: "kill"; readonly signal: string };

/** Replies (fds ride along with ok replies of tap, socket and open). */
export type AgentReply = { readonly id: number; readonly ok: true; readonly pid?: number } | { readonly id: number; readonly ok: false; readonly error: string };

/** Unsolicited messages from the agent. */
export type AgentEvent =
  | { readonly event: "ready"; readonly pid: number }
  | { readonly event: "exit"; readonly status: number }
  | { readonly event: "failed"; readonly error: string };

/** The argument that starts the agent role of the orzo binary (main.ts checks it before loading anything). */
export const AGENT_ARG = "__ns-agent";

/** The fd number at which the agent finds its end of the socket pair. */
export const AGENT_FD = 3;

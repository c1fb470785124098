/**
 * The namespace agent's first act: entering the target namespaces, before anything else of orzo is loaded.
 *
 * The kernel refuses to move a multithreaded process into a user namespace, and Bun runs several threads by the
 * time any of our code runs. So user namespaces are entered by a single-threaded launcher before the agent
 * starts (util-linux unshare or nsenter; see agent.ts), and only network, UTS and IPC namespaces, which a
 * thread may enter alone, are entered here. The entry point loads only this module before entering; the rest
 * of the agent is loaded afterwards.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWUTS, F_SETFD, FD_CLOEXEC, O_CLOEXEC, O_RDONLY } from "../syscalls/constants.ts";
import { sendWithFds } from "../syscalls/fdpass.ts";
import { close, fcntl, open } from "../syscalls/io.ts";
import { setns, unshare } from "../syscalls/process.ts";
import { AGENT_FD, type AgentEvent, type AgentReply, type AgentSpec } from "./agent_protocol.ts";

const encoder = new TextEncoder();

/** Sends a reply or event to orzo, with descriptors when the reply carries some. */
export function send(message: AgentReply | AgentEvent, fds: number[] = []): void {
  sendWithFds(AGENT_FD, encoder.encode(JSON.stringify(message)), fds);
}

/** Moves this (single-threaded) process into the namespaces the spec asks for. */
export function enterNamespaces(spec: AgentSpec): void {
  if (spec.entered) {
    if (spec.kind === "new") writeFileSync("/proc/sys/net/ipv4/ping_group_range", "0 0");
    return;
  }
  const needsUserns = spec.newUserns !== undefined || spec.usernsPath !== undefined;
  if (needsUserns) {
    const threads = readdirSync("/proc/self/task").length;
    if (threads !== 1) {
      throw new Error(`cannot enter a user namespace with ${threads} threads running (use the compiled orzo binary)`);
    }
  }
  if (spec.kind === "new") {
    if (spec.newUserns) {
      unshare(CLONE_NEWUSER);
      // An unprivileged process may map only its own IDs, and only with setgroups denied.
      writeFileSync("/proc/self/setgroups", "deny");
      writeFileSync("/proc/self/uid_map", `0 ${spec.newUserns.uid} 1`);
      writeFileSync("/proc/self/gid_map", `0 ${spec.newUserns.gid} 1`);
    }
    unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC);
    // Let root in the namespace use ping sockets, as pasta does.
    writeFileSync("/proc/sys/net/ipv4/ping_group_range", "0 0");
    return;
  }
  if (spec.usernsPath) joinNamespace(spec.usernsPath, CLONE_NEWUSER);
  if (!spec.netnsPath) throw new Error("no network namespace to join");
  joinNamespace(spec.netnsPath, CLONE_NEWNET);
}

function joinNamespace(path: string, type: number): void {
  const fd = open(path, O_RDONLY | O_CLOEXEC);
  try {
    setns(fd, type);
  } finally {
    close(fd);
  }
}

/**
 * Enters the namespaces described by the spec text (JSON, from the command line); on failure tells orzo why.
 * Returns whether the agent may go on.
 */
export function enterFromArgument(specText: string | undefined): boolean {
  // The user's command must not inherit our end of the socket pair: orzo would never see us hang up.
  fcntl(AGENT_FD, F_SETFD, FD_CLOEXEC);
  try {
    enterNamespaces(JSON.parse(specText ?? "") as AgentSpec);
    return true;
  } catch (e) {
    send({ event: "failed", error: e instanceof Error ? e.message : String(e) });
    return false;
  }
}

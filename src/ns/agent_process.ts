/**
 * The namespace agent: a second orzo process that lives in the target namespaces and makes things there for
 * the main process, which stays in the host's namespaces with its host-side sockets.
 *
 * Bun is multithreaded, and the kernel refuses to move a multithreaded process into a new user namespace; so the
 * agent is started with Bun's concurrent JIT off, when a compiled orzo runs on one thread until it chooses
 * otherwise, and it enters the namespaces first thing. Then it serves requests: open the tap, make a socket,
 * open or write a file, start the user's command, all inside the namespaces, and sends the resulting fds back
 * over SCM_RIGHTS. When the command exits it reports the status; when orzo hangs up it exits.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { EpollType } from "../epoll_ref.ts";
import { EventLoop } from "../loop.ts";
import { F_SETFD, FD_CLOEXEC, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWUTS, EPOLLIN, EPOLLRDHUP, MSG_DONTWAIT, O_CLOEXEC, O_RDONLY } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { recvWithFds, sendWithFds } from "../syscalls/fdpass.ts";
import { close, fcntl, open, tryOpen } from "../syscalls/io.ts";
import { setns, unshare } from "../syscalls/process.ts";
import { socket } from "../syscalls/socket.ts";
import { openTap } from "../tap/tun.ts";
import { AGENT_FD, type AgentEvent, type AgentReply, type AgentRequest, type AgentSpec } from "./agent_protocol.ts";

const encoder = new TextEncoder();

/** Sends a reply or event to orzo, with descriptors when the reply carries some. */
function send(message: AgentReply | AgentEvent, fds: number[] = []): void {
  sendWithFds(AGENT_FD, encoder.encode(JSON.stringify(message)), fds);
}

/** Moves this (single-threaded) process into the namespaces the spec asks for. */
export function enterNamespaces(spec: AgentSpec): void {
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

/** Runs the agent role: enter the namespaces, then serve requests until orzo hangs up. Returns the exit status. */
export async function runAgent(specText: string | undefined): Promise<number> {
  // The user's command must not inherit our end of the socket pair: orzo would never see us hang up.
  fcntl(AGENT_FD, F_SETFD, FD_CLOEXEC);
  let spec: AgentSpec;
  try {
    spec = JSON.parse(specText ?? "") as AgentSpec;
    enterNamespaces(spec);
  } catch (e) {
    send({ event: "failed", error: e instanceof Error ? e.message : String(e) });
    return 1;
  }
  const loop = new EventLoop();
  let child: ReturnType<typeof Bun.spawn> | undefined;

  const handle = (req: AgentRequest): void => {
    switch (req.op) {
      case "tap":
        return reply(req.id, [openTap(req.ifname)]);
      case "socket":
        return reply(req.id, [socket(req.domain, req.type, req.protocol)]);
      case "open": {
        const fd = tryOpen(req.path, req.flags | O_CLOEXEC);
        if (fd < 0) throw new Error(`open ${req.path}: errno ${-fd}`);
        return reply(req.id, [fd]);
      }
      case "write":
        writeFileSync(req.path, req.text);
        return reply(req.id, []);
      case "spawn": {
        if (child) throw new Error("a command is already running");
        child = Bun.spawn([...req.argv], {
          env: { ...req.env },
          stdio: ["inherit", "inherit", "inherit"],
          onExit: (_proc, exitCode, signalCode) => {
            const signal = typeof signalCode === "number" ? signalCode : signalCode ? signalNumber(signalCode) : 0;
            send({ event: "exit", status: exitCode ?? 128 + signal });
          },
        });
        send({ id: req.id, ok: true, pid: child.pid });
        return;
      }
      case "kill":
        child?.kill(req.signal as NodeJS.Signals);
        return reply(req.id, []);
    }
  };

  loop.on(EpollType.NS_AGENT, (fd) => {
    for (;;) {
      const m = recvWithFds(fd, MSG_DONTWAIT);
      if (m === -Errno.EAGAIN) return;
      if (m === null || typeof m === "number") {
        loop.stop(0);
        return;
      }
      for (const extra of m.fds) close(extra);
      let req: AgentRequest | undefined;
      try {
        req = JSON.parse(new TextDecoder().decode(m.data)) as AgentRequest;
        handle(req);
      } catch (e) {
        send({ id: req?.id ?? -1, ok: false, error: e instanceof Error ? e.message : String(e) });
      }
    }
  });
  loop.add(EpollType.NS_AGENT, AGENT_FD, 0, EPOLLIN | EPOLLRDHUP);
  send({ event: "ready", pid: process.pid });
  return await loop.run();
}

function reply(id: number, fds: number[]): void {
  try {
    send({ id, ok: true }, fds);
  } finally {
    for (const fd of fds) close(fd);
  }
}

/** The number of a signal name ("SIGKILL" -> 9), for the 128 + N exit status convention. */
function signalNumber(name: string): number {
  const n = osConstants.signals[name as NodeJS.Signals];
  return typeof n === "number" ? n : 0;
}

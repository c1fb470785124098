/**
 * The namespace agent: a second orzo process that lives in the target namespaces and makes things there for
 * the main process, which stays in the host's namespaces with its host-side sockets.
 *
 * The agent enters its namespaces first thing (agent_enter.ts), before this module is even loaded. Then it serves
 * requests: open the tap, make a socket,
 * open or write a file, start the user's command, all inside the namespaces, and sends the resulting fds back
 * over SCM_RIGHTS. When the command exits it reports the status; when orzo hangs up it exits.
 */
import { writeFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { EpollType } from "../epoll_ref.ts";
import { EventLoop } from "../loop.ts";
import { EPOLLIN, EPOLLRDHUP, MSG_DONTWAIT, O_CLOEXEC } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { recvWithFds } from "../syscalls/fdpass.ts";
import { close, tryOpen } from "../syscalls/io.ts";
import { socket } from "../syscalls/socket.ts";
import { MAX_FDS } from "../syscalls/fdpass.ts";
import { openTap } from "../tap/tun.ts";
import { AGENT_FD, type AgentRequest } from "./agent_protocol.ts";
import { send } from "./agent_enter.ts";

/** Runs the agent role, once in the namespaces: serve requests until orzo hangs up. Returns the exit status. */
export async function runAgent(): Promise<number> {
  const loop = new EventLoop();
  let child: ReturnType<typeof Bun.spawn> | undefined;

  const handle = (req: AgentRequest): void => {
    switch (req.op) {
      case "tap":
        return reply(req.id, [openTap(req.ifname, req.vnetHdr === true)]);
      case "socket":
        return reply(req.id, Array.from({ length: Math.min(Math.max(req.count ?? 1, 1), MAX_FDS) }, () => socket(req.domain, req.type, req.protocol)));
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
        loop.requestYield();
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

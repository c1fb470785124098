/**
 * orzo's side of the namespace agent (see agent_process.ts): start it, wait until it is in the namespaces, then
 * ask it for fds made there. Requests are synchronous (start-up and the occasional socket for a spliced
 * connection); events (the command exited) are read when the agent's socket turns readable in the event loop.
 */
import { AF_UNIX, SOCK_CLOEXEC, SOCK_SEQPACKET, SOL_SOCKET, MSG_DONTWAIT } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { recvWithFds, sendWithFds, type FdMessage } from "../syscalls/fdpass.ts";
import { close } from "../syscalls/io.ts";
import { setsockoptBytes, socketpair } from "../syscalls/socket.ts";
import { AGENT_ARG, type AgentEvent, type AgentReply, type AgentRequest, type AgentSpec } from "./agent_protocol.ts";
import { log } from "../log.ts";

const SO_RCVTIMEO = 20;
/** How long orzo waits for the agent to answer, at most. */
const AGENT_TIMEOUT_MS = 10_000;

/** The command that runs orzo itself: the compiled binary, or Bun with orzo's entry point when run from source. */
export function orzoCommand(): string[] {
  if (Bun.main.startsWith("/$bunfs/")) return [process.execPath];
  return [process.execPath, new URL("../main.ts", import.meta.url).pathname];
}

/**
 * The agent's command line. A user namespace can only be entered by a single-threaded process, and Bun never
 * is one, so then util-linux enters the namespaces first: unshare makes new ones (mapping root inside to us),
 * nsenter joins existing ones; the agent starts inside. Network namespaces alone the agent enters itself.
 */
export function agentArgv(spec: AgentSpec): string[] {
  const agent = (s: AgentSpec) => [...orzoCommand(), AGENT_ARG, JSON.stringify(s)];
  if (spec.kind === "new" && spec.newUserns) {
    return ["unshare", "--user", "--map-root-user", "--net", "--uts", "--ipc", "--", ...agent({ kind: "new", entered: true })];
  }
  if (spec.kind === "join" && spec.usernsPath && spec.netnsPath) {
    return ["nsenter", `--user=${spec.usernsPath}`, `--net=${spec.netnsPath}`, "--", ...agent({ kind: "join", entered: true })];
  }
  return agent(spec);
}

/** Raised when the agent fails, answers with an error, or does not answer in time. */
export class AgentError extends Error {
  override name = "AgentError";
}

type Request = AgentRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

/** A running namespace agent. */
export class NamespaceAgent {
  /** Our end of the socket pair: register it in the loop to receive events. */
  readonly sock: number;
  /** The agent's PID. */
  readonly pid: number;
  private readonly proc: ReturnType<typeof Bun.spawn>;
  private readonly pending: AgentEvent[] = [];
  /** Asynchronous requests waiting for their reply, by id. */
  private readonly awaiting = new Map<number, { op: string; done: (result: number[] | AgentError) => void }>();
  private nextId = 1;

  private constructor(sock: number, proc: ReturnType<typeof Bun.spawn>) {
    this.sock = sock;
    this.proc = proc;
    this.pid = proc.pid;
  }

  /** Starts an agent and waits until it is inside the namespaces; throws AgentError with its reason if not. */
  static start(spec: AgentSpec, stdio: "inherit" | "ignore" = "inherit"): Promise<NamespaceAgent> {
    return NamespaceAgent.launch(spec, stdio).ready();
  }

  /**
   * Starts an agent without waiting for it: the caller does its own start-up work while the agent process starts
   * (most of orzo's time to ready), then calls ready(). If the caller fails first, its exit closes the socket
   * pair and the agent goes too.
   */
  static launch(spec: AgentSpec, stdio: "inherit" | "ignore" = "inherit"): { ready: () => Promise<NamespaceAgent> } {
    const [ours, theirs] = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    const proc = Bun.spawn(agentArgv(spec), {
      // The user's command inherits stdio from the agent; with no command, the agent keeps none of orzo's.
      // With no command, the agent must not hold orzo's stdout and stderr open after orzo went to the background
      // (callers wait for them to close): its errors come back through a pipe, read only if it fails to start.
      stdio: [stdio, stdio, stdio === "inherit" ? "inherit" : "pipe", theirs],
    });
    close(theirs);
    const timeout = new Uint8Array(16);
    new DataView(timeout.buffer).setUint32(0, AGENT_TIMEOUT_MS / 1000, true);
    setsockoptBytes(ours, SOL_SOCKET, SO_RCVTIMEO, timeout);
    const agent = new NamespaceAgent(ours, proc);
    return { ready: () => agent.ready() };
  }

  /** Waits for the agent's first word: in its namespaces, or why not. */
  private async ready(): Promise<NamespaceAgent> {
    let event: AgentEvent | undefined;
    try {
      event = JSON.parse(new TextDecoder().decode(this.receive().data)) as AgentEvent;
    } catch (e) {
      this.close();
      const said = this.proc.stderr instanceof ReadableStream ? (await new Response(this.proc.stderr).text()).trim() : "";
      throw said ? new AgentError(`the namespace agent could not start: ${said.split("\n").pop()}`) : e;
    }
    if (event.event !== "ready") {
      this.close();
      throw new AgentError(event.event === "failed" ? event.error : `unexpected message from the namespace agent`);
    }
    return this;
  }

  /** Sends a request and waits for its reply; returns the fds that came with it. Throws AgentError. */
  request(req: Request): { reply: AgentReply & { ok: true }; fds: number[] } {
    const id = this.send(req);
    for (;;) {
      const m = this.receive();
      const msg = this.sort(m);
      if (!msg) continue;
      if (msg.id !== id) {
        for (const fd of m.fds) close(fd);
        continue;
      }
      if (!msg.ok) throw new AgentError(`${req.op}: ${msg.error}`);
      return { reply: msg, fds: m.fds };
    }
  }

  /**
   * Sends a request without waiting: done gets the reply's fds, or the error, once the reply arrives (read by
   * takeEvents when the agent's socket is readable, or while a later request waits for its own reply).
   */
  requestAsync(req: Request, done: (result: number[] | AgentError) => void): void {
    this.awaiting.set(this.send(req), { op: req.op, done });
  }

  private send(req: Request): number {
    const id = this.nextId++;
    sendWithFds(this.sock, new TextEncoder().encode(JSON.stringify({ ...req, id })), []);
    return id;
  }

  /**
   * Files one message: events are queued for takeEvents, replies to asynchronous requests go to their callback;
   * returns any other reply (with its fds still open), undefined for the rest (whose fds are closed).
   */
  private sort(m: FdMessage): AgentReply | undefined {
    const msg = JSON.parse(new TextDecoder().decode(m.data)) as AgentReply | AgentEvent;
    if ("id" in msg) {
      const waiter = this.awaiting.get(msg.id);
      if (!waiter) return msg;
      this.awaiting.delete(msg.id);
      // The callback may run inside another caller's request(): its failure must not become that caller's.
      try {
        waiter.done(msg.ok ? m.fds : new AgentError(`${waiter.op}: ${msg.error}`));
      } catch (e) {
        log.error(`namespace agent: handling the reply to ${waiter.op}: ${(e as Error).message}`);
      }
      return undefined;
    }
    for (const fd of m.fds) close(fd);
    this.pending.push(msg);
    return undefined;
  }

  /** Opens the tap interface in the namespace; returns its fd. */
  openTap(ifname: string, vnetHdr = false): number {
    return this.one(this.request({ op: "tap", ifname, vnetHdr }).fds);
  }

  /** Makes a socket in the namespace; returns its fd. */
  socket(domain: number, type: number, protocol: number): number {
    return this.one(this.request({ op: "socket", domain, type, protocol }).fds);
  }

  /** Makes up to 16 sockets of one kind in the namespace at once (socket pools); returns their fds. */
  sockets(domain: number, type: number, protocol: number, count: number): number[] {
    return this.request({ op: "socket", domain, type, protocol, count }).fds;
  }

  /** As sockets(), without waiting: done gets the fds (or the error) when they arrive. */
  socketsAsync(domain: number, type: number, protocol: number, count: number, done: (result: number[] | AgentError) => void): void {
    this.requestAsync({ op: "socket", domain, type, protocol, count }, done);
  }

  /** Opens a file as seen from the namespace (e.g. /proc/net/tcp); returns its fd. */
  open(path: string, flags: number): number {
    return this.one(this.request({ op: "open", path, flags }).fds);
  }

  /** Writes a file from inside the namespace (e.g. a sysctl under /proc/sys/net). */
  writeFile(path: string, text: string): void {
    this.request({ op: "write", path, text });
  }

  /** Starts the user's command in the namespace; its exit arrives later as an "exit" event. Returns its PID. */
  spawn(argv: readonly string[], env: Readonly<Record<string, string>>): number {
    return this.request({ op: "spawn", argv, env }).reply.pid ?? 0;
  }

  /** Sends a signal to the command. */
  kill(signal: string): void {
    this.request({ op: "kill", signal });
  }

  /** Events received so far (including those that arrived while waiting for replies); null when the agent hung up. */
  takeEvents(): AgentEvent[] | null {
    for (;;) {
      const m = recvWithFds(this.sock, MSG_DONTWAIT);
      if (m === -Errno.EAGAIN) break;
      if (m === null || typeof m === "number") {
        if (this.pending.length > 0) break;
        return null;
      }
      // A reply nobody waits for any more (its request failed on our side): its fds have no owner.
      if (this.sort(m)) for (const fd of m.fds) close(fd);
    }
    return this.pending.splice(0);
  }

  /** Hangs up: the agent exits (a command it started keeps running). */
  close(): void {
    close(this.sock);
  }

  /** Waits for the agent process to exit. */
  get exited(): Promise<number> {
    return this.proc.exited;
  }

  private receive(): FdMessage {
    let m = recvWithFds(this.sock);
    // A signal (the profiler's, a SIGCHLD) interrupts the blocking receive; that is not the agent failing.
    while (m === -Errno.EINTR) m = recvWithFds(this.sock);
    if (m === null) throw new AgentError("the namespace agent exited");
    if (typeof m === "number") {
      throw new AgentError(m === -Errno.EAGAIN ? `the namespace agent did not answer within ${AGENT_TIMEOUT_MS} ms` : `receiving from the namespace agent: errno ${-m}`);
    }
    return m;
  }

  private one(fds: number[]): number {
    if (fds.length !== 1) {
      for (const fd of fds) close(fd);
      throw new AgentError(`expected one descriptor from the namespace agent, got ${fds.length}`);
    }
    return fds[0];
  }
}

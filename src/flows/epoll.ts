/**
 * flowEpollSet: the one way a flow's fds enter or change in epoll.
 *
 * Given an epoll type, a flow and a side, it takes the fd from the flow (TCP: the socket of that side; TCP_SPLICE
 * and UDP: the socket of that side; PING: the socket; TCP_TIMER: the flow's timerfd), computes the events from
 * the flow's type and state (a wait for EPOLLOUT is flow state, never an argument), and picks ADD or MOD from
 * the flow's own record of what is registered; a state that wants no events any more (TCP CLOSED, splice
 * CLOSING) removes the fd. Each flow records the epoll instance its fds are in, so flowEpollMove can carry a
 * flow to another loop's instance: delete everything from the old one, re-add with freshly computed events.
 */
import { EpollType, refLo, sidx, FD_REF_MAX } from "../epoll_ref.ts";
import { epollFdOf } from "../loop.ts";
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLET, EPOLLIN, EPOLLOUT } from "../syscalls/constants.ts";
import { epollCtl } from "../syscalls/epoll.ts";
import { close } from "../syscalls/io.ts";
import { FLOW_CAPACITY_DEFAULT, FlowTable, FlowType, type Side } from "./flow.ts";
import { spliceEpollEvents, SpliceFlag } from "./splice_state.ts";
import { tcpEpollEvents, TcpEvent } from "./tcp_state.ts";

/** Bit in FlowTable.registered for the timer fd (bits 0 and 1 are the sockets of sides 0 and 1). */
const REG_TIMER = 1 << 2;

let table = new FlowTable(1);
table.releaseFds = flowReleaseFds;

/** The flow table in use (made by flowTableInit). */
export function flows(): FlowTable {
  return table;
}

/** Makes the flow table in use, with a fixed capacity, its flows registered in the epoll instance epollId. */
export function flowTableInit(capacity = FLOW_CAPACITY_DEFAULT, epollId = 0): FlowTable {
  table = new FlowTable(capacity, epollId);
  table.releaseFds = flowReleaseFds;
  return table;
}

/** The flow type an epoll type belongs to: the registration must match the flow. */
const FLOW_TYPE_OF_EPOLL: Partial<Record<number, number>> = {
  [EpollType.TCP]: FlowType.TCP,
  [EpollType.TCP_TIMER]: FlowType.TCP,
  [EpollType.TCP_SPLICE]: FlowType.TCP_SPLICE,
  [EpollType.PING]: FlowType.PING,
  [EpollType.UDP]: FlowType.UDP,
};

/**
 * Registers or updates one fd of a flow in its epoll instance, with the events its state calls for.
 * Returns 0 or -errno.
 */
export function flowEpollSet(type: EpollType, flow: number, side: Side): number {
  const t = table;
  if (FLOW_TYPE_OF_EPOLL[type] !== t.type[flow]) {
    throw new Error(`flowEpollSet: epoll type ${type} does not fit flow ${flow} of type ${t.type[flow]}`);
  }
  const timer = type === EpollType.TCP_TIMER;
  const fd = timer ? t.timer[flow] : t.fd[2 * flow + side];
  if (fd < 0 || fd > FD_REF_MAX) throw new Error(`flowEpollSet: flow ${flow} has no usable fd for type ${type}`);
  const bit = timer ? REG_TIMER : 1 << side;
  const epfd = epollFdOf(t.epollId[flow]);
  let events: number;
  let remove = false;
  switch (type) {
    case EpollType.TCP:
      events = tcpEpollEvents(t.events[flow], t.flags[flow]);
      remove = t.events[flow] === TcpEvent.CLOSED;
      break;
    case EpollType.TCP_SPLICE:
      events = spliceEpollEvents(t.events[flow], t.flags[flow], side);
      remove = (t.flags[flow] & SpliceFlag.CLOSING) !== 0;
      break;
    case EpollType.TCP_TIMER:
      events = (EPOLLIN | EPOLLET) >>> 0;
      break;
    default:
      events = EPOLLIN;
  }
  const registered = (t.registered[flow] & bit) !== 0;
  if (remove) {
    if (!registered) return 0;
    t.registered[flow] &= ~bit;
    // A flow freed at the end of this cycle closes the fd then, and the close takes it out of epoll (no flow fd
    // is shared: all are close-on-exec, and the namespace thread keeps no copy): no DEL needed.
    if (t.freePending[flow]) return 0;
    return epollCtl(epfd, EPOLL_CTL_DEL, fd, 0, 0, 0);
  }
  // The same mask again changes nothing unless it re-arms an edge (edge-triggered EPOLLIN or EPOLLOUT): skip
  // that epoll_ctl.
  const i = 2 * flow + side;
  const rearms = (events & EPOLLET) !== 0 && (events & (EPOLLIN | EPOLLOUT)) !== 0;
  if (registered && !timer && t.epollMask[i] === events && !rearms) return 0;
  const payload = timer ? flow : sidx(flow, side);
  const r = epollCtl(epfd, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, events, refLo(type, fd), payload);
  if (r === 0) {
    t.registered[flow] |= bit;
    if (!timer) t.epollMask[i] = events;
  }
  return r;
}

/** Takes every fd of a flow out of its epoll instance. */
export function flowEpollDel(flow: number): void {
  const t = table;
  const reg = t.registered[flow];
  if (reg === 0) return;
  const epfd = epollFdOf(t.epollId[flow]);
  for (let s = 0; s < 2; s++) if (reg & (1 << s)) epollCtl(epfd, EPOLL_CTL_DEL, t.fd[2 * flow + s], 0, 0, 0);
  if (reg & REG_TIMER) epollCtl(epfd, EPOLL_CTL_DEL, t.timer[flow], 0, 0, 0);
  t.registered[flow] = 0;
}

/** Moves a flow's fds to another epoll instance (by id), re-adding each with freshly computed events. */
export function flowEpollMove(flow: number, epollId: number): void {
  const t = table;
  const reg = t.registered[flow];
  flowEpollDel(flow);
  t.epollId[flow] = epollId;
  const type = t.type[flow];
  for (let s = 0; s < 2; s++) if (reg & (1 << s)) flowEpollSet(socketEpollType(type), flow, s as Side);
  if (reg & REG_TIMER) flowEpollSet(EpollType.TCP_TIMER, flow, 0);
}

/** The epoll type of a flow type's sockets. */
function socketEpollType(type: number): EpollType {
  switch (type) {
    case FlowType.TCP:
      return EpollType.TCP;
    case FlowType.TCP_SPLICE:
      return EpollType.TCP_SPLICE;
    case FlowType.PING:
      return EpollType.PING;
    default:
      return EpollType.UDP;
  }
}

/** Closes a freed flow's sockets and timer, which takes them out of epoll (they are not shared). */
function flowReleaseFds(flow: number): void {
  const t = table;
  t.registered[flow] = 0;
  for (let s = 0; s < 2; s++) {
    const fd = t.fd[2 * flow + s];
    if (fd >= 0) close(fd);
  }
  if (t.timer[flow] >= 0) close(t.timer[flow]);
}

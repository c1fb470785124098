/**
 * pasta mode: a tap device in a network namespace (new, or joined by PID or path), the L2 services and flows
 * behind it, and the user's command running inside.
 *
 * Start-up order matters to the tools that drive pasta: everything that can fail (host addressing, the namespace
 * thread entering the target namespace, the tap, --config-net) happens before readiness is announced; the PID
 * file is written and the command (held back in its namespaces by its launcher) let go only once the namespace
 * is usable. With a command, orzo stays in the
 * foreground and exits with the command's status; attached to an existing namespace, it goes to the background
 * once ready (unless -f) and exits when the namespace goes away.
 */
import { EpollType } from "./epoll_ref.ts";
import { flowTableInit } from "./flows/epoll.ts";
import { reportReady, writePidFile } from "./lifecycle.ts";
import { log } from "./log.ts";
import { EventLoop } from "./loop.ts";
import { EventStats } from "./loop_stats.ts";
import { namespaceIfname, resolveNetConf, type HostAddressing, type NetConf } from "./netconf.ts";
import { readHostAddressing } from "./flows/outbound.ts";
import type { Config } from "./cli/config.ts";
import { parseMacText } from "./cli/values.ts";
import { readResolvConf } from "./resolv.ts";
import { inanyToText } from "./wire/inany.ts";
import { NamespaceThread } from "./ns/ns_thread.ts";
import { namespaceHostname } from "./isolation/chain.ts";
import type { Stage2State } from "./isolation/stage2_state.ts";
import { confine } from "./isolation/sandbox.ts";
import { Netlink } from "./ns/netlink.ts";
import type { LinkInfo } from "./ns/netlink-records.ts";
import { watchNamespace } from "./ns/nsquit.ts";
import { AF_NETLINK, EPOLLIN, EPOLLRDHUP, IFF_NOARP, NETLINK_ROUTE, O_CLOEXEC, O_RDONLY, SOCK_CLOEXEC, SOCK_RAW, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUNSETOFFLOAD } from "./syscalls/constants.ts";
import { gethostname, ioctlInt, pidfdOpen, reapChild } from "./syscalls/process.ts";
import { PastaTap } from "./tap/pasta_tap.ts";
import { NoLink } from "./tap/no_link.ts";
import type { FrameSink } from "./tap/link.ts";
import { L2Ingress } from "./tap/ingress.ts";
import { LinkCapture } from "./tap/pcap.ts";
import { TcpListeners } from "./flows/tcp_listen.ts";
import { TcpSplice } from "./flows/tcp_splice.ts";
import { UdpListeners } from "./flows/udp_listen.ts";
import { UdpSplice } from "./flows/udp_splice.ts";
import type { ForwardTable } from "./fwd/rules.ts";
import { Pif } from "./flows/flow.ts";
import { PortScanner } from "./fwd/scan.ts";
import { close, open, writeBytes } from "./syscalls/io.ts";

/** How long connections may go on draining after the command exited. */
const EXIT_DRAIN_MS = 2000;

/** Runs pasta mode to the end (stage 2: stage 1 went to the background and made the command's namespaces). */
export async function runPasta(config: Config, state: Stage2State): Promise<number> {
  const attaching = state.launcherPid === undefined;
  if (state.netnsFd === undefined) throw new Error("internal: stage 2 of pasta without a target namespace");
  // The namespace thread starts (a few milliseconds) while the host's addressing is read.
  const launched = NamespaceThread.launch({
    kind: "join", netnsFd: state.netnsFd, utsnsFd: state.utsnsFd, pingGroupRange: !attaching,
    hostname: attaching ? undefined : namespaceHostname(config.hostname, gethostname()),
  });
  const hostNl = new Netlink();
  const host = readHostAddressing(config, hostNl);
  const netconf = resolveNetConf(config, host, readResolvConf());
  const loop = new EventLoop();
  const flows = flowTableInit(undefined, loop.id);
  if (config.stats) EventStats.attach(loop, config.stats);
  const ingress = new L2Ingress(netconf);
  const nsThread = launched.ready();
  const nsNl = new Netlink({ fd: nsThread.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) });
  const lo = nsNl.link("lo");
  nsNl.setLinkUp(lo.index);
  largeLoopbackSegments(nsNl, lo);
  const capture = state.pcapFd === undefined ? undefined : new LinkCapture(loop, state.pcapFd);
  const sink = capture?.sink(ingress) ?? ingress;
  const onGone = (reason: string) => {
    log.error(reason);
    loop.stop(1);
  };
  // --splice-only: no tap at all; only what the loopbacks splice is forwarded.
  const link = config.spliceOnly ? new NoLink() : openTapLink(config, loop, sink, onGone, { nsThread, nsNl, hostNl, host, netconf });
  hostNl.close();
  capture?.link(link);
  // With --config-net the link is up at once: announce ourselves so the guest's MAC is learned early.
  ingress.attach(loop, link, config.configNet && !config.spliceOnly);
  const splice = new TcpSplice(loop, ingress.tcp!.io, nsThread);
  const tcpListeners = new TcpListeners(loop, netconf, ingress.tcp!, ingress.tcpInput!, {
    freebind: config.freebind, ns: nsThread, splice, noSplice: config.noSplice, hostLoToNsLo: config.hostLoToNsLo, spliceOnly: config.spliceOnly,
  });
  tcpListeners.listenAll(config.forward.tcpIn, Pif.HOST);
  tcpListeners.listenAll(config.forward.tcpOut, Pif.SPLICE);
  const udp = ingress.udp!;
  const udpSplice = new UdpSplice(netconf, {
    ns: nsThread, noSplice: config.noSplice, hostLoToNsLo: config.hostLoToNsLo, spliceOnly: config.spliceOnly,
  });
  udp.splice = udpSplice;
  const udpListeners = new UdpListeners(udp, { freebind: config.freebind });
  udpListeners.listenAll(config.forward.udpIn, Pif.HOST);
  udpListeners.listenAll(config.forward.udpOut, Pif.SPLICE);
  const scanners = [
    ...portScanners(nsThread, config.forward.tcpIn, config.forward.tcpOut, tcpListeners),
    ...portScanners(nsThread, config.forward.udpIn, config.forward.udpOut, udpListeners, tcpListeners),
  ];
  for (const s of scanners) s.scan();
  loop.every(1000, () => {
    for (const s of scanners) s.scan();
  });
  loop.onFlush((now) => {
    // Frames first, then closing freed flows' fds (which can be slow); frames that freeing queued (an inactivity
    // reset) go right after.
    link.flush();
    flows.defer(now, false);
    link.flush();
  });
  loop.every(1000, (now) => flows.defer(now, true));

  let exitStatus = -1;
  let exitDeadline = 0;
  loop.on(EpollType.NS_AGENT, () => {
    if (nsThread.takeReplies()) return;
    log.error("the namespace thread ended");
    loop.stop(1);
  });
  loop.add(EpollType.NS_AGENT, nsThread.sock, 0, EPOLLIN | EPOLLRDHUP);
  if (!attaching) {
    const launcher = state.launcherPid!;
    loop.on(EpollType.CHILD_EXIT, (fd) => {
      const status = reapChild(launcher);
      if (status < 0) return;
      close(fd);
      log.debug(`command exited with status ${status}`);
      exitStatus = status;
      exitDeadline = performance.now() + EXIT_DRAIN_MS;
    });
    loop.add(EpollType.CHILD_EXIT, pidfdOpen(launcher), 0, EPOLLIN);
  }
  // Connections the command left behind still carry its last bytes: let them finish (briefly) before exiting.
  loop.onFlush((now) => {
    if (exitStatus >= 0 && (flows.count === 0 || now >= exitDeadline)) loop.stop(exitStatus);
  });

  const nsPath = config.netnsPath ?? (config.targetPid !== undefined ? `/proc/${config.targetPid}/ns/net` : undefined);
  if (attaching && nsPath && !config.noNetnsQuit) watchNamespace(loop, nsPath, () => loop.stop(0));

  if (state.pidFileFd !== undefined) writePidFile(state.pidFileFd);
  // The command has been waiting in its namespaces for this line (isolation/chain.ts).
  if (state.launcherGoFd !== undefined) {
    writeBytes(state.launcherGoFd, new Uint8Array([0x0a]));
    close(state.launcherGoFd);
  }
  log.debug(config.spliceOnly ? "pasta: ready, splicing only" : "pasta: the tap is ready in the namespace");
  reportReady(state.syslogFd, config.mode);
  loop.installSignals();
  confine("pasta");
  const status = await loop.run();
  log.debug(`tcp ${JSON.stringify(ingress.tcp?.stats)}, to the guest ${JSON.stringify(ingress.tcp?.out.stats)}, link ${JSON.stringify(link.stats)}`);
  log.debug(`udp ${JSON.stringify(udp.stats)}, spliced ${JSON.stringify(udpSplice.stats)}`);
  log.debug(`exiting with status ${status}`);
  nsThread.close();
  return status;
}

/** What opening the tap needs from pasta's start-up: the namespace thread, both netlink sockets, the addressing. */
interface TapSetup {
  readonly nsThread: NamespaceThread;
  readonly nsNl: Netlink;
  readonly hostNl: Netlink;
  readonly host: HostAddressing;
  readonly netconf: NetConf;
}

/**
 * The tap device in the namespace, named and configured (--ns-mac-addr, --config-net), as the link frames to and
 * from the guest go over; onGone is told when it goes away.
 */
function openTapLink(config: Config, loop: EventLoop, sink: FrameSink, onGone: (reason: string) => void, t: TapSetup): PastaTap {
  const ifname = namespaceIfname(config, t.host, t.netconf);
  // A vnet header on every frame lets the kernel finish TCP checksums and segmentation for us (both ways).
  const tapFd = t.nsThread.openTap(ifname, true);
  const offload = ioctlInt(tapFd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) === 0;
  const ifindex = t.nsNl.linkIndex(ifname);
  if (config.nsMacAddr) t.nsNl.setMac(ifindex, config.nsMacAddr);
  const mac = config.nsMacAddr ? undefined : parseMacText(t.nsNl.link(ifindex).mac ?? "");
  if (mac) t.netconf.guestMac.set(mac);
  if (config.configNet) configureNamespace(config, t.nsNl, t.hostNl, ifindex, t.netconf, t.host);
  return new PastaTap(loop, tapFd, sink, onGone, true, offload);
}

/** The listeners of one protocol on both sides, as TcpListeners and UdpListeners keep them. */
interface SideListeners {
  listenOne(addr: Uint8Array | null, dualStack: boolean, ifname: string | null, port: number, rule: number, pif: Pif): number;
  closeOne(fd: number, port: number, pif: Pif): void;
  portMap(pif: Pif): Uint32Array;
}

/**
 * Scanners for `-t auto` / `-u auto` (listen on the host for ports bound in the namespace) and `-T auto` /
 * `-U auto` (listen in the namespace for ports bound on the host). UDP scans also take listening TCP ports,
 * less those of orzo's own TCP listeners (tcp).
 */
function portScanners(nsThread: NamespaceThread, inTable: ForwardTable, outTable: ForwardTable, listeners: SideListeners, tcp?: SideListeners): PortScanner[] {
  const scanners: PortScanner[] = [];
  const sides = [
    { table: inTable, pif: Pif.HOST, other: Pif.SPLICE, open: (path: string) => nsThread.open(path, O_RDONLY) },
    { table: outTable, pif: Pif.SPLICE, other: Pif.HOST, open: (path: string) => open(path, O_RDONLY | O_CLOEXEC) },
  ];
  for (const { table, pif, other, open: openFile } of sides) {
    if (table.mode !== "auto") continue;
    const tryOpen = (path: string) => {
      try {
        return openFile(path);
      } catch {
        return undefined;
      }
    };
    const udp = table.proto === "udp";
    const files = {
      tcp: tryOpen("/proc/net/tcp"),
      tcp6: tryOpen("/proc/net/tcp6"),
      udp: udp ? tryOpen("/proc/net/udp") : undefined,
      udp6: udp ? tryOpen("/proc/net/udp6") : undefined,
    };
    scanners.push(new PortScanner(table, files, {
      open: (port, rule) => {
        const r = table.rules[rule];
        return listeners.listenOne(r.listenAddr, r.dualStack, r.ifname, port, rule, pif);
      },
      close: (fd, port) => listeners.closeOne(fd, port, pif),
      exclude: listeners.portMap(other),
      excludeTcp: tcp?.portMap(other),
    }));
  }
  return scanners;
}

/**
 * Lets TCP on the namespace's loopback build packets as large as the device takes (BIG TCP: 512 KiB instead of
 * 64 KiB). Spliced connections cross the namespace's loopback, where the kernel's cost is mostly per packet
 * (transmit, loopback delivery, wake-ups, ACKs): eight times fewer packets there took spliced throughput from
 * parity with pasta to 1.05-1.17x on 2 cores. Kernels before 5.19 do not report the device's limit (nothing changes); before 6.3
 * only IPv6 gets the larger packets.
 */
function largeLoopbackSegments(nl: Netlink, lo: LinkInfo): void {
  const size = lo.tsoMaxSize ?? 0;
  if (size <= Math.min(lo.gsoMaxSize ?? size, lo.gsoIpv4MaxSize ?? size)) return;
  try {
    nl.setGsoMaxSize(lo.index, size);
  } catch (e) {
    log.debug(`loopback keeps its packet size: ${(e as Error).message}`);
  }
}

/**
 * --config-net: MTU, link up, addresses and routes, as pasta does. IPv6 link-up happens with IFF_NOARP set so
 * that duplicate address detection does not hold the link-local address back.
 */
function configureNamespace(c: Config, ns: Netlink, host: Netlink, ifindex: number, nc: NetConf, h: HostAddressing): void {
  if (nc.mtu) ns.setMtu(ifindex, nc.mtu);
  if (nc.ip6.enabled) ns.setLinkFlags(ifindex, IFF_NOARP, IFF_NOARP);
  ns.setLinkUp(ifindex);
  const t4 = nc.ip4.localMode ? undefined : h.v4?.ifindex;
  const t6 = nc.ip6.localMode ? undefined : h.v6?.ifindex;
  if (nc.ip4.enabled) {
    if (c.ip4.address || c.noCopyAddrs || t4 === undefined) ns.addAddress(ifindex, inanyToText(nc.ip4.addr, 0), nc.ip4.prefixLen);
    else ns.copyAddresses(host, t4, ifindex, 4);
    if (c.ip4.gateway || c.noCopyRoutes || t4 === undefined) ns.addDefaultRoute(ifindex, inanyToText(nc.ip4.gateway, 0));
    else reportFailedRoutes(ns.copyRoutes(host, t4, ifindex, 4).failed);
  }
  if (nc.ip6.enabled) {
    ns.setLinkLocalNoDad(ifindex);
    ns.setLinkFlags(ifindex, 0, IFF_NOARP);
    if (c.ip6.address || c.noCopyAddrs || t6 === undefined) {
      if (!isUnspecified(nc.ip6.addr)) ns.addAddress(ifindex, inanyToText(nc.ip6.addr, 0), 64);
    } else ns.copyAddresses(host, t6, ifindex, 6);
    if (c.ip6.gateway || c.noCopyRoutes || t6 === undefined) ns.addDefaultRoute(ifindex, inanyToText(nc.ip6.gateway, 0));
    else reportFailedRoutes(ns.copyRoutes(host, t6, ifindex, 6).failed);
  }
}

function reportFailedRoutes(failed: readonly Error[]): void {
  for (const e of failed) log.warn(`route not copied: ${e.message}`);
}

function isUnspecified(a: Uint8Array): boolean {
  return a.every((b) => b === 0);
}

/**
 * passt mode: a qemu guest on a UNIX stream socket, with the same services and flows as pasta behind it.
 *
 * The guest's addressing comes from the host, as in pasta, but there is no namespace to enter or configure: the
 * guest configures itself over DHCP, NDP and DHCPv6. Start-up order follows pasta's: everything that can fail
 * (host addressing, the socket path, forwarded ports) happens before readiness is announced; once the socket
 * listens (or --fd was taken on), the qemu option that connects to it is printed, the PID file is written, and
 * orzo goes to the background unless -f. One guest is served at a time; when it disconnects orzo waits for the
 * next one, or exits with status 0 under -1/--one-off (implied by --fd).
 */
import type { Config } from "./cli/config.ts";
import { flowTableInit } from "./flows/epoll.ts";
import { Pif } from "./flows/flow.ts";
import { TcpListeners } from "./flows/tcp_listen.ts";
import { UdpListeners } from "./flows/udp_listen.ts";
import { reportReady, writePidFile } from "./lifecycle.ts";
import type { Stage2State } from "./isolation/stage2_state.ts";
import { confine } from "./isolation/sandbox.ts";
import { log } from "./log.ts";
import { EventLoop } from "./loop.ts";
import { EventStats } from "./loop_stats.ts";
import { resolveNetConf } from "./netconf.ts";
import { readHostAddressing } from "./flows/outbound.ts";
import { Netlink } from "./ns/netlink.ts";
import { readResolvConf } from "./resolv.ts";
import { L2Ingress } from "./tap/ingress.ts";
import { PasstStream } from "./tap/passt_stream.ts";
import { LinkCapture } from "./tap/pcap.ts";

/** Runs passt mode to the end; returns the exit status. */
export async function runPasst(config: Config, state: Stage2State): Promise<number> {
  const hostNl = new Netlink();
  const host = readHostAddressing(config, hostNl);
  hostNl.close();
  const netconf = resolveNetConf(config, host, readResolvConf());

  const loop = new EventLoop();
  const flows = flowTableInit(undefined, loop.id);
  if (config.stats) EventStats.attach(loop, config.stats);
  const ingress = new L2Ingress(netconf);
  const capture = state.pcapFd === undefined ? undefined : new LinkCapture(loop, state.pcapFd);
  const stream = new PasstStream(loop, capture?.sink(ingress) ?? ingress, {
    onConnect: (now) => ingress.announce(now),
    onDisconnect: (reason) => {
      if (config.oneOff) {
        log.info(`passt: ${reason}: exiting`);
        loop.stop(0);
      } else log.info(`passt: ${reason}: waiting for the next guest`);
    },
  });
  capture?.link(stream);
  try {
    // No guest yet: the initial solicitations go out when one connects.
    ingress.attach(loop, stream, false);
    const tcpListeners = new TcpListeners(loop, netconf, ingress.tcp!, ingress.tcpInput!, {
      freebind: config.freebind, noSplice: true, hostLoToNsLo: false,
    });
    tcpListeners.listenAll(config.forward.tcpIn, Pif.HOST);
    new UdpListeners(ingress.udp!, { freebind: config.freebind }).listenAll(config.forward.udpIn, Pif.HOST);
    loop.onFlush((now) => {
      // Frames first, then closing freed flows' fds (which can be slow); frames that freeing queued (an inactivity
      // reset) go right after.
      stream.flush();
      flows.defer(now, false);
      stream.flush();
    });
    loop.every(1000, (now) => flows.defer(now, true));
    if (config.socketFd !== undefined) stream.adopt(config.socketFd, performance.now());
    else {
      if (state.listenFd === undefined || state.socketPath === undefined || state.socketDirFd === undefined) throw new Error("internal: stage 2 of passt without its socket");
      const path = state.socketPath;
      stream.adoptListener(state.listenFd, path, state.socketDirFd);
      log.info(`passt: listening on ${path}; qemu 7.2 or later connects with:`);
      log.info(`    -device virtio-net-pci,netdev=s -netdev stream,id=s,server=off,addr.type=unix,addr.path=${path}`);
      stream.startListening();
    }
    if (state.pidFileFd !== undefined) writePidFile(state.pidFileFd);
    reportReady(state.syslogFd, config.mode);
    loop.installSignals();
    confine("passt");
    const status = await loop.run();
    log.debug(`link ${JSON.stringify(stream.stats)}, stream ${JSON.stringify(stream.streamStats)}, ingress ${JSON.stringify(ingress.drops)}`);
    log.debug(`exiting with status ${status}`);
    return status;
  } finally {
    stream.close();
  }
}

/** The benchmark's scenarios: what is measured, on which path and MTU, and which way is better. */
import { connRate, type Ctx, heldRss, idleRss, iperfTcp, iperfUdp, pingPong, type Sample, startup } from "./lib/measure.ts";
import type { PathKind } from "./lib/targets.ts";

/** One row of the results. */
export interface Scenario {
  id: string;
  title: string;
  unit: string;
  better: "higher" | "lower";
  path: PathKind;
  /** MTU of the tap (-m) and of the veth for the ceiling. */
  mtu: number;
  /** The kernel-only reference: the veth pair, loopback (splice paths), or none (process metrics). */
  ceiling: "veth" | "lo" | null;
  measure: (ctx: Ctx) => Promise<Sample>;
  /** Extra text for the table cell, from the medians of the extra numbers. */
  detail?: (extra: Record<string, number>) => string;
}

const DEFAULT_MTU = 65520;
const retrans = (x: Record<string, number>) => (x.retransmits ? `${Math.round(x.retransmits)} retr` : "");

function tcpThroughput(): Scenario[] {
  const list: Scenario[] = [];
  for (const dir of ["out", "in"] as const) {
    for (const mtu of [DEFAULT_MTU, 1500]) {
      for (const streams of [1, 4]) {
        list.push({
          id: `tcp-${dir}-tap-${streams}s-mtu${mtu}`,
          title: `TCP ${dir === "out" ? "ns→host" : "host→ns"} tap, ${streams} stream${streams > 1 ? "s" : ""}, MTU ${mtu}`,
          unit: "Gbit/s",
          better: "higher",
          path: "tap",
          mtu,
          ceiling: "veth",
          measure: (ctx) => iperfTcp(ctx, dir, streams),
          detail: retrans,
        });
      }
    }
  }
  for (const dir of ["in", "out"] as const) {
    list.push({
      id: `tcp-${dir}-splice-1s`,
      title: `TCP ${dir === "out" ? "ns 127.0.0.1→host (-T)" : "host 127.0.0.1→ns (-t)"} splice, 1 stream`,
      unit: "Gbit/s",
      better: "higher",
      path: "splice",
      mtu: DEFAULT_MTU,
      ceiling: "lo",
      measure: (ctx) => iperfTcp(ctx, dir, 1),
    });
  }
  return list;
}

function udp(): Scenario[] {
  return [1472, 16000].map((len) => ({
    id: `udp-out-tap-${len}`,
    title: `UDP ns→host tap, ${len}-byte datagrams, received`,
    unit: "Gbit/s",
    better: "higher" as const,
    path: "tap" as const,
    mtu: DEFAULT_MTU,
    ceiling: "veth" as const,
    measure: (ctx: Ctx) => iperfUdp(ctx, len),
    detail: (x: Record<string, number>) => `loss ${x.lossPercent?.toFixed(1) ?? "?"}%`,
  }));
}

function latency(): Scenario[] {
  const list: Scenario[] = [];
  for (const path of ["tap", "splice"] as const) {
    for (const dir of ["out", "in"] as const) {
      const ceiling = path === "tap" ? "veth" as const : "lo" as const;
      const way = dir === "out" ? "ns→host" : "host→ns";
      list.push({
        id: `rr-${dir}-${path}`,
        title: `TCP request/response RTT ${way} ${path}`,
        unit: "µs",
        better: "lower",
        path,
        mtu: DEFAULT_MTU,
        ceiling,
        measure: (ctx) => pingPong(ctx, dir),
      });
      list.push({
        id: `crr-${dir}-${path}`,
        title: `TCP connect+request+reply+close ${way} ${path}`,
        unit: "conn/s",
        better: "higher",
        path,
        mtu: DEFAULT_MTU,
        ceiling,
        measure: (ctx) => connRate(ctx, dir),
      });
    }
  }
  return list;
}

function processMetrics(): Scenario[] {
  const base = { unit: "MiB", better: "lower" as const, mtu: DEFAULT_MTU, ceiling: null };
  // The value counts every process of the instance; the detail gives the anonymous part beside it.
  const anon = (x: Record<string, number>) => `anon ${x.anonMiB?.toFixed(1) ?? "?"}`;
  const perConn = (x: Record<string, number>) => `${x.perConnectionKiB?.toFixed(1) ?? "?"} KiB/conn, ${anon(x)}`;
  return [
    { ...base, id: "rss-idle", title: "Resident memory (VmRSS, all processes), idle", path: "tap", measure: idleRss, detail: anon },
    { ...base, id: "rss-1000-tap", title: "Resident memory, 1,000 connections via -t, tap", path: "tap", measure: (ctx) => heldRss(ctx, 1000),
      detail: perConn },
    { ...base, id: "rss-1000-splice", title: "Resident memory, 1,000 connections via -t, splice", path: "splice", measure: (ctx) => heldRss(ctx, 1000),
      detail: perConn },
    { ...base, unit: "ms", id: "startup", title: "Start to pid file (-P)", path: "tap", measure: startup },
  ];
}

/** All scenarios, in the order they run and print. */
export const SCENARIOS: Scenario[] = [...tcpThroughput(), ...udp(), ...latency(), ...processMetrics()];

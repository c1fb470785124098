/** Checks of a running orzo instance's isolation (doc/isolation.md), read from /proc of every thread. */
import { expect } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { waitFor } from "./netns.ts";

const CAP_NET_BIND_SERVICE = 10;
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
/** The bounding set of pasta mode (chain.ts, doc/isolation.md). */
export const PASTA_CAPS = (1n << BigInt(CAP_NET_BIND_SERVICE)) | (1n << BigInt(CAP_NET_ADMIN)) | (1n << BigInt(CAP_SYS_ADMIN));
/** The bounding set of passt mode. */
export const PASST_CAPS = 1n << BigInt(CAP_SYS_ADMIN);

/** Every thread's status fields that isolation sets. */
export function threads(pid: number) {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const text = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    const field = (name: string) => new RegExp(`^${name}:\\s+(.*)$`, "m").exec(text)?.[1] ?? "";
    return {
      uid: field("Uid").split(/\s+/).map(Number),
      gid: field("Gid").split(/\s+/).map(Number),
      capEff: BigInt(`0x${field("CapEff")}`),
      capPrm: BigInt(`0x${field("CapPrm")}`),
      capBnd: BigInt(`0x${field("CapBnd")}`),
      capAmb: BigInt(`0x${field("CapAmb")}`),
      noNewPrivs: field("NoNewPrivs"),
      seccomp: field("Seccomp"),
      root: readdirSync(`/proc/${pid}/task/${tid}/root`),
    };
  });
}

/**
 * The instance's checks shared by every mode: one process of orzo, every thread confined (IDs id, bounding set
 * caps, no_new_privs, seccomp filter, empty root). The filter comes last, just after the PID file is written (as
 * in pasta), so it is waited for (bounded).
 */
export async function expectConfined(pid: number, id: number, caps: bigint): Promise<void> {
  expect(await waitFor(() => threads(pid).every((t) => t.seccomp === "2"), 5000)).toBe(true);
  const all = threads(pid);
  expect(all.length).toBeGreaterThan(1);
  for (const t of all) {
    expect(t.uid).toEqual([id, id, id, id]);
    expect(t.gid).toEqual([id, id, id, id]);
    expect(t.capBnd).toBe(caps);
    expect(t.capEff & ~caps).toBe(0n);
    expect(t.capPrm & ~caps).toBe(0n);
    expect(t.capAmb).toBe(0n);
    expect(t.noNewPrivs).toBe("1");
    expect(t.seccomp).toBe("2");
    expect(t.root).toEqual([]);
  }
  // One orzo process: no second runtime beside it.
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  for (const c of children) expect(readlinkSync(`/proc/${c}/exe`)).not.toBe(readlinkSync(`/proc/${pid}/exe`));
}

/** Waits for a pid file that orzo writes once ready, and returns the PID in it. */
export async function readyPid(pidFile: string): Promise<number> {
  expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"), 10_000)).toBe(true);
  return Number(readFileSync(pidFile, "utf8"));
}

/**
 * What the Podman and RootlessKit tests run on the host side of the test host namespace: socat services that send
 * a file or keep what they receive, random files with their sha256, and waits (bounded) on listening sockets read
 * from /proc/PID/net of any process in the namespace that matters (the holder for the host, a container's PID).
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { TestHost } from "../helpers/netns.ts";
import { waitFor } from "../helpers/netns.ts";

/** sha256 of a file, hex. */
export function sha256File(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

/** Writes size random bytes to path (world-readable, for the rootless user and its containers); returns their sha256. */
export function randomFile(path: string, size: number): string {
  const data = new Uint8Array(size);
  for (let off = 0; off < size; off += 65_536) crypto.getRandomValues(data.subarray(off, Math.min(size, off + 65_536)));
  writeFileSync(path, data, { mode: 0o644 });
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** The local ports with a listening TCP socket (state 0A) or a bound UDP socket in the network namespace of pid. */
export function boundPorts(pid: number, proto: "tcp" | "udp"): Set<number> {
  const ports = new Set<number>();
  for (const file of [proto, `${proto}6`]) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if (proto === "tcp" && f[3] !== "0A") continue;
      ports.add(Number.parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports;
}

/** Waits (bounded) until every port is bound in pid's network namespace; throws naming the missing ones. */
export async function waitBound(pid: number, proto: "tcp" | "udp", ports: number[], timeoutMs = 10_000): Promise<void> {
  if (await waitFor(() => { const b = boundPorts(pid, proto); return ports.every((p) => b.has(p)); }, timeoutMs, 20)) return;
  const b = boundPorts(pid, proto);
  throw new Error(`${proto} ports ${ports.filter((p) => !b.has(p)).join(", ")} not bound in the namespace of ${pid} within ${timeoutMs} ms`);
}

/** socat's address for a listener on address:port (IPv6 in brackets). */
function listenAddress(address: string, port: number): string {
  return address.includes(":") ? `TCP6-LISTEN:${port},bind=[${address}],ipv6only=1,reuseaddr` : `TCP4-LISTEN:${port},bind=${address},reuseaddr`;
}

/** Starts a TCP service in the host namespace that sends file to every connection. */
export function serveFile(host: TestHost, address: string, port: number, file: string): ReturnType<typeof Bun.spawn> {
  // -U: from the second address to the first, which each forked child opens anew.
  return host.spawn(["socat", "-U", `${listenAddress(address, port)},fork`, `OPEN:${file},rdonly`]);
}

/**
 * Starts a TCP service in the host namespace that answers each connection, once the client has sent all and shut
 * down its side, with the sha256 of what it received (sha256sum's line): the client learns that every byte
 * arrived before it goes away, so a sender that exits at once cannot lose what was still in flight.
 */
export function hashService(host: TestHost, address: string, port: number): ReturnType<typeof Bun.spawn> {
  return host.spawn(["socat", "-t", "30", `${listenAddress(address, port)},fork`, "EXEC:sha256sum"]);
}

/** Waits for a process to end, bounded; returns its exit status, or "timeout". */
export function exited(p: ReturnType<typeof Bun.spawn>, ms = 30_000): Promise<number | "timeout"> {
  return Promise.race([p.exited, Bun.sleep(ms).then(() => "timeout" as const)]);
}

/** Connects from the host namespace, sends file (or nothing) and returns the sha256 of what came back. */
export async function fetchSha(host: TestHost, address: string, port: number, send?: string): Promise<string> {
  const peer = address.includes(":") ? `TCP6:[${address}]:${port}` : `TCP4:${address}:${port}`;
  const cmd = send ? `socat -t 30 -T 30 - ${peer} < ${send} | sha256sum` : `socat -u -T 30 ${peer} - | sha256sum`;
  const r = await host.run(["bash", "-o", "pipefail", "-c", cmd], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}): ${r.stderr}`);
  return r.stdout.split(/\s/)[0];
}

/**
 * PortScanner on /proc/net text in temporary files (re-read from the start at every scan, as the real files are):
 * which listeners a UDP table opens and closes, with orzo's own UDP and TCP listeners left out, each protocol by
 * its own map.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newPortMap, portBitSet } from "../src/fwd/procnet.ts";
import { parseForwardSpecs } from "../src/fwd/rules.ts";
import { PortScanner } from "../src/fwd/scan.ts";

const HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
/** A /proc/net/{tcp,udp} line for a socket on 0.0.0.0:port in state st. */
const line = (slot: number, port: number, st: string) =>
  `   ${slot}: 00000000:${port.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 1 1\n`;

const dir = mkdtempSync(join(tmpdir(), "orzo-scan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("PortScanner, UDP table", () => {
  test("UDP ports less orzo's UDP listeners, TCP ports less its TCP listeners; gone ports are closed", () => {
    const tcpPath = join(dir, "tcp");
    const udpPath = join(dir, "udp");
    // TCP listening on 2024, 18022, 18080, 18443 (a connected one on 5000); UDP bound on 15353, 15354 (connected on 5001).
    writeFileSync(tcpPath, HEADER + [2024, 18022, 18080, 18443].map((p, i) => line(i, p, "0A")).join("") + line(9, 5000, "01"));
    writeFileSync(udpPath, HEADER + line(0, 15353, "07") + line(1, 15354, "07") + line(2, 5001, "01"));
    const files = { tcp: openSync(tcpPath, "r"), udp: openSync(udpPath, "r") };
    const table = parseForwardSpecs(["auto"], { option: "-u", pasta: true, ipv4: true, ipv6: true, ephemeral: [32768, 60999] });
    const exclude = newPortMap();
    const excludeTcp = newPortMap();
    // orzo's own UDP listeners there: 15353 (a real UDP port) and 2024 (which is also a TCP port, so still wanted).
    for (const p of [15353, 2024]) portBitSet(exclude, p);
    // orzo's own TCP listeners there: 18080, and 15354 (a UDP socket is really bound there, so still wanted).
    for (const p of [18080, 15354]) portBitSet(excludeTcp, p);
    const opened: number[] = [];
    const closed: number[] = [];
    let nextFd = 100;
    const scanner = new PortScanner(table, files, {
      open: (port) => {
        opened.push(port);
        return nextFd++;
      },
      close: (_fd, port) => closed.push(port),
      exclude,
      excludeTcp,
    });
    try {
      scanner.scan();
      expect(opened).toEqual([2024, 15354, 18022, 18443]);
      scanner.scan();
      expect(opened).toHaveLength(4);
      writeFileSync(tcpPath, HEADER);
      scanner.scan();
      expect(closed.sort((a, b) => a - b)).toEqual([2024, 18022, 18443]);
      expect(scanner.stats).toMatchObject({ scans: 3, opened: 4, closed: 3, failed: 0 });
    } finally {
      closeSync(files.tcp);
      closeSync(files.udp);
    }
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readlinkSync } from "node:fs";
import { NamespaceThread, NsThreadError } from "../src/ns/ns_thread.ts";
import { AF_INET, O_CLOEXEC, O_RDONLY, SOCK_CLOEXEC, SOCK_STREAM } from "../src/syscalls/constants.ts";
import { close, open, readBytes } from "../src/syscalls/io.ts";
import { bind, getsockname } from "../src/syscalls/socket.ts";
import { must, run, waitFor } from "./helpers/netns.ts";

/** Reads a whole (small) file through an fd. */
function readAll(fd: number): string {
  const buf = new Uint8Array(65536);
  let text = "";
  for (;;) {
    const n = readBytes(fd, buf);
    if (n <= 0) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

describe("namespace thread", () => {
  test("in a new network namespace: tap, sockets and files, while this thread stays in its own", () => {
    const home = readlinkSync("/proc/thread-self/ns/net");
    const ns = NamespaceThread.start({ kind: "new" });
    try {
      expect(readlinkSync("/proc/thread-self/ns/net")).toBe(home);
      const tap = ns.openTap("orzotest0");
      expect(tap).toBeGreaterThan(2);
      const dev = ns.open("/proc/net/dev", O_RDONLY);
      const text = readAll(dev);
      close(dev);
      close(tap);
      expect(text).toContain("lo:");
      expect(text).toContain("orzotest0:");
      expect(text).not.toMatch(/\beth0:/);
      // A socket made there is usable here under the same number, and keeps the namespace it was made in.
      const s = ns.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bind(s, { family: "ipv4", address: "0.0.0.0", port: 0 });
      expect(getsockname(s)).toMatchObject({ family: "ipv4" });
      expect(readlinkSync(`/proc/self/fd/${s}`)).toMatch(/^socket:/);
      close(s);
      ns.writeFile("/proc/sys/net/ipv4/ping_group_range", "0 0");
      expect(() => ns.open("/nonexistent", O_RDONLY)).toThrow(NsThreadError);
    } finally {
      ns.close();
    }
  });

  test("asynchronous requests: replies reach their callback while another request waits, or through takeReplies", async () => {
    const ns = NamespaceThread.start({ kind: "new" });
    try {
      const got: (number[] | Error)[] = [];
      ns.socketsAsync(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 3, (r) => got.push(r));
      // The synchronous request is answered after the asynchronous one: waiting for it files that reply first.
      const s = ns.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      expect(got).toHaveLength(1);
      expect(got[0]).toBeArrayOfSize(3);
      ns.socketsAsync(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 2, (r) => got.push(r));
      ns.requestAsync({ op: "open", path: "/nonexistent", flags: O_RDONLY }, (r) => got.push(r));
      await waitFor(() => ns.takeReplies() && got.length === 3, 5000);
      expect(got[1]).toBeArrayOfSize(2);
      expect(got[2]).toBeInstanceOf(NsThreadError);
      expect((got[2] as Error).message).toContain("open");
      // A callback that throws does not become the failure of the request that was waiting meanwhile.
      ns.socketsAsync(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 1, (r) => {
        if (Array.isArray(r)) r.forEach((fd) => close(fd));
        throw new Error("callback failed");
      });
      const s2 = ns.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      expect(s2).toBeGreaterThan(2);
      close(s2);
      for (const fd of [s, ...(got[0] as number[]), ...(got[1] as number[])]) {
        bind(fd, { family: "ipv4", address: "0.0.0.0", port: 0 });
        close(fd);
      }
    } finally {
      ns.close();
    }
  });

  describe("joining", () => {
    const name = `orzo-nsthread-${process.pid}`;
    beforeAll(async () => {
      await must(["ip", "netns", "add", name]);
      await must(["ip", "-n", name, "link", "add", "joinme0", "type", "veth", "peer", "name", "joinme1"]);
    });
    afterAll(async () => {
      await run(["ip", "netns", "del", name]);
    });

    test("joins an existing network namespace through its fd", () => {
      const ns = NamespaceThread.start({ kind: "join", netnsFd: open(`/run/netns/${name}`, O_RDONLY | O_CLOEXEC) });
      try {
        const dev = ns.open("/proc/net/dev", O_RDONLY);
        expect(readAll(dev)).toContain("joinme0:");
        close(dev);
      } finally {
        ns.close();
      }
    });

    test("an fd that is no network namespace is a clear error", () => {
      expect(() => NamespaceThread.start({ kind: "join", netnsFd: open("/dev/null", O_RDONLY | O_CLOEXEC) })).toThrow(
        "the namespace thread could not enter its namespace: setns: EINVAL",
      );
    });
  });
});

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AgentError, NamespaceAgent } from "../src/ns/agent.ts";
import { AF_INET, O_RDONLY, SOCK_CLOEXEC, SOCK_STREAM } from "../src/syscalls/constants.ts";
import { close, readBytes } from "../src/syscalls/io.ts";
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

/** Waits for the agent's next event. */
async function nextEvent(agent: NamespaceAgent, timeoutMs = 5000) {
  let got: ReturnType<NamespaceAgent["takeEvents"]> = [];
  await waitFor(() => {
    got = agent.takeEvents();
    return got === null || got.length > 0;
  }, timeoutMs);
  return got;
}

describe("namespace agent", () => {
  test("in a new network namespace: tap, sockets, files and a command with its exit status", async () => {
    const agent = await NamespaceAgent.start({ kind: "new" });
    try {
      const tap = agent.openTap("orzotest0");
      expect(tap).toBeGreaterThan(2);
      const dev = agent.open("/proc/net/dev", O_RDONLY);
      const text = readAll(dev);
      close(dev);
      close(tap);
      expect(text).toContain("lo:");
      expect(text).toContain("orzotest0:");
      expect(text).not.toMatch(/\beth0:/);
      // A socket made in the namespace binds an address only the namespace has (its loopback, down: 127.0.0.1
      // is still assignable there), and keeps the namespace it was made in.
      const s = agent.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bind(s, { family: "ipv4", address: "0.0.0.0", port: 0 });
      expect(getsockname(s)).toMatchObject({ family: "ipv4" });
      close(s);
      agent.writeFile("/proc/sys/net/ipv4/ping_group_range", "0 0");
      expect(() => agent.open("/nonexistent", O_RDONLY)).toThrow(AgentError);

      const pid = agent.spawn(["sh", "-c", "exit 7"], { PATH: "/usr/bin:/bin" });
      expect(pid).toBeGreaterThan(0);
      expect(await nextEvent(agent)).toEqual([{ event: "exit", status: 7 }]);
    } finally {
      agent.close();
      expect(await agent.exited).toBe(0);
    }
  });

  test("asynchronous requests: replies reach their callback while another request waits, or through takeEvents", async () => {
    const agent = await NamespaceAgent.start({ kind: "new" });
    try {
      const got: (number[] | Error)[] = [];
      agent.socketsAsync(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 3, (r) => got.push(r));
      // The synchronous request is answered after the asynchronous one: waiting for it files that reply first.
      const s = agent.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      expect(got).toHaveLength(1);
      expect(got[0]).toBeArrayOfSize(3);
      agent.socketsAsync(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 2, (r) => got.push(r));
      agent.requestAsync({ op: "open", path: "/nonexistent", flags: O_RDONLY }, (r) => got.push(r));
      await waitFor(() => agent.takeEvents() !== null && got.length === 3, 5000);
      expect(got[1]).toBeArrayOfSize(2);
      expect(got[2]).toBeInstanceOf(AgentError);
      expect((got[2] as Error).message).toContain("open");
      // A callback that throws does not become the failure of the request that was waiting meanwhile.
      agent.socketsAsync(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 1, (r) => {
        if (Array.isArray(r)) r.forEach((fd) => close(fd));
        throw new Error("callback failed");
      });
      const s2 = agent.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      expect(s2).toBeGreaterThan(2);
      close(s2);
      for (const fd of [s, ...(got[0] as number[]), ...(got[1] as number[])]) {
        bind(fd, { family: "ipv4", address: "0.0.0.0", port: 0 });
        close(fd);
      }
    } finally {
      agent.close();
    }
  });

  test("a command killed by a signal reports 128 + the signal number", async () => {
    const agent = await NamespaceAgent.start({ kind: "new" });
    try {
      agent.spawn(["sh", "-c", "kill -TERM $$"], { PATH: "/usr/bin:/bin" });
      expect(await nextEvent(agent)).toEqual([{ event: "exit", status: 143 }]);
    } finally {
      agent.close();
    }
  });

  describe("joining", () => {
    const ns = `orzo-agent-${process.pid}`;
    beforeAll(async () => {
      await must(["ip", "netns", "add", ns]);
      await must(["ip", "-n", ns, "link", "add", "joinme0", "type", "veth", "peer", "name", "joinme1"]);
    });
    afterAll(async () => {
      await run(["ip", "netns", "del", ns]);
    });

    test("joins an existing network namespace by path", async () => {
      const agent = await NamespaceAgent.start({ kind: "join", netnsPath: `/run/netns/${ns}` });
      try {
        const dev = agent.open("/proc/net/dev", O_RDONLY);
        expect(readAll(dev)).toContain("joinme0:");
        close(dev);
      } finally {
        agent.close();
      }
    });

    test("a namespace that cannot be joined is a clear error", async () => {
      await expect(NamespaceAgent.start({ kind: "join", netnsPath: "/run/netns/orzo-does-not-exist" })).rejects.toThrow(
        "open(/run/netns/orzo-does-not-exist): ENOENT (No such file or directory)",
      );
    });
  });

  test("with a user namespace (entered by util-linux unshare first): tap and command work inside", async () => {
    const agent = await NamespaceAgent.start({ kind: "new", newUserns: { uid: 0, gid: 0 } });
    try {
      close(agent.openTap("orzouser0"));
      agent.spawn(["sh", "-c", 'test "$(readlink /proc/self/ns/user)" != "$0" && exit 9', (await must(["readlink", "/proc/self/ns/user"])).trim()], { PATH: "/usr/bin:/bin" });
      expect(await nextEvent(agent)).toEqual([{ event: "exit", status: 9 }]);
    } finally {
      agent.close();
    }
  });
});

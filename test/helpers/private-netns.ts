/**
 * A private network namespace for the test thread alone, for in-process tests that hand guest traffic to real
 * sockets (ping sockets): only loopback exists, so whatever a fuzzed frame asks for cannot leave the machine.
 *
 * A network namespace belongs to a thread, not a process: unshare(CLONE_NEWNET) moves only the calling (JS)
 * thread, sockets it opens stay in the new namespace for their whole life, and setns() brings the thread home
 * afterwards. The body must therefore be synchronous: an await would let unrelated code run in the namespace.
 */
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { Netlink } from "../../src/ns/netlink.ts";
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY } from "../../src/syscalls/constants.ts";
import { close, open } from "../../src/syscalls/io.ts";
import { setns, unshare } from "../../src/syscalls/process.ts";

const OWN_NETNS = "/proc/thread-self/ns/net";
const PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range";

/**
 * Runs fn with the calling thread in a fresh network namespace (lo up, ping sockets allowed to every group),
 * then returns the thread to its own namespace, even when fn throws. Needs CAP_SYS_ADMIN (tests run as root).
 */
export function inPrivateNetns<T>(fn: () => T): T {
  const home = open(OWN_NETNS, O_RDONLY | O_CLOEXEC);
  const homeId = readlinkSync(OWN_NETNS);
  try {
    unshare(CLONE_NEWNET);
    try {
      if (readlinkSync(OWN_NETNS) === homeId) throw new Error("unshare(CLONE_NEWNET) left the thread in its namespace");
      // /proc/sys/net is the opener's namespace: this sets the private namespace's range only.
      writeFileSync(PING_GROUP_RANGE, "0 2147483647");
      if (readFileSync(PING_GROUP_RANGE, "utf8").trim().split(/\s+/).join(" ") !== "0 2147483647") {
        throw new Error("ping_group_range did not take in the private namespace");
      }
      const nl = new Netlink();
      try {
        nl.setLinkUp(nl.linkIndex("lo"));
      } finally {
        nl.close();
      }
      return fn();
    } finally {
      setns(home, CLONE_NEWNET);
    }
  } finally {
    close(home);
    if (readlinkSync(OWN_NETNS) !== homeId) throw new Error("the test thread did not get back to its own network namespace");
  }
}

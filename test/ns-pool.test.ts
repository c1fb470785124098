import { describe, expect, test } from "bun:test";
import { NS_POOL_BATCH, NS_POOL_LOW, NsSocketPool } from "../src/flows/ns_pool.ts";
import { AF_INET, AF_INET6, F_GETFD, SOCK_CLOEXEC, SOCK_DGRAM } from "../src/syscalls/constants.ts";
import { close, fcntl } from "../src/syscalls/io.ts";
import { socket } from "../src/syscalls/socket.ts";

/** A stand-in for the namespace agent: synchronous batches at once, asynchronous ones when the test says. */
class FakeAgent {
  syncCalls: number[] = [];
  asyncCalls: number[] = [];
  later: (() => void)[] = [];
  /** Every socket made, in order. */
  made: number[] = [];
  fail = false;

  private make(domain: number, type: number, protocol: number, count: number): number[] {
    const fds = Array.from({ length: count }, () => socket(domain, type, protocol));
    this.made.push(...fds);
    return fds;
  }

  sockets(domain: number, type: number, protocol: number, count: number): number[] {
    this.syncCalls.push(domain);
    if (this.fail) throw new Error("agent gone");
    return this.make(domain, type, protocol, count);
  }

  socketsAsync(domain: number, type: number, protocol: number, count: number, done: (r: number[] | Error) => void): void {
    this.asyncCalls.push(domain);
    this.later.push(() => done(this.fail ? new Error("agent gone") : this.make(domain, type, protocol, count)));
  }

  deliver(): void {
    for (const f of this.later.splice(0)) f();
  }
}

const isOpen = (fd: number) => fcntl(fd, F_GETFD, 0) >= 0;

/** A pool taken from until it is below its low mark: one background refill asked for, not delivered yet. */
function belowLowMark() {
  const agent = new FakeAgent();
  const pool = new NsSocketPool(agent, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const taken = Array.from({ length: NS_POOL_BATCH - NS_POOL_LOW + 1 }, () => pool.take(true));
  return { agent, pool, taken };
}

describe("namespace socket pool", () => {
  test("waits for the agent only when empty; refills in the background below the low mark, one request at a time", () => {
    const agent = new FakeAgent();
    const pool = new NsSocketPool(agent, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const taken: number[] = [];
    taken.push(pool.take(true));
    expect(agent.syncCalls).toEqual([AF_INET]);
    expect(pool.stats.waits).toBe(1);
    while (taken.length < NS_POOL_BATCH - NS_POOL_LOW) taken.push(pool.take(true));
    expect(agent.asyncCalls).toEqual([]);
    taken.push(pool.take(true));
    expect(agent.asyncCalls).toEqual([AF_INET]);
    // Taking more while the refill is on its way asks for nothing more.
    while (taken.length < NS_POOL_BATCH) taken.push(pool.take(true));
    expect(agent.asyncCalls).toHaveLength(1);
    agent.deliver();
    for (let i = 0; i < NS_POOL_BATCH; i++) taken.push(pool.take(true));
    expect(agent.syncCalls).toHaveLength(1);
    expect(pool.stats).toEqual({ refills: 2, waits: 1 });
    expect(new Set(taken).size).toBe(taken.length);
    expect(taken.every(isOpen)).toBe(true);
    // The other IP version has a pool of its own.
    taken.push(pool.take(false));
    expect(agent.syncCalls).toEqual([AF_INET, AF_INET6]);
    pool.close();
    for (const fd of taken) close(fd);
  });

  test("a failed refill is asked again; an agent that cannot answer gives -1, not an exception", () => {
    const { agent, pool, taken } = belowLowMark();
    agent.fail = true;
    agent.deliver();
    taken.push(pool.take(true));
    expect(agent.asyncCalls).toHaveLength(2);
    agent.deliver();
    while (taken.length < NS_POOL_BATCH) taken.push(pool.take(true));
    expect(pool.take(true)).toBe(-1);
    expect(taken.every(isOpen)).toBe(true);
    pool.close();
    for (const fd of taken) close(fd);
  });

  test("closing closes what the pool holds and what arrives afterwards", () => {
    const { agent, pool, taken } = belowLowMark();
    expect(agent.later).toHaveLength(1);
    const held = agent.made.filter((fd) => !taken.includes(fd));
    expect(held.length).toBe(NS_POOL_LOW - 1);
    expect(held.every(isOpen)).toBe(true);
    pool.close();
    expect(held.filter(isOpen)).toEqual([]);
    const before = agent.made.length;
    agent.deliver();
    const arrived = agent.made.slice(before);
    expect(arrived).toHaveLength(NS_POOL_BATCH);
    expect(arrived.filter(isOpen)).toEqual([]);
    expect(taken.every(isOpen)).toBe(true);
    for (const fd of taken) close(fd);
  });
});

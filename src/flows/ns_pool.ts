/**
 * Sockets made in the namespace ahead of need (pasta mode): a spliced connection or datagram flow into the
 * namespace takes one at once instead of waiting for the namespace thread.
 *
 * Each pool (one per IP version) asks the namespace thread for a batch in the background when it runs low, and
 * the batch arrives through the loop like any other reply: under connection churn the pool never runs dry, and
 * the loop never blocks on the namespace thread (a blocked loop stalls every flow; a synchronous refill from
 * the second process orzo once had cost 20 µs per connection on average under strace, milliseconds at worst).
 * Only an empty pool, at the start or after a failed refill, still waits for the namespace thread.
 */
import { AF_INET, AF_INET6 } from "../syscalls/constants.ts";
import { close } from "../syscalls/io.ts";
import { rateLimited } from "../log.ts";

/** Where namespace-side sockets come from (the namespace thread). */
export interface NamespaceSockets {
  /** Makes count sockets of one kind in the namespace. */
  sockets(domain: number, type: number, protocol: number, count: number): number[];
  /** The same without waiting: done gets the fds, or an Error, later. */
  socketsAsync(domain: number, type: number, protocol: number, count: number, done: (result: number[] | Error) => void): void;
}

/** Sockets asked of the namespace thread at once (at most what one request makes). */
export const NS_POOL_BATCH = 16;
/** A refill is asked for when fewer than this many are left. */
export const NS_POOL_LOW = 8;

const poolLog = rateLimited("namespace socket pool");

/** Namespace sockets of one type and protocol, per IP version. */
export class NsSocketPool {
  /** Counters: refills asked for in the background, and times the pool was empty and the loop waited. */
  readonly stats = { refills: 0, waits: 0 };
  private readonly pool: Record<4 | 6, number[]> = { 4: [], 6: [] };
  private readonly refilling: Record<4 | 6, boolean> = { 4: false, 6: false };
  private closed = false;

  constructor(private readonly ns: NamespaceSockets, private readonly type: number, private readonly protocol: number) {}

  /** A socket of this IP version made in the namespace, or -1 when the namespace thread could not make one. */
  take(v4: boolean): number {
    const fam = v4 ? 4 : 6;
    const pool = this.pool[fam];
    if (pool.length === 0) {
      this.stats.waits++;
      try {
        pool.push(...this.ns.sockets(v4 ? AF_INET : AF_INET6, this.type, this.protocol, NS_POOL_BATCH));
      } catch (e) {
        poolLog.warn(`no namespace socket: ${(e as Error).message}`);
      }
    }
    const fd = pool.pop() ?? -1;
    if (pool.length < NS_POOL_LOW) this.refill(fam);
    return fd;
  }

  /** Closes the pooled sockets; a refill still on its way is closed when it arrives. */
  close(): void {
    this.closed = true;
    for (const fam of [4, 6] as const) for (const fd of this.pool[fam].splice(0)) close(fd);
  }

  private refill(fam: 4 | 6): void {
    if (this.refilling[fam] || this.closed) return;
    this.refilling[fam] = true;
    this.stats.refills++;
    const done = (result: number[] | Error): void => {
      this.refilling[fam] = false;
      if (result instanceof Error) poolLog.warn(`no namespace socket: ${result.message}`);
      else if (this.closed) for (const fd of result) close(fd);
      else this.pool[fam].push(...result);
    };
    try {
      this.ns.socketsAsync(fam === 4 ? AF_INET : AF_INET6, this.type, this.protocol, NS_POOL_BATCH, done);
    } catch (e) {
      done(e as Error);
    }
  }
}

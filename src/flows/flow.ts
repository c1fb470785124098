/**
 * The flow table: every connection and pseudo-connection (TCP, spliced TCP, UDP, ping) in one preallocated
 * table of fixed capacity, stored as typed arrays indexed by flow number (struct of arrays).
 *
 * A flow has two sides: side 0 (INISIDE) is whoever initiated it, side 1 (TGTSIDE) where we forward it. Each side
 * has its interface (pif: TAP, HOST or SPLICE), our address and port on that side, and the endpoint's address and
 * port, all addresses as 16-byte inany. Flows go NEW -> INI -> TGT -> TYPED -> ACTIVE as the sides and the type
 * are filled in; at most one flow may be in the building states, and only the newest allocation can be cancelled.
 *
 * Sides can be entered in a hash index keyed by (protocol, pif, our address, endpoint address, ports) so that a
 * packet from the tap or a datagram on a listening socket finds its flow. Flows are never freed in the middle of
 * a loop cycle: handlers mark them, and flowDefer() frees them at the end of the cycle, so flow numbers in events
 * still pending in the same cycle stay valid.
 */
import { INANY_LEN, inanyToText } from "../wire/inany.ts";
import { copyBytes } from "../wire/bytes.ts";
import { log, logEnabled, rateLimited } from "../log.ts";

const tableFullLog = rateLimited("flow table full");

/** Flow types. */
export const FlowType = { NONE: 0, TCP: 1, TCP_SPLICE: 2, PING: 3, UDP: 4 } as const;
/** A flow type value. */
export type FlowType = (typeof FlowType)[keyof typeof FlowType];
/** Flow type names for logs. */
export const FLOW_TYPE_NAMES = ["NONE", "TCP", "TCP_SPLICE", "PING", "UDP"] as const;

/** Interfaces a flow side can be on ("passt interfaces"). */
export const Pif = { NONE: 0, HOST: 1, TAP: 2, SPLICE: 3 } as const;
/** A pif value. */
export type Pif = (typeof Pif)[keyof typeof Pif];
const PIF_NAMES = ["NONE", "HOST", "TAP", "SPLICE"] as const;

/** Flow lifecycle states. */
export const FlowState = { FREE: 0, NEW: 1, INI: 2, TGT: 3, TYPED: 4, ACTIVE: 5 } as const;
const STATE_NAMES = ["FREE", "NEW", "INI", "TGT", "TYPED", "ACTIVE"] as const;

/** The initiating side. */
export const INISIDE = 0;
/** The target side. */
export const TGTSIDE = 1;
/** A side index. */
export type Side = 0 | 1;

/** The IP protocol number each flow type's sides are hashed with. */
export const FLOW_PROTO = [0, 6, 6, 1, 17] as const;

/** Default capacity: the most flows of all types at once. */
export const FLOW_CAPACITY_DEFAULT = 131071;

const ADDR_WORDS = INANY_LEN / 4;
/** Words per side in the address array: our address, then the endpoint's. */
const SIDE_WORDS = 2 * ADDR_WORDS;
/** An empty bucket: buckets hold side index + 1, so a fresh (never touched, never resident) array is all empty. */
const EMPTY = 0;

/** Per-type behaviour the table needs at the end of a cycle. */
export interface FlowTypeOps {
  /** True when the flow should be freed now (closed, or expired when timerDue). */
  shouldFree(flow: number, now: number, timerDue: boolean): boolean;
  /** Releases the flow's resources (fds, pipes) before its slot is freed. */
  release(flow: number): void;
}

/** The flow table. */
export class FlowTable {
  /** Most flows at once. */
  readonly capacity: number;
  /** FlowState per flow. */
  readonly state: Uint8Array;
  /** FlowType per flow. */
  readonly type: Uint8Array;
  /** Pif per side, at [2 * flow + side]. */
  readonly pif: Uint8Array;
  /** Addresses per side as u32 words: our address at [(2f+s)*8], the endpoint's at [(2f+s)*8 + 4]. */
  readonly addrWords: Uint32Array;
  /** The same addresses as bytes: our address at [(2f+s)*32], the endpoint's at [(2f+s)*32 + 16]. */
  readonly addrBytes: Uint8Array;
  /** Our port per side. */
  readonly oport: Uint16Array;
  /** The endpoint's port per side. */
  readonly eport: Uint16Array;
  /** The socket of each side (-1: none; the tap side of a TCP flow has none). */
  readonly fd: Int32Array;
  /** The per-connection timerfd (-1: none yet). */
  readonly timer: Int32Array;
  /** The id of the epoll instance the flow's fds are registered in. */
  readonly epollId: Uint8Array;
  /** Which fds are in epoll: bit 0/1 the socket of side 0/1, bit 2 the timer. */
  readonly registered: Uint8Array;
  /** The event mask each registered socket has in epoll, by flow and side (2f + side). */
  readonly epollMask: Uint32Array;
  /** Type-specific state bits (TcpEvent, SpliceEvent...). */
  readonly events: Uint32Array;
  /** Type-specific condition bits (TcpFlag, SpliceFlag...). */
  readonly flags: Uint32Array;
  /** When the flow last saw traffic (ms, monotonic), for expiry. */
  readonly lastActive: Float64Array;
  /** Which sides are in the hash index: bit 0/1. */
  readonly hashed: Uint8Array;
  /** Flows marked to be freed at the end of the cycle. */
  readonly freePending: Uint8Array;
  /** Allocations refused because the table was full. */
  refusedFull = 0;
  /** Called for every freed flow after its type's release: takes the flow's fds out of epoll and closes them. */
  releaseFds: (flow: number) => void = () => {};

  /** The hash index: buckets of flow side indices plus one ((flow << 1 | side) + 1), 0 when empty. */
  private readonly buckets: Int32Array;
  private readonly bucketMask: number;
  private readonly seed: number;
  /** Freed flow numbers, most recent on top; below them come the never-used ones, from `fresh` up. */
  private readonly freeStack: Int32Array;
  private freeTop = 0;
  private fresh = 0;
  /** One past the highest flow number ever allocated: scans stop here. */
  private highWater = 0;
  private building = -1;
  private active = 0;
  private readonly typeOps: (FlowTypeOps | undefined)[] = [];

  /** The epoll instance new flows register in (the loop that owns the table). */
  readonly defaultEpollId: number;

  constructor(capacity = FLOW_CAPACITY_DEFAULT, epollId = 0) {
    this.defaultEpollId = epollId;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 0x3fffffff) {
      throw new RangeError(`flow table capacity out of range: ${capacity}`);
    }
    this.capacity = capacity;
    this.state = new Uint8Array(capacity);
    this.type = new Uint8Array(capacity);
    this.pif = new Uint8Array(2 * capacity);
    this.addrWords = new Uint32Array(2 * capacity * SIDE_WORDS);
    this.addrBytes = new Uint8Array(this.addrWords.buffer);
    this.oport = new Uint16Array(2 * capacity);
    this.eport = new Uint16Array(2 * capacity);
    // fd and timer are set to -1 when a flow is allocated; filling them here would only make the pages resident.
    this.fd = new Int32Array(2 * capacity);
    this.timer = new Int32Array(capacity);
    this.epollId = new Uint8Array(capacity);
    this.registered = new Uint8Array(capacity);
    this.epollMask = new Uint32Array(2 * capacity);
    this.events = new Uint32Array(capacity);
    this.flags = new Uint32Array(capacity);
    this.lastActive = new Float64Array(capacity);
    this.hashed = new Uint8Array(capacity);
    this.freePending = new Uint8Array(capacity);
    // Both sides of every flow may be hashed: keep the load under 50 %.
    let size = 1;
    while (size < 4 * capacity) size *= 2;
    this.buckets = new Int32Array(size);
    this.bucketMask = size - 1;
    this.seed = crypto.getRandomValues(new Uint32Array(1))[0];
    this.freeStack = new Int32Array(capacity);
  }

  /** Flows in use (any state but FREE). */
  get count(): number {
    return this.active;
  }

  /** Sets the end-of-cycle behaviour of a flow type. */
  setTypeOps(type: FlowType, ops: FlowTypeOps): void {
    this.typeOps[type] = ops;
  }

  /** Allocates the lowest free flow in state NEW, or returns -1 (counted, logged) when the table is full. */
  alloc(): number {
    if (this.building >= 0) throw new Error(`flow ${this.building} still being built when allocating another`);
    if (this.freeTop === 0 && this.fresh === this.capacity) {
      this.refusedFull++;
      tableFullLog.warn(`flow table full (${this.capacity} flows): refusing a new flow (${this.refusedFull} refused so far)`);
      return -1;
    }
    const f = this.freeTop > 0 ? this.freeStack[--this.freeTop] : this.fresh++;
    this.clear(f);
    this.state[f] = FlowState.NEW;
    this.building = f;
    this.active++;
    if (f >= this.highWater) this.highWater = f + 1;
    return f;
  }

  /** Undoes the newest allocation while it is still being built. */
  allocCancel(flow: number): void {
    if (flow !== this.building) throw new Error(`flow ${flow} is not the one being built`);
    for (let s = 0; s < 2; s++) if (this.hashed[flow] & (1 << s)) this.hashRemove(flow, s as Side);
    this.releaseFds(flow);
    this.release(flow);
  }

  /**
   * Fills the initiating side: its pif, the endpoint's address and port, and ours (addresses as 16-byte inany
   * at the given offsets). NEW -> INI.
   */
  initiate(flow: number, pif: Pif, eaddr: Uint8Array, eaddrOff: number, eport: number, oaddr: Uint8Array, oaddrOff: number, oport: number): void {
    this.expectState(flow, FlowState.NEW);
    this.setSide(flow, INISIDE, pif, oaddr, oaddrOff, oport, eaddr, eaddrOff, eport);
    this.state[flow] = FlowState.INI;
  }

  /** Fills the target side: its pif, our address and port there, and the endpoint's. INI -> TGT. */
  target(flow: number, pif: Pif, oaddr: Uint8Array, oaddrOff: number, oport: number, eaddr: Uint8Array, eaddrOff: number, eport: number): void {
    this.expectState(flow, FlowState.INI);
    this.setSide(flow, TGTSIDE, pif, oaddr, oaddrOff, oport, eaddr, eaddrOff, eport);
    this.state[flow] = FlowState.TGT;
  }

  /** Sets the flow's type. TGT -> TYPED. */
  setType(flow: number, type: FlowType): void {
    this.expectState(flow, FlowState.TGT);
    this.type[flow] = type;
    this.state[flow] = FlowState.TYPED;
  }

  /** Finishes building a flow. TYPED -> ACTIVE. */
  activate(flow: number): void {
    this.expectState(flow, FlowState.TYPED);
    this.state[flow] = FlowState.ACTIVE;
    this.building = -1;
    // The description formats four addresses: worth building only when someone reads it.
    if (logEnabled("debug")) log.debug(`Flow ${flow} (${FLOW_TYPE_NAMES[this.type[flow]]}): ${this.describe(flow)}`);
  }

  /** Marks a flow to be freed at the end of the current loop cycle. */
  markFree(flow: number): void {
    this.freePending[flow] = 1;
  }

  /**
   * End-of-cycle pass: frees flows that were marked, or that their type says should go (closed, or expired
   * when timerDue). Returns how many were freed.
   */
  defer(now: number, timerDue: boolean): number {
    if (this.building >= 0) {
      log.error(`flow ${this.building} left half-built at the end of a cycle: cancelling it`);
      this.allocCancel(this.building);
    }
    let freed = 0;
    for (let f = 0; f < this.highWater; f++) {
      if (this.state[f] !== FlowState.ACTIVE) continue;
      const ops = this.typeOps[this.type[f]];
      if (this.freePending[f] || (ops !== undefined && ops.shouldFree(f, now, timerDue))) {
        this.free(f);
        freed++;
      }
    }
    while (this.highWater > 0 && this.state[this.highWater - 1] === FlowState.FREE) this.highWater--;
    return freed;
  }

  /** Calls fn for every active flow, in flow order. */
  forEachActive(fn: (flow: number) => void): void {
    for (let f = 0; f < this.highWater; f++) if (this.state[f] === FlowState.ACTIVE) fn(f);
  }

  /** Offset in addrBytes of our address on a side (the endpoint's follows at +16). */
  addrOffset(flow: number, side: Side): number {
    return (2 * flow + side) * SIDE_WORDS * 4;
  }

  /** Enters a side in the hash index (its pif, addresses and ports must be set). */
  hashInsert(flow: number, side: Side): void {
    const s = 2 * flow + side + 1;
    let b = this.hashSide(flow, side) & this.bucketMask;
    while (this.buckets[b] !== EMPTY) {
      if (this.buckets[b] === s) return;
      b = (b - 1) & this.bucketMask;
    }
    this.buckets[b] = s;
    this.hashed[flow] |= 1 << side;
  }

  /** Removes a side from the hash index (backward-shift deletion: no tombstones). */
  hashRemove(flow: number, side: Side): void {
    const s = 2 * flow + side + 1;
    let b = this.hashSide(flow, side) & this.bucketMask;
    while (this.buckets[b] !== s) {
      if (this.buckets[b] === EMPTY) return;
      b = (b - 1) & this.bucketMask;
    }
    this.hashed[flow] &= ~(1 << side);
    const mask = this.bucketMask;
    let hole = b;
    let probe = b;
    for (;;) {
      probe = (probe - 1) & mask;
      const e = this.buckets[probe];
      if (e === EMPTY) break;
      const home = this.hashSide((e - 1) >>> 1, ((e - 1) & 1) as Side) & mask;
      // Probing runs downwards from home: the entry may fill the hole if the hole lies on its path, i.e. the
      // hole is between home (inclusive) and probe (exclusive), going downwards.
      if (((home - hole) & mask) < ((home - probe) & mask)) {
        this.buckets[hole] = e;
        hole = probe;
      }
    }
    this.buckets[hole] = EMPTY;
  }

  /**
   * Finds the flow side with this key: protocol, pif, our address and the endpoint's as 8 u32 words at
   * key[keyOff] (our 4 words, then theirs), our port and theirs. Returns flow << 1 | side, or -1.
   */
  lookup(proto: number, pif: number, key: Uint32Array, keyOff: number, oport: number, eport: number): number {
    let b = this.hashKey(proto, pif, key, keyOff, oport, eport) & this.bucketMask;
    const w = this.addrWords;
    for (;;) {
      const e = this.buckets[b] - 1;
      if (e < 0) return -1;
      const f = e >>> 1;
      const a = e * SIDE_WORDS;
      if (
        this.pif[e] === pif &&
        FLOW_PROTO[this.type[f]] === proto &&
        this.oport[e] === oport &&
        this.eport[e] === eport &&
        w[a] === key[keyOff] && w[a + 1] === key[keyOff + 1] && w[a + 2] === key[keyOff + 2] && w[a + 3] === key[keyOff + 3] &&
        w[a + 4] === key[keyOff + 4] && w[a + 5] === key[keyOff + 5] && w[a + 6] === key[keyOff + 6] && w[a + 7] === key[keyOff + 7]
      ) {
        return e;
      }
      b = (b - 1) & this.bucketMask;
    }
  }

  /** "PIF [eaddr]:eport -> [oaddr]:oport => PIF [oaddr]:oport -> [eaddr]:eport", for logs. */
  describe(flow: number): string {
    const side = (s: Side) => {
      const o = this.addrOffset(flow, s);
      const i = 2 * flow + s;
      return {
        pif: PIF_NAMES[this.pif[i]] ?? "?",
        o: `[${inanyToText(this.addrBytes, o)}]:${this.oport[i]}`,
        e: `[${inanyToText(this.addrBytes, o + INANY_LEN)}]:${this.eport[i]}`,
      };
    };
    const a = side(INISIDE);
    const b = side(TGTSIDE);
    return `${a.pif} ${a.e} -> ${a.o} => ${b.pif} ${b.o} -> ${b.e}`;
  }

  private free(flow: number): void {
    for (let s = 0; s < 2; s++) if (this.hashed[flow] & (1 << s)) this.hashRemove(flow, s as Side);
    this.typeOps[this.type[flow]]?.release(flow);
    this.releaseFds(flow);
    this.release(flow);
  }

  private release(flow: number): void {
    if (this.building === flow) this.building = -1;
    this.clear(flow);
    this.active--;
    this.freeStack[this.freeTop++] = flow;
  }

  private clear(f: number): void {
    this.state[f] = FlowState.FREE;
    this.type[f] = FlowType.NONE;
    this.pif[2 * f] = this.pif[2 * f + 1] = Pif.NONE;
    this.addrWords.fill(0, 2 * f * SIDE_WORDS, (2 * f + 2) * SIDE_WORDS);
    this.oport[2 * f] = this.oport[2 * f + 1] = this.eport[2 * f] = this.eport[2 * f + 1] = 0;
    this.fd[2 * f] = this.fd[2 * f + 1] = -1;
    this.timer[f] = -1;
    this.epollId[f] = this.defaultEpollId;
    this.registered[f] = 0;
    this.events[f] = 0;
    this.flags[f] = 0;
    this.lastActive[f] = 0;
    this.hashed[f] = 0;
    this.freePending[f] = 0;
  }

  private setSide(flow: number, side: Side, pif: Pif, oaddr: Uint8Array, oaddrOff: number, oport: number, eaddr: Uint8Array, eaddrOff: number, eport: number): void {
    const i = 2 * flow + side;
    const off = this.addrOffset(flow, side);
    this.pif[i] = pif;
    copyBytes(this.addrBytes, off, oaddr, oaddrOff, INANY_LEN);
    copyBytes(this.addrBytes, off + INANY_LEN, eaddr, eaddrOff, INANY_LEN);
    this.oport[i] = oport;
    this.eport[i] = eport;
  }

  private expectState(flow: number, state: number): void {
    if (this.state[flow] !== state) {
      throw new Error(`flow ${flow} is ${STATE_NAMES[this.state[flow]]}, expected ${STATE_NAMES[state]}`);
    }
  }

  private hashSide(flow: number, side: Side): number {
    const s = 2 * flow + side;
    return this.hashKey(FLOW_PROTO[this.type[flow]], this.pif[s], this.addrWords, s * SIDE_WORDS, this.oport[s], this.eport[s]);
  }

  /** A seeded 32-bit hash of a side's key (murmur3 mixing); keyed so peers cannot aim at one bucket chain. */
  private hashKey(proto: number, pif: number, key: Uint32Array, off: number, oport: number, eport: number): number {
    let h = this.seed ^ ((proto << 8) | pif);
    for (let i = 0; i < SIDE_WORDS; i++) h = mix(h, key[off + i]);
    h = mix(h, (oport << 16) | eport);
    h ^= 40;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

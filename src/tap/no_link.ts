/**
 * pasta --splice-only: the link when there is no tap device. Nothing ever arrives on it, and it reaches no guest:
 * frames the services still queue (a router advertisement's timer) are counted as dropped at the flush. The flows
 * that would need a guest are refused where they start (tcp_listen.ts, udp_splice.ts), so this only keeps the
 * L2 services and the flow types, which the spliced paths share, working without a special case.
 */
import { ETH_MAX_LEN, Link } from "./link.ts";

/** Room for one largest frame: nothing is ever written out, so nothing has to wait for a flush. */
const ARENA_BYTES = 2 * ETH_MAX_LEN;

/** A link with no guest behind it. */
export class NoLink extends Link {
  constructor() {
    super(ARENA_BYTES, 16, 0);
  }

  /** Never: there is no guest. */
  get connected(): boolean {
    return false;
  }

  protected writeQueued(): void {
    this.stats.outDropped += this.queued;
  }
}

/**
 * Small TCP load tools for the benchmark, run inside namespaces with `bun bench/tools/tcp.ts MODE …`:
 *
 *   crr-server PORT                 answers each connection's 1-byte request with 1 byte, then closes
 *   crr-client ADDR PORT SECONDS [MS] [WARMUP]  connect, 1-byte request, 1-byte reply, close, back to back for
 *                                   SECONDS after WARMUP unmeasured seconds (default 0), each within MS (default
 *                                   3000); prints {"transactions","seconds","errors","firstError"} as JSON
 *   rr-server PORT                  echoes everything (ping-pong fallback when sockperf is missing)
 *   rr-client ADDR PORT SECONDS [MS]  64-byte ping-pong on one connection (each reply within MS, default
 *                                   3000); prints {"rtts","medianUs","avgUs"}
 *   hold-server PORT                accepts and echoes, keeping every connection open
 *   hold-client ADDR PORT N [MS]    opens N connections, checks each with a 1-byte echo (within MS, default
 *                                   10000), prints "ready N", and holds them until standard input closes
 */
import type { Socket } from "bun";

const [mode, ...args] = process.argv.slice(2);

/** Exits with a message on standard error. */
function die(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function listen(port: number, handlers: { open?: (s: Socket) => void; data: (s: Socket, d: Buffer) => void }): void {
  Bun.listen({
    hostname: "0.0.0.0",
    port,
    socket: {
      open: (s) => {
        s.setNoDelay(true);
        handlers.open?.(s);
      },
      data: handlers.data,
      error: () => {},
    },
  });
}

/** One connection that resolves when the peer's reply (N bytes) has arrived, or rejects on error/timeout. */
async function crrOnce(addr: string, port: number, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
    Bun.connect({
      hostname: addr,
      port,
      socket: {
        open: (s) => {
          s.setNoDelay(true);
          s.write("q");
        },
        data: (s, d) => {
          got += d.length;
          if (got >= 1) s.end();
        },
        close: () => {
          clearTimeout(timer);
          if (got >= 1) resolve();
          else reject(new Error("closed without a reply"));
        },
        error: (_s, e) => {
          clearTimeout(timer);
          reject(e);
        },
        connectError: (_s, e) => {
          clearTimeout(timer);
          reject(e);
        },
      },
    }).catch((e: unknown) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function crrClient(addr: string, port: number, seconds: number, timeoutMs: number, warmupSeconds: number): Promise<void> {
  // The warm-up plays the part of iperf3's --omit: a forwarder's first connections pay one-time costs (a JIT's
  // compilation, caches filling) that a steady rate should not include.
  const warmupEnd = performance.now() + warmupSeconds * 1000;
  while (performance.now() < warmupEnd) {
    try {
      await crrOnce(addr, port, timeoutMs);
    } catch {
      break;
    }
  }
  const start = performance.now();
  const end = start + seconds * 1000;
  let transactions = 0;
  let errors = 0;
  let firstError = "";
  while (performance.now() < end) {
    try {
      await crrOnce(addr, port, timeoutMs);
      transactions++;
    } catch (e) {
      errors++;
      firstError ||= String((e as Error).message ?? e);
      // Nothing works at all: say so now instead of spinning for the whole run.
      if (transactions === 0 && errors >= 3) break;
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ transactions, seconds: elapsed, errors, firstError }));
  process.exit(transactions > 0 ? 0 : 1);
}

async function rrClient(addr: string, port: number, seconds: number, timeoutMs: number): Promise<void> {
  const size = 64;
  const payload = new Uint8Array(size).fill(0x61);
  const rtts: number[] = [];
  let pending = 0;
  let sent = 0;
  let wake: (() => void) | null = null;
  let finished = false;
  const sock = await Bun.connect({
    hostname: addr,
    port,
    socket: {
      data: (_s, d) => {
        pending -= d.length;
        if (pending <= 0 && wake) wake();
      },
      close: () => {
        if (!finished) die("connection closed");
      },
      error: (_s, e) => die(String(e)),
      connectError: (_s, e) => die(`connect: ${e.message}`),
    },
  }).catch((e: unknown) => die(`connect: ${(e as Error).message}`));
  sock.setNoDelay(true);
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    pending = size;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = new Promise<boolean>((r) => {
      wake = () => r(true);
      timer = setTimeout(() => r(false), timeoutMs);
    });
    sock.write(payload);
    sent++;
    const ok = await got;
    clearTimeout(timer);
    if (!ok) die(`no reply within ${timeoutMs} ms`);
    wake = null;
    rtts.push((performance.now() - t0) * 1000);
  }
  finished = true;
  sock.end();
  // Like sockperf, leave out the warm-up (first 10%).
  const kept = rtts.slice(Math.floor(rtts.length / 10)).sort((a, b) => a - b);
  const medianUs = kept[Math.floor(kept.length / 2)];
  const avgUs = kept.reduce((a, b) => a + b, 0) / kept.length;
  console.log(JSON.stringify({ rtts: kept.length, sent, medianUs, avgUs }));
  process.exit(0);
}

async function holdClient(addr: string, port: number, n: number, timeoutMs: number): Promise<void> {
  const sockets: Socket[] = [];
  const batch = 50;
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.allSettled(
      Array.from({ length: Math.min(batch, n - i) }, () =>
        new Promise<Socket>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no echo within ${timeoutMs} ms`)), timeoutMs);
          Bun.connect({
            hostname: addr,
            port,
            socket: {
              open: (s) => {
                s.write("h");
              },
              data: (s) => {
                clearTimeout(timer);
                resolve(s);
              },
              close: () => reject(new Error("closed")),
              error: (_s, e) => reject(e),
              connectError: (_s, e) => reject(e),
            },
          }).catch(reject);
        })),
    );
    for (const r of opened) {
      if (r.status === "rejected") die(`connection ${sockets.length + 1}: ${(r.reason as Error).message ?? r.reason}`);
      sockets.push(r.value);
    }
  }
  console.log(`ready ${sockets.length}`);
  // Hold until the benchmark closes our standard input (or kills us).
  for await (const _chunk of Bun.stdin.stream()) {
    // Nothing to read: we only wait for the end.
  }
  for (const s of sockets) s.end();
  process.exit(0);
}

const num = (s: string | undefined, what: string): number => {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) die(`bad ${what}: ${s}`);
  return v;
};

switch (mode) {
  case "crr-server":
    listen(num(args[0], "port"), { data: (s) => { s.write("r"); s.end(); } });
    break;
  case "rr-server":
  case "hold-server":
    listen(num(args[0], "port"), { data: (s, d) => { s.write(d); } });
    break;
  case "crr-client":
    await crrClient(args[0], num(args[1], "port"), num(args[2], "seconds"), args[3] ? num(args[3], "timeout") : 3000,
      args[4] ? num(args[4], "warm-up") : 0);
    break;
  case "rr-client":
    await rrClient(args[0], num(args[1], "port"), num(args[2], "seconds"), args[3] ? num(args[3], "timeout") : 3000);
    break;
  case "hold-client":
    await holdClient(args[0], num(args[1], "port"), num(args[2], "count"), args[3] ? num(args[3], "timeout") : 10_000);
    break;
  default:
    die(`usage: tcp.ts crr-server|crr-client|rr-server|rr-client|hold-server|hold-client …`);
}

/**
 * Where the log goes: the -l file within --log-size (the cut of its oldest part, in-process and through the
 * executable while guests come and go), and the system logger once orzo is in the background without -l. For the
 * latter, a private mount namespace gets a /dev of its own (a tmpfs with the host's device nodes bound in), where
 * socat receives datagrams on /dev/log and prints them; orzo runs inside it (nsenter), in a test host namespace.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { log, setupLogging } from "../src/log.ts";
import { LOG_LINE_MAX, LOG_SIZE_MIN } from "../src/log_outputs.ts";
import { orzoBinary } from "./helpers/binary.ts";
import { run, TestHost, waitFor } from "./helpers/netns.ts";
import { collectText } from "./helpers/process.ts";

let host: TestHost;
let orzo: string;
let dir: string;

beforeAll(async () => {
  orzo = orzoBinary();
  host = await TestHost.create("log");
  dir = mkdtempSync(join(tmpdir(), "orzo-log-"));
}, 30_000);
afterAll(async () => {
  await host?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Lines of a file, without the empty string after the last newline. */
const linesOf = (path: string) => readFileSync(path, "utf8").split("\n").slice(0, -1);

/**
 * Connects a guest to passt's socket that sends bytes, and leaves once passt has sent something (so passt has
 * taken the connection) or closed it; resolves once the connection is closed.
 */
function guestVisit(socket: string, bytes: Uint8Array): Promise<void> {
  const visit = new Promise<void>((resolve, reject) => {
    Bun.connect({
      unix: socket,
      // end() then only ends our half: close comes once passt has closed its side, done with this guest.
      allowHalfOpen: true,
      socket: {
        open(s) {
          if (bytes.length > 0) s.write(bytes);
        },
        data(s) {
          s.end();
        },
        close: () => resolve(),
        error: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
  return Promise.race([visit, Bun.sleep(5000).then(() => Promise.reject(new Error("passt did not take or close the connection")))]);
}

describe("the log file and --log-size", () => {
  afterEach(() => setupLogging({ logLevel: "info" }));

  test("a full log file loses its oldest lines: the header stays, marked with the time of the cut; no partial line", () => {
    const path = join(dir, "bounded.log");
    let now = 0;
    setupLogging({ logLevel: "info", logFile: path, logSize: LOG_SIZE_MIN }, () => now);
    const header = linesOf(path)[0];
    let largest = 0;
    for (let i = 0; i < 2000; i++) {
      now = i * 10;
      log.info(`message ${i} ${"x".repeat(i % 97)}`);
      largest = Math.max(largest, statSync(path).size);
    }
    expect(largest).toBeLessThan(LOG_SIZE_MIN);
    const lines = linesOf(path);
    expect(lines[0]).toMatch(new RegExp(`^${header.replace(/[.()[\]\\/+]/g, "\\$&")} - log truncated at \\d+\\.\\d{4}$`));
    // What is kept is the newest messages, whole and in order, ending with the last one.
    const numbers = lines.slice(1).map((l) => {
      const m = /^\d+\.\d{4}: message (\d+) (x*)$/.exec(l);
      expect(m).not.toBeNull();
      expect(m![2].length).toBe(Number(m![1]) % 97);
      return Number(m![1]);
    });
    expect(numbers.at(-1)).toBe(1999);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0] + i));
    expect(numbers[0]).toBeGreaterThan(1000);
  });

  test("a message longer than 8 KiB is cut to 8 KiB, newline included", () => {
    const path = join(dir, "long.log");
    setupLogging({ logLevel: "info", logFile: path }, () => 0);
    log.info("y".repeat(3 * LOG_LINE_MAX));
    const lines = linesOf(path);
    expect(lines).toHaveLength(2);
    expect(Buffer.byteLength(lines[1]) + 1).toBe(LOG_LINE_MAX);
  });

  test("--log-size below the least size, or not a number: one line, status 1", async () => {
    for (const [value, reason] of [["40959", "is less than the least log size, 40960 bytes"], ["1M", "is not a number of bytes"]]) {
      const r = await run([orzo, "pasta", "-l", join(dir, "never.log"), "--log-size", value, "--", "true"]);
      expect(r).toEqual({ code: 1, stdout: "", stderr: `orzo: invalid value for --log-size: '${value}' ${reason}\n` });
    }
  }, 30_000);

  test("passt -l FILE --log-size 0xa000: the file stays within the size while guests come and go", async () => {
    const path = join(dir, "passt.log");
    const socket = join(dir, "bounded.socket");
    const pidFile = join(dir, "bounded.pid");
    const r = await host.run([orzo, "passt", "-l", path, "--log-size", "0xa000", "-s", socket, "-P", pidFile]);
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
    const pid = Number(readFileSync(pidFile, "utf8"));
    try {
      let largest = 0;
      // About 120 bytes of log each: well over the size.
      for (let i = 0; i < 600; i++) {
        // On a loaded machine a connect can meet the previous guest's teardown and be turned away (passt serves
        // one guest at a time): that visit is made again, at most twice.
        for (let attempt = 0; ; attempt++) {
          try {
            await guestVisit(socket, new Uint8Array(0));
            break;
          } catch (e) {
            if (attempt >= 2 || (e as { code?: string }).code !== "ECONNRESET") throw e;
          }
        }
        largest = Math.max(largest, statSync(path).size);
      }
      // The last guest's departure is the last line once orzo has caught up.
      expect(await waitFor(() => linesOf(path).at(-1)?.includes("waiting for the next guest") === true, 10_000)).toBe(true);
      expect(largest).toBeLessThanOrEqual(0xa000);
      const lines = linesOf(path);
      expect(lines[0]).toMatch(/ \(\d+\) - log truncated at \d+\.\d{4}$/);
      for (const line of lines.slice(1)) expect(line).toMatch(/^\d+\.\d{4}: passt: /);
    } finally {
      process.kill(pid, "SIGTERM");
      await waitFor(() => !existsSync(`/proc/${pid}`), 5000);
    }
  }, 60_000);
});

/** A shell script that gives its mount namespace a /dev of its own and receives datagrams on /dev/log. */
const SYSLOG_RECEIVER = `set -e
d=$(mktemp -d /tmp/orzo-dev-XXXXXX)
mount -t tmpfs -o mode=755 tmpfs "$d"
for n in null zero full random urandom tty; do touch "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
mkdir "$d/net" "$d/pts" "$d/shm"
touch "$d/net/tun"; mount --bind /dev/net/tun "$d/net/tun"
ln -s /proc/self/fd "$d/fd"
mount --move "$d" /dev
rmdir "$d"
exec socat -u UNIX-RECV:/dev/log,mode=666 -`;

describe("the system logger", () => {
  let receiver: ReturnType<typeof Bun.spawn>;
  let datagrams: () => string;

  beforeAll(async () => {
    receiver = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", SYSLOG_RECEIVER], { stdout: "pipe", stderr: "inherit" });
    datagrams = collectText(receiver.stdout as ReadableStream<Uint8Array>);
    const listening = await waitFor(async () => (await run(["nsenter", "-t", String(receiver.pid), "-m", "test", "-S", "/dev/log"])).code === 0, 5000);
    if (!listening) throw new Error("no /dev/log in the receiver's mount namespace");
  }, 30_000);
  afterAll(async () => {
    receiver?.kill("SIGKILL");
    await receiver?.exited;
  });

  /** Runs orzo with args in the receiver's mount namespace and the test host's network namespace. */
  const inNamespaces = (args: string[]) => ["nsenter", "-t", String(receiver.pid), "-m", "--", ...host.prefix(), orzo, ...args];

  /** Starts passt in the background; connects a guest that sends `bytes` and leaves; resolves to passt's PID. */
  async function passtWithGuest(args: string[], name: string, bytes: Uint8Array): Promise<number> {
    const socket = join(dir, `${name}.socket`);
    const pidFile = join(dir, `${name}.pid`);
    const r = await run(inNamespaces(["passt", ...args, "-s", socket, "-P", pidFile]));
    expect(r.code).toBe(0);
    const pid = Number(readFileSync(pidFile, "utf8"));
    await guestVisit(socket, bytes);
    return pid;
  }

  async function stop(pid: number): Promise<void> {
    process.kill(pid, "SIGTERM");
    expect(await waitFor(() => !existsSync(`/proc/${pid}`), 5000)).toBe(true);
  }

  test("in the background without -l: '<PRI>passt[PID]: message' datagrams, at the level of -q", async () => {
    const pid = await passtWithGuest([], "syslog", new Uint8Array(0));
    try {
      const line = new RegExp(`^<30>passt\\[${pid}\\]: passt: guest connected \\(PID \\d+\\)$`, "m");
      expect(await waitFor(() => line.test(datagrams()), 5000)).toBe(true);
      // The guest's departure: seen as its close, or as a failed send to it.
      expect(await waitFor(() => new RegExp(`^<30>passt\\[${pid}\\]: passt: .+: waiting for the next guest$`, "m").test(datagrams()), 5000)).toBe(true);
    } finally {
      await stop(pid);
    }
    // -q: the error of a bad frame length is sent, the information before it is not.
    const quiet = await passtWithGuest(["-q"], "quiet", new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    try {
      const error = new RegExp(`^<27>passt\\[${quiet}\\]: passt: bad frame length 4294967295 from the guest: dropping the connection$`, "m");
      expect(await waitFor(() => error.test(datagrams()), 5000)).toBe(true);
      expect(datagrams()).not.toContain(`passt[${quiet}]: passt: guest connected`);
    } finally {
      await stop(quiet);
    }
  }, 30_000);

  test("in the foreground, or with -d, nothing goes to the system logger: stderr keeps the lines", async () => {
    const before = datagrams();
    const socket = join(dir, "foreground.socket");
    const fg = Bun.spawn(inNamespaces(["passt", "-f", "-1", "-s", socket]), { stdout: "pipe", stderr: "pipe" });
    const stderr = collectText(fg.stderr as ReadableStream<Uint8Array>);
    try {
      // The file exists from bind(), a moment before listen(): the line comes after both.
      expect(await waitFor(() => stderr().includes("passt: listening on"), 10_000)).toBe(true);
      await guestVisit(socket, new Uint8Array(0));
      expect(await Promise.race([fg.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
      expect(stderr()).toMatch(/^passt: guest connected \(PID \d+\)$/m);
    } finally {
      fg.kill("SIGKILL");
    }
    const debug = await passtWithGuest(["-d"], "debug", new Uint8Array(0));
    await stop(debug);
    expect(datagrams()).toBe(before);
  }, 30_000);
});

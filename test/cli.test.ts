import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderHelp } from "../src/cli/commands.ts";
import { detectMode, invokedProgram, parseCommandLine, type Config, type Invocation } from "../src/cli/config.ts";
import { CliError } from "../src/cli/errors.ts";
import { parseForwardConfig } from "../src/fwd/rules.ts";
import {
  flag,
  multiple,
  OPTIONS,
  parseOptions,
  single,
  type OptionDef,
  type OptionTable,
} from "../src/cli/options.ts";
import { VERSION_TEXT } from "../src/cli/version.ts";
import { log, logEnabled, RateLimitedLog, rateLimited, setupLogging } from "../src/log.ts";

const REPO = join(import.meta.dir, "..");
const scratch = mkdtempSync(join(tmpdir(), "orzo-cli-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const ENV = { SHELL: "/bin/zsh" };

// Everything pasta mode is configured with when no option is given.
const PASTA_DEFAULTS: Config = {
  mode: "pasta",
  logLevel: "info",
  foreground: false,
  command: ["/bin/zsh"],
  ip4: {},
  ip6: {},
  ipv4Only: false,
  ipv6Only: false,
  dns: [],
  noDns: false,
  search: [],
  noSearch: false,
  dhcpDns: false,
  dhcpSearch: false,
  noMapGw: false,
  noTcp: false,
  noUdp: false,
  noIcmp: false,
  noDhcp: false,
  noNdp: false,
  noDhcpv6: false,
  noRa: false,
  freebind: false,
  tcpPorts: [],
  udpPorts: [],
  tcpNs: [],
  udpNs: [],
  // pasta's default, auto for all four, excludes the ephemeral range this host reads.
  forward: parseForwardConfig({
    specs: { "-t": ["auto"], "-u": ["auto"], "-T": ["auto"], "-U": ["auto"] },
    pasta: true,
    ipv4: true,
    ipv6: true,
    noTcp: false,
    noUdp: false,
  }),
  noSplice: false,
  hostLoToNsLo: false,
  spliceOnly: false,
  netnsOnly: false,
  noNetnsQuit: false,
  configNet: false,
  noCopyRoutes: false,
  noCopyAddrs: false,
  oneOff: false,
};

function run(args: string[], program = "orzo"): Config {
  const invocation = parseCommandLine(program, args, ENV);
  if (invocation.action !== "run") throw new Error(`expected a run, got ${invocation.action}`);
  return invocation.config;
}

function cliError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliError) return e.message;
    throw e;
  }
  throw new Error("expected a CliError");
}

// A table with the row kinds later issues add (repeatable, mode-specific, validated), to test the parser alone.
const port = (raw: string): number => {
  const value = Number(raw);
  if (!/^[0-9]+$/.test(raw) || value < 1 || value > 65535) throw new CliError(`not a port: ${raw}`);
  return value;
};
const TABLE = {
  debug: flag({ long: "debug", short: "d", help: "debug" }),
  quiet: flag({ long: "quiet", short: "q", help: "quiet" }),
  tcp: multiple({ long: "tcp-ports", short: "t", valueName: "SPEC", parse: port, help: "ports" }),
  mtu: single({ long: "mtu", short: "m", valueName: "MTU", parse: port, help: "mtu" }),
  netns: single({ long: "netns", valueName: "PATH", parse: (s) => s, help: "netns", modes: "pasta" }),
  socket: single({ long: "socket", short: "s", valueName: "PATH", parse: (s) => s, help: "s", modes: "passt" }),
  help: flag({ long: "help", short: "h", help: "help", terminal: true }),
} satisfies OptionTable;

describe("option table", () => {
  const rows = Object.values(OPTIONS) as OptionDef[];

  test("long and short names are unique and well formed", () => {
    const longs = rows.flatMap((def) => [def.long, ...(def.aliases ?? [])]);
    const shorts = rows.flatMap((def) => (def.short === undefined ? [] : [def.short]));
    expect(new Set(longs).size).toBe(longs.length);
    expect(new Set(shorts).size).toBe(shorts.length);
    for (const long of longs) expect(long).toMatch(/^[a-z0-9][a-z0-9-]*$/);
    for (const short of shorts) expect(short).toMatch(/^[a-zA-Z0-9]$/);
  });

  test("every row has help text", () => {
    for (const def of rows) expect(def.help.length).toBeGreaterThan(0);
  });
});

describe("parseOptions", () => {
  test("clusters short flags", () => {
    expect(parseOptions(["-dq"], "pasta", TABLE).options).toEqual({ debug: true, quiet: true });
  });

  test("takes a short option's value from the rest of the word or the next word", () => {
    expect(parseOptions(["-m1500"], "pasta", TABLE).options.mtu).toBe(1500);
    expect(parseOptions(["-m", "1500"], "pasta", TABLE).options.mtu).toBe(1500);
    expect(parseOptions(["-dm1500"], "pasta", TABLE).options).toEqual({ debug: true, mtu: 1500 });
    const { options } = parseOptions(["-dm", "1500", "-q"], "pasta", TABLE);
    expect(options).toEqual({ debug: true, mtu: 1500, quiet: true });
  });

  test("takes a long option's value after = or from the next word", () => {
    expect(parseOptions(["--mtu=1500"], "pasta", TABLE).options.mtu).toBe(1500);
    expect(parseOptions(["--mtu", "1500"], "pasta", TABLE).options.mtu).toBe(1500);
    // getopt takes the next word as the value even when it looks like an option.
    expect(parseOptions(["--netns", "-d"], "pasta", TABLE).options).toEqual({ netns: "-d" });
    expect(parseOptions(["--netns="], "pasta", TABLE).options).toEqual({ netns: "" });
  });

  test("the last value of a single option wins", () => {
    expect(parseOptions(["-m", "1500", "--mtu=9000"], "pasta", TABLE).options.mtu).toBe(9000);
  });

  test("repeatable options accumulate in order", () => {
    const { options } = parseOptions(["-t", "80", "--tcp-ports=443", "-t22"], "pasta", TABLE);
    expect(options.tcp).toEqual([80, 443, 22]);
  });

  test("long names may be abbreviated when unambiguous", () => {
    expect(parseOptions(["--deb", "--tcp=80"], "pasta", TABLE).options).toEqual({ debug: true, tcp: [80] });
    expect(cliError(() => parseOptions(["--n"], "pasta", { ...TABLE, nope: flag({ long: "nope", help: "x" }) }))).toBe(
      "option '--n' is ambiguous; possibilities: '--netns' '--nope'",
    );
  });

  test("-- ends the options", () => {
    expect(parseOptions(["-d", "--", "-q", "x"], "pasta", TABLE)).toEqual({
      options: { debug: true },
      order: ["debug"],
      operands: ["-q", "x"],
    });
    expect(parseOptions(["--"], "pasta", TABLE).operands).toEqual([]);
  });

  test("parsing stops at the first operand", () => {
    expect(parseOptions(["-d", "ls", "-q", "--", "x"], "pasta", TABLE)).toEqual({
      options: { debug: true },
      order: ["debug"],
      operands: ["ls", "-q", "--", "x"],
    });
    expect(parseOptions(["-", "-d"], "pasta", TABLE).operands).toEqual(["-", "-d"]);
    expect(parseOptions(["", "-d"], "pasta", TABLE).operands).toEqual(["", "-d"]);
  });

  test("a terminal option stops parsing: what follows is not checked", () => {
    expect(parseOptions(["-d", "--help", "--bogus"], "pasta", TABLE)).toEqual({
      options: { debug: true, help: true },
      order: ["debug", "help"],
      operands: [],
    });
    expect(parseOptions(["-hX"], "pasta", TABLE).options).toEqual({ help: true });
  });

  test("errors name the option", () => {
    const errors: [string[], string][] = [
      [["--bogus"], "unrecognized option '--bogus'"],
      [["--bogus=1"], "unrecognized option '--bogus'"],
      [["-dx"], "invalid option -- 'x'"],
      [["-m"], "option '-m' requires an argument"],
      [["--mtu"], "option '--mtu' requires an argument"],
      [["--debug=yes"], "option '--debug' doesn't allow an argument"],
      [["--mtu=0"], "invalid value for --mtu: not a port: 0"],
      [["-mx"], "invalid value for -m: not a port: x"],
      [["-t", "80", "-t", "99999"], "invalid value for -t: not a port: 99999"],
      [["-s", "/tmp/s"], "option '-s' is for passt mode only"],
      [["--sock", "/tmp/s"], "option '--socket' is for passt mode only"],
      [["--=x"], "unrecognized option '--'"],
    ];
    for (const [args, message] of errors) expect(cliError(() => parseOptions(args, "pasta", TABLE))).toBe(message);
    expect(cliError(() => parseOptions(["--netns", "x"], "passt", TABLE))).toBe(
      "option '--netns' is for pasta mode only",
    );
  });
});

describe("parseCommandLine", () => {
  test("orzo with no arguments runs the user's shell in pasta mode", () => {
    expect(run([])).toEqual({ ...PASTA_DEFAULTS, command: ["/bin/zsh"] });
    expect(parseCommandLine("orzo", [], {})).toMatchObject({ config: { command: ["/bin/sh"] } });
  });

  test("a first argument pasta or passt selects the mode; anything else runs pasta", () => {
    expect(run(["pasta", "-f"])).toMatchObject({ mode: "pasta", foreground: true });
    expect(run(["passt", "-f"])).toMatchObject({ mode: "passt", foreground: true, command: [] });
    expect(run(["-f", "passt"])).toMatchObject({ mode: "pasta", command: ["passt"] });
    expect(run(["ls", "-l"])).toMatchObject({ mode: "pasta", command: ["ls", "-l"] });
  });

  test("a program name containing pasta or passt selects the mode", () => {
    expect(run([], "pasta").mode).toBe("pasta");
    expect(run([], "/usr/bin/pasta").mode).toBe("pasta");
    expect(run([], "/usr/local/bin/pasta.avx2").mode).toBe("pasta");
    expect(run([], "./passt").mode).toBe("passt");
    expect(run(["passt"], "/usr/bin/pasta")).toMatchObject({ mode: "pasta", command: ["passt"] });
    expect(cliError(() => run(["pasta"], "passt"))).toContain("'pasta'");
  });

  test("options and values", () => {
    expect(run(["pasta", "-f", "-P", "/run/p.pid", "--log-file=/tmp/l", "true"])).toEqual({
      ...PASTA_DEFAULTS,
      foreground: true,
      pidFile: "/run/p.pid",
      logFile: "/tmp/l",
      command: ["true"],
    });
    expect(run(["-P/a", "--pid", "/b"]).pidFile).toBe("/b");
    expect(cliError(() => run(["--pid="]))).toBe("invalid value for --pid: empty path");
    expect(cliError(() => run(["-l", "x".repeat(5000)]))).toBe("invalid value for -l: path longer than 4095 bytes");
  });

  test("log level: -q warnings, -d debug, --trace trace", () => {
    expect(run(["-q"]).logLevel).toBe("warn");
    expect(run(["-d"]).logLevel).toBe("debug");
    expect(run(["--trace"]).logLevel).toBe("trace");
    expect(run(["-d", "--trace"]).logLevel).toBe("trace");
    // Given together, the last one wins (cli-combinations.test.ts).
    expect(run(["-dq"]).logLevel).toBe("warn");
  });

  test("pasta: a single all-digits operand is a PID to join", () => {
    expect(run(["pasta", "1234"])).toMatchObject({ targetPid: 1234, command: [] });
    expect(run(["--", "1"])).toMatchObject({ targetPid: 1, command: [] });
    expect(run(["1234", "x"])).toMatchObject({ command: ["1234", "x"] });
    expect(run(["12a"]).targetPid).toBeUndefined();
    expect(cliError(() => run(["0"]))).toBe("invalid PID '0'");
    expect(cliError(() => run(["99999999999"]))).toBe("invalid PID '99999999999'");
  });

  test("pasta: a command is taken as is, options after it are its own", () => {
    const config = run(["-d", "sh", "-c", "echo --help"]);
    expect(config).toMatchObject({ logLevel: "debug", command: ["sh", "-c", "echo --help"] });
    expect(run(["--", "-weird-name", "-d"])).toMatchObject({ logLevel: "info", command: ["-weird-name", "-d"] });
  });

  test("passt rejects operands", () => {
    expect(cliError(() => run(["passt", "foo"]))).toBe("extra non-option argument 'foo': passt mode takes no command");
    expect(cliError(() => run(["passt", "--", "1234"]))).toContain("'1234'");
  });

  test("help and version", () => {
    const expectInvocation = (args: string[], program: string, want: Invocation) =>
      expect(parseCommandLine(program, args, ENV)).toEqual(want);
    expectInvocation(["--help"], "orzo", { action: "help", command: ["orzo"] });
    expectInvocation(["-h"], "orzo", { action: "help", command: ["orzo"] });
    expectInvocation(["pasta", "-dh"], "orzo", { action: "help", command: ["orzo", "pasta"] });
    expectInvocation(["passt", "--help"], "orzo", { action: "help", command: ["orzo", "passt"] });
    expectInvocation(["-d", "--help"], "orzo", { action: "help", command: ["orzo", "pasta"] });
    expectInvocation(["--help"], "/usr/bin/pasta", { action: "help", command: ["pasta"] });
    expectInvocation(["--version"], "orzo", { action: "version" });
    expectInvocation(["passt", "--vers"], "orzo", { action: "version" });
    // Options after the command belong to the command.
    expect(run(["ls", "--help"]).command).toEqual(["ls", "--help"]);
  });
});

describe("program name", () => {
  test("detectMode looks at the basename only", () => {
    expect(detectMode("pasta")).toBe("pasta");
    expect(detectMode("passt")).toBe("passt");
    expect(detectMode("/usr/bin/pasta")).toBe("pasta");
    expect(detectMode("/home/pasta/bin/orzo")).toBeUndefined();
    expect(detectMode("orzo")).toBeUndefined();
    expect(detectMode("/usr/bin/orzo")).toBeUndefined();
  });

  test("a compiled executable is known by argv0, a script by its path", () => {
    expect(invokedProgram("/usr/bin/pasta", ["bun", "/$bunfs/root/orzo", "-d"])).toBe("/usr/bin/pasta");
    expect(invokedProgram("bun", ["/usr/bin/bun", "/work/src/main.ts"])).toBe("/work/src/main.ts");
  });
});

describe("help text", () => {
  test("each command lists the options of its mode only, without colors when asked", async () => {
    for (const path of [["orzo", "pasta"], ["orzo", "passt"], ["pasta"], ["passt"]] as const) {
      const mode = path[path.length - 1];
      const text = await renderHelp(path, false);
      expect(text).not.toContain("\x1b[");
      expect(text).toContain(`USAGE ${path.join(" ")} [OPTIONS]`);
      const listed = new Set(text.match(/--[a-z0-9-]+/g));
      for (const def of Object.values(OPTIONS) as OptionDef[]) {
        expect({ option: def.long, listed: listed.has(`--${def.long}`) }).toEqual({
          option: def.long,
          listed: def.modes === "both" || def.modes === mode,
        });
      }
      expect(text).toContain("-P, --pid=<PATH>");
    }
    expect(await renderHelp(["passt"], false)).toContain("(also --socket-path)");
    const top = await renderHelp(["orzo"], false);
    expect(top).toContain("pasta");
    expect(top).toContain("passt");
  });
});

describe("logging", () => {
  afterEach(() => setupLogging({ logLevel: "info" }));

  test("a log file gets a header and lines stamped with seconds since start", () => {
    const path = join(scratch, "stamped.log");
    let now = 12345.6;
    setupLogging({ logLevel: "debug", logFile: path }, () => now);
    log.info("hello %s", "world");
    now = 20000;
    log.debug("second");
    log.trace("not at debug level");
    expect(readFileSync(path, "utf8")).toBe(
      `${VERSION_TEXT}: ${process.execPath} (${process.pid})\n12.3456: hello world\n20.0000: second\n`,
    );
  });

  test("the log file is truncated at start", () => {
    const path = join(scratch, "truncated.log");
    setupLogging({ logLevel: "info", logFile: path });
    log.info("x".repeat(1000));
    setupLogging({ logLevel: "info", logFile: path });
    expect(readFileSync(path, "utf8").split("\n")).toHaveLength(2);
  });

  test("an unopenable log file is a CliError", () => {
    expect(cliError(() => setupLogging({ logLevel: "info", logFile: join(scratch, "no/such/dir/x.log") }))).toContain(
      "cannot open log file",
    );
  });

  test("levels: quiet prints warnings and errors only", () => {
    const path = join(scratch, "quiet.log");
    setupLogging({ logLevel: "warn", logFile: path }, () => 0);
    log.info("hidden");
    log.warn("shown");
    log.error("shown too");
    expect(logEnabled("warn")).toBe(true);
    expect(logEnabled("info")).toBe(false);
    expect(readFileSync(path, "utf8").split("\n").slice(1)).toEqual(["0.0000: shown", "0.0000: shown too", ""]);
  });

  test("a rate-limited channel prints one message per interval and counts the rest", () => {
    const path = join(scratch, "limited.log");
    let now = 0;
    const clock = () => now;
    setupLogging({ logLevel: "debug", logFile: path }, clock);
    const limited = new RateLimitedLog(1000, clock);
    limited.warn("bad frame %d", 1);
    for (let i = 2; i <= 5; i++) {
      now += 100;
      limited.warn("bad frame %d", i);
    }
    limited.trace("below the level: neither printed nor counted");
    now = 1000;
    limited.warn("bad frame %d %s", 6);
    now = 1500;
    limited.warn("bad frame %d", 7);
    now = 2000;
    limited.warn("bad frame %d", 8);
    expect(readFileSync(path, "utf8").split("\n").slice(1)).toEqual([
      "0.0000: bad frame 1",
      "1.0000: bad frame 6 %s (4 similar messages suppressed)",
      "2.0000: bad frame 8 (1 similar messages suppressed)",
      "",
    ]);
  });

  test("rateLimited returns one channel per key", () => {
    const a = rateLimited("test: key a", 500);
    expect(rateLimited("test: key a")).toBe(a);
    expect(rateLimited("test: key b")).not.toBe(a);
    expect(a.intervalMs).toBe(500);
  });
});

describe("process", () => {
  async function orzo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = Bun.spawn({
      cmd: [process.execPath, join(REPO, "src/main.ts"), ...args],
      cwd: scratch,
      stdout: "pipe",
      stderr: "pipe",
      timeout: 20_000,
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    return { code, stdout, stderr };
  }

  const errorCases: [string[], string][] = [
    [["--bogus"], "orzo: unrecognized option '--bogus'"],
    [["pasta", "-Z"], "orzo: invalid option -- 'Z'"],
    [["passt", "-P"], "orzo: option '-P' requires an argument"],
    [["--log-file"], "orzo: option '--log-file' requires an argument"],
    [["--pid="], "orzo: invalid value for --pid: empty path"],
    [["passt", "extra"], "orzo: extra non-option argument 'extra': passt mode takes no command"],
    [["-m", "70000"], "orzo: invalid value for -m: '70000' is out of range for an MTU (0-65521)"],
    [["-a", "notanaddress"], "orzo: invalid value for -a: 'notanaddress' is not an IPv4 or IPv6 address"],
    [["passt", "-M", "zz:zz"], "orzo: invalid value for -M: 'zz:zz' is not a MAC address (xx:xx:xx:xx:xx:xx)"],
    [["--netns", "x", "1234"], "orzo: option '--netns' conflicts with the PID or command '1234'"],
    [["--no-copy-routes", "true"], "orzo: option '--no-copy-routes' requires '--config-net'"],
    [["-I", "x".repeat(16)], `orzo: invalid value for -I: '${"x".repeat(16)}' is longer than 15 bytes`],
    [["-t", ""], "orzo: invalid value for -t: empty port specification"],
    [["passt", "-T", "80"], "orzo: option '-T' is for pasta mode only"],
    [["pasta", "-t", "70000", "--", "true"], "orzo: invalid value for -t: port '70000' is out of range (1-65535)"],
    [["-u", "1-3:5-8", "true"], "orzo: invalid value for -u: '1-3:5-8' maps ranges of different lengths"],
    [
      ["-T", "1.2.3.4/80", "true"],
      "orzo: invalid value for -T: '1.2.3.4/80': -T takes no listening address: it listens on 'lo' in the namespace",
    ],
    [["passt", "-t", "auto"], "orzo: invalid value for -t: 'auto' is for pasta mode only"],
    [["-t", "80", "-t", "none"], "orzo: invalid value for -t: 'none' conflicts with the rules given before it"],
    [["-H", "two\nlines"], "orzo: invalid value for -H: 'two\\x0alines' is not a valid host name"],
  ];
  for (const [args, line] of errorCases) {
    test(`${args.join(" ")}: one line on stderr, exit 1`, async () => {
      const { code, stdout, stderr } = await orzo(args);
      expect(stderr).toBe(`${line}\n`);
      expect(stdout).toBe("");
      expect(code).toBe(1);
    });
  }

  test("--version", async () => {
    expect(await orzo(["--version"])).toEqual({ code: 0, stdout: `${VERSION_TEXT}\n`, stderr: "" });
  });

  test("--help lists the commands; pasta --help and passt --help list their options", async () => {
    const top = await orzo(["--help"]);
    expect(top).toMatchObject({ code: 0, stderr: "" });
    expect(top.stdout).toContain("USAGE orzo [OPTIONS] pasta|passt");
    for (const args of [["pasta", "--help"], ["passt", "-h"]]) {
      const { code, stdout, stderr } = await orzo(args);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).toContain(`USAGE orzo ${args[0]} [OPTIONS]`);
      for (const option of ["--debug", "--trace", "--quiet", "--log-file", "--foreground", "--pid", "--version"]) {
        expect(stdout).toContain(option);
      }
    }
  });

  // A socket path in a directory that does not exist: passt mode gets as far as binding it, and fails there.
  const NO_SOCKET = ["-s", "/nonexistent-orzo-dir/passt.socket"];
  const NO_SOCKET_ERROR = "orzo: bind(/nonexistent-orzo-dir/passt.socket): ENOENT (No such file or directory)";

  test("a valid command line reaches runMode", async () => {
    expect(await orzo(["passt", "-f", ...NO_SOCKET])).toEqual({ code: 1, stdout: "", stderr: `${NO_SOCKET_ERROR}\n` });
  });

  test("-d stamps stderr lines with seconds since start", async () => {
    const { code, stderr } = await orzo(["passt", "-f", "-d", ...NO_SOCKET]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^\d+\.\d{4}: configuration: \{"mode":"passt".*\n/);
    expect(stderr.endsWith(`${NO_SOCKET_ERROR}\n`)).toBe(true);
  });

  test("--log-file takes the log lines off stderr", async () => {
    const path = join(scratch, "process.log");
    const { code, stderr } = await orzo(["passt", "-f", "-d", "-l", path, ...NO_SOCKET]);
    expect(code).toBe(1);
    expect(stderr).toBe(`${NO_SOCKET_ERROR}\n`);
    const lines = readFileSync(path, "utf8").split("\n");
    expect(lines[0]).toMatch(new RegExp(`^${VERSION_TEXT}: .+ \\(\\d+\\)$`));
    expect(lines[1]).toMatch(/^\d+\.\d{4}: configuration: \{"mode":"passt"/);
  });
});

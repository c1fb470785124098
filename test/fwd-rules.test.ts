/** Port forwarding specs: every grammar form, every refusal, defaults, lookups, and random or truncated specs. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { CliError } from "../src/cli/errors.ts";
import {
  ephemeralRange,
  formatForwardRule,
  MAX_RULES,
  parseEphemeralRange,
  parseForwardConfig,
  parseForwardSpecs,
  ruleForPort,
  targetPort,
  type ForwardSpecOptions,
  type ForwardTable,
} from "../src/fwd/rules.ts";
import { inanyParse } from "../src/wire/inany.ts";
import { rng } from "./fixtures/wire-frames.ts";

// A fixed ephemeral range (Linux's default) keeps the expected rules independent of this host's sysctl.
const PASTA: ForwardSpecOptions = { option: "-t", pasta: true, ipv4: true, ipv6: true, ephemeral: [32768, 60999] };

function table(specs: string[], opts: Partial<ForwardSpecOptions> = {}): ForwardTable {
  return parseForwardSpecs(specs, { ...PASTA, ...opts });
}

/** The rules of some specs as formatForwardRule shows them. */
function rules(specs: string[], opts: Partial<ForwardSpecOptions> = {}): string[] {
  return table(specs, opts).rules.map(formatForwardRule);
}

/** The CliError message some specs get. */
function refused(specs: string[], opts: Partial<ForwardSpecOptions> = {}): string {
  try {
    table(specs, opts);
  } catch (e) {
    if (e instanceof CliError) return e.message;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(specs)} to be refused`);
}

const addr = (text: string) => inanyParse(text) as Uint8Array;

describe("grammar", () => {
  test("single ports, ranges and lists forward each port to itself", () => {
    expect(rules(["80"])).toEqual(["*:80 => 80"]);
    expect(rules(["22,80-82,443"])).toEqual(["*:22 => 22", "*:80-82 => 80-82", "*:443 => 443"]);
    expect(rules(["1-65535"])).toEqual(["*:1-65535 => 1-65535"]);
    expect(table(["80"]).rules[0]).toEqual({
      listenAddr: null,
      dualStack: true,
      ifname: null,
      first: 80,
      last: 80,
      toFirst: 80,
      targetAddr: null,
      weak: false,
      scan: false,
    });
  });

  test("RANGE:RANGE remaps; RANGE:TADDR and RANGE:TADDR/RANGE set the destination", () => {
    expect(rules(["8080-8081:80-81"])).toEqual(["*:8080-8081 => 80-81"]);
    expect(rules(["0.0.0.0/2222:22"])).toEqual(["0.0.0.0:2222 => 22"]);
    expect(rules(["0.0.0.0/80:10.0.0.2"])).toEqual(["0.0.0.0:80 => 10.0.0.2:80"]);
    expect(rules(["10.0.0.1/80-81:10.0.0.2/8080-8081"])).toEqual(["10.0.0.1:80-81 => 10.0.0.2:8080-8081"]);
    expect(rules(["[::]/80:[fd00::2]/8080"])).toEqual(["[::]:80 => [fd00::2]:8080"]);
    expect(rules(["[::1]/80:fd00::2"])).toEqual(["[::1]:80 => [fd00::2]:80"]);
    // An unspecified target is the same as none: NAT decides.
    expect(table(["0.0.0.0/80:0.0.0.0"]).rules[0].targetAddr).toBeNull();
    expect(table(["10.0.0.1/80:10.0.0.2/90"]).rules[0]).toMatchObject({
      listenAddr: addr("10.0.0.1"),
      targetAddr: addr("10.0.0.2"),
      toFirst: 90,
    });
  });

  test("listening address: IPv4, IPv6 with or without brackets, '*' or empty, %IFNAME", () => {
    expect(rules(["127.0.0.1/80"])).toEqual(["127.0.0.1:80 => 80"]);
    expect(rules(["[127.0.0.1]/80"])).toEqual(["127.0.0.1:80 => 80"]);
    expect(rules(["::1/80"])).toEqual(["[::1]:80 => 80"]);
    expect(rules(["[fe80::1]%eth0/80"])).toEqual(["[fe80::1]%eth0:80 => 80"]);
    expect(rules(["*/80"])).toEqual(["*:80 => 80"]);
    expect(rules(["/80"])).toEqual(["*:80 => 80"]);
    expect(rules(["%eth0/80"])).toEqual(["*%eth0:80 => 80"]);
    expect(rules(["*%eth0/80"])).toEqual(["*%eth0:80 => 80"]);
    expect(table(["%eth0/80"]).rules[0]).toMatchObject({ listenAddr: null, dualStack: true, ifname: "eth0" });
    // Explicit wildcards listen on one IP version only.
    expect(table(["::/80"]).rules[0]).toMatchObject({ listenAddr: new Uint8Array(16), dualStack: false });
    expect(table(["0.0.0.0/80"]).rules[0]).toMatchObject({ listenAddr: addr("0.0.0.0"), dualStack: false });
    // Without brackets, text that reads as an IPv6 address is one, as in pasta.
    expect(rules(["80::1/90"])).toEqual(["[80::1]:90 => 90"]);
  });

  test("excludes apply to every include, wherever they are in the list", () => {
    expect(rules(["~85,80-90"])).toEqual(["*:80-84 => 80-84", "*:86-90 => 86-90"]);
    expect(rules(["8080-8090:80-90,~8085-8086"])).toEqual(["*:8080-8084 => 80-84", "*:8087-8090 => 87-90"]);
    expect(rules(["80,~80"])).toEqual([]);
  });

  test("no include range: every port but the excluded and ephemeral ones, best effort", () => {
    expect(rules(["all"])).toEqual([
      "*:1-32767 => 1-32767 (best effort)",
      "*:61000-65535 => 61000-65535 (best effort)",
    ]);
    expect(rules(["~22,~1000-40000"])).toEqual([
      "*:1-21 => 1-21 (best effort)",
      "*:23-999 => 23-999 (best effort)",
      "*:61000-65535 => 61000-65535 (best effort)",
    ]);
    expect(rules(["0.0.0.0/all:10.0.0.9"], { ephemeral: [1024, 65535] })).toEqual([
      "0.0.0.0:1-1023 => 10.0.0.9:1-1023 (best effort)",
    ]);
    expect(rules(["all"], { ephemeral: [1, 65535] })).toEqual([]);
  });

  test("auto scans: alone every non-ephemeral port, with ranges only those", () => {
    expect(rules(["auto"])).toEqual([
      "*:1-32767 => 1-32767 (best effort, auto)",
      "*:61000-65535 => 61000-65535 (best effort, auto)",
    ]);
    expect(rules(["80-82,auto"])).toEqual(["*:80-82 => 80-82 (auto)"]);
    expect(rules(["auto,~22"], { ephemeral: [1024, 65535] })).toEqual([
      "*:1-21 => 1-21 (best effort, auto)",
      "*:23-1023 => 23-1023 (best effort, auto)",
    ]);
  });

  test("specs accumulate; 'none' alone or before rules adds nothing", () => {
    expect(rules(["22", "80"])).toEqual(["*:22 => 22", "*:80 => 80"]);
    expect(table(["none"])).toEqual({ proto: "tcp", direction: "in", mode: "none", rules: [] });
    expect(table([])).toMatchObject({ mode: "none", rules: [] });
    expect(rules(["none", "80"])).toEqual(["*:80 => 80"]);
    expect(table(["80", "90,auto"]).mode).toBe("auto");
  });

  test("rules on different addresses may share ports", () => {
    expect(rules(["10.0.0.1/80", "10.0.0.2/80", "::/80"])).toEqual([
      "10.0.0.1:80 => 80",
      "10.0.0.2:80 => 80",
      "[::]:80 => 80",
    ]);
  });

  test("-T/-U listen on 'lo' and -u/-U are UDP tables", () => {
    expect(table(["53"], { option: "-U" })).toMatchObject({ proto: "udp", direction: "out" });
    expect(rules(["22,auto"], { option: "-T" })).toEqual(["*%lo:22 => 22 (auto)"]);
    expect(table(["53"], { option: "-u" })).toMatchObject({ proto: "udp", direction: "in" });
  });

  test("one IP version disabled: the wildcard is that version's, and targets of it are allowed", () => {
    expect(table(["80"], { ipv6: false }).rules[0]).toMatchObject({ listenAddr: addr("0.0.0.0"), dualStack: false });
    expect(table(["80"], { ipv4: false }).rules[0]).toMatchObject({ listenAddr: new Uint8Array(16), dualStack: false });
    expect(rules(["80:10.0.0.2"], { ipv6: false })).toEqual(["0.0.0.0:80 => 10.0.0.2:80"]);
    expect(rules(["80:fd00::2"], { ipv4: false })).toEqual(["[::]:80 => [fd00::2]:80"]);
  });
});

describe("refusals", () => {
  test("bad ports and ranges", () => {
    const cases: [string, string][] = [
      ["0", "invalid value for -t: port '0' is out of range (1-65535)"],
      ["65536", "invalid value for -t: port '65536' is out of range (1-65535)"],
      ["70000", "invalid value for -t: port '70000' is out of range (1-65535)"],
      ["22,65536", "invalid value for -t: '22,65536': port '65536' is out of range (1-65535)"],
      ["8080-80", "invalid value for -t: range '8080-80' ends before it starts"],
      ["1-3:5-8", "invalid value for -t: '1-3:5-8' maps ranges of different lengths"],
      ["80:0", "invalid value for -t: '80:0': port '0' is out of range (1-65535)"],
      ["80-81:65535-65536", "invalid value for -t: '80-81:65535-65536': port '65536' is out of range (1-65535)"],
      ["abc", "invalid value for -t: 'abc' is not a port range, 'all', 'auto' or '~RANGE'"],
      ["80-", "invalid value for -t: '80-' is not a port range, 'all', 'auto' or '~RANGE'"],
      ["+80", "invalid value for -t: '+80' is not a port range, 'all', 'auto' or '~RANGE'"],
      [" 80", "invalid value for -t: ' 80' is not a port range, 'all', 'auto' or '~RANGE'"],
      ["~", "invalid value for -t: '~' is not ~PORT or ~FIRST-LAST"],
      ["~0", "invalid value for -t: '~0': port '0' is out of range (1-65535)"],
      ["80,,90", "invalid value for -t: '80,,90': empty entry in the port list"],
      ["80,", "invalid value for -t: '80,': empty entry in the port list"],
      ["none,80", "invalid value for -t: 'none,80': 'none' is not a port range, 'all', 'auto' or '~RANGE'"],
      ["80:", "invalid value for -t: '80:': '' is not a target address"],
      ["80:10.0.0.1/", "invalid value for -t: '80:10.0.0.1/': '' is not a target port range"],
    ];
    for (const [spec, message] of cases) expect({ spec, message: refused([spec]) }).toEqual({ spec, message });
  });

  test("bad addresses and interfaces", () => {
    const cases: [string, string][] = [
      ["1.2.3.4/", "invalid value for -t: '1.2.3.4/': no ports after the listening address"],
      ["foo/80", "invalid value for -t: 'foo/80': 'foo' is not a listening address"],
      ["1.2.3.256/80", "invalid value for -t: '1.2.3.256/80': '1.2.3.256' is not a listening address"],
      ["[1.2.3.4/80", "invalid value for -t: '[1.2.3.4/80': '[1.2.3.4' is not a listening address"],
      ["%/80", "invalid value for -t: '%/80': '' is not a valid interface name"],
      ["%..:80", "invalid value for -t: '%..:80' is not a port range, 'all', 'auto' or '~RANGE'"],
      [
        "%abcdefghijklmnop/80",
        "invalid value for -t: '%abcdefghijklmnop/80': 'abcdefghijklmnop' is longer than 15 bytes",
      ],
      [
        "0.0.0.0/80:224.0.0.1",
        "invalid value for -t: '0.0.0.0/80:224.0.0.1': target '224.0.0.1' is a multicast address",
      ],
      ["[::]/80:ff02::1", "invalid value for -t: '[::]/80:ff02::1': target 'ff02::1' is a multicast address"],
      ["0.0.0.0/80:10.0.0.300", "invalid value for -t: '0.0.0.0/80:10.0.0.300': '10.0.0.300' is not a target address"],
      [
        "80:10.0.0.1",
        "invalid value for -t: '80:10.0.0.1': target 10.0.0.1 needs an IPv4 listening address, e.g. '0.0.0.0/...'",
      ],
      [
        "all:fd00::1",
        "invalid value for -t: 'all:fd00::1': target fd00::1 needs an IPv6 listening address, e.g. '[::]/...'",
      ],
      [
        "0.0.0.0/80:fd00::1",
        "invalid value for -t: '0.0.0.0/80:fd00::1': target fd00::1 and listening address 0.0.0.0 differ in IP version",
      ],
    ];
    for (const [spec, message] of cases) expect({ spec, message: refused([spec]) }).toEqual({ spec, message });
    expect(refused(["10.0.0.1/80"], { ipv4: false })).toBe(
      "invalid value for -t: '10.0.0.1/80': 10.0.0.1 is an IPv4 address but IPv4 is disabled",
    );
    expect(refused(["[::1]/80"], { ipv6: false })).toBe(
      "invalid value for -t: '[::1]/80': ::1 is an IPv6 address but IPv6 is disabled",
    );
    expect(refused(["%lo/80"], { option: "-T" })).toBe(
      "invalid value for -T: '%lo/80': -T takes no listening address: it listens on 'lo' in the namespace",
    );
  });

  test("keyword misuse", () => {
    expect(refused(["auto"], { pasta: false })).toBe("invalid value for -t: 'auto' is for pasta mode only");
    expect(refused(["80,auto"], { pasta: false, option: "-u" })).toBe(
      "invalid value for -u: '80,auto': 'auto' is for pasta mode only",
    );
    expect(refused(["all,all"])).toBe("invalid value for -t: 'all,all': 'all' given twice");
    expect(refused(["all,80"])).toBe("invalid value for -t: 'all,80': 'all' cannot be combined with port ranges");
    expect(refused(["80", "none"])).toBe("invalid value for -t: 'none' conflicts with the rules given before it");
  });

  test("overlapping rules, including through wildcards of the same IP version", () => {
    expect(refused(["80-90,85"])).toBe(
      "invalid value for -t: '80-90,85': rule *:85 => 85 overlaps rule *:80-90 => 80-90",
    );
    expect(refused(["80", "10.0.0.1/80"])).toBe(
      "invalid value for -t: '10.0.0.1/80': rule 10.0.0.1:80 => 80 overlaps rule *:80 => 80",
    );
    expect(refused(["0.0.0.0/80", "10.0.0.1/79-81"])).toBe(
      "invalid value for -t: '10.0.0.1/79-81': rule 10.0.0.1:79-81 => 79-81 overlaps rule 0.0.0.0:80 => 80",
    );
    expect(refused(["::/80", "[::1]/80"])).toBe(
      "invalid value for -t: '[::1]/80': rule [::1]:80 => 80 overlaps rule [::]:80 => 80",
    );
    expect(refused(["auto", "80"])).toBe(
      "invalid value for -t: '80': rule *:80 => 80 overlaps rule *:1-32767 => 1-32767 (best effort, auto)",
    );
  });

  test("at most 255 rules per table", () => {
    const ports = Array.from({ length: MAX_RULES }, (_, i) => `${2 * i + 1}`);
    expect(table([ports.join(",")]).rules).toHaveLength(MAX_RULES);
    expect(refused([ports.join(","), "1000"])).toBe("invalid value for -t: '1000': more than 255 rules");
  });

  test("at most 327680 listening sockets per table", () => {
    const specs = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"].map((a) => `${a}/1-65535`);
    expect(table(specs).rules).toHaveLength(5);
    expect(refused([...specs, "10.0.0.6/1-6"])).toBe(
      "invalid value for -t: '10.0.0.6/1-6': rules need more than 327680 listening sockets",
    );
  });
});

describe("configuration defaults", () => {
  const none = { "-t": [], "-u": [], "-T": [], "-U": [] };
  const base = { pasta: true, ipv4: true, ipv6: true, noTcp: false, noUdp: false, ephemeral: [32768, 60999] as const };

  test("pasta: auto for all four tables, -T/-U on 'lo'; passt: nothing", () => {
    const pasta = parseForwardConfig({ ...base, specs: none });
    for (const t of [pasta.tcpIn, pasta.udpIn, pasta.tcpOut, pasta.udpOut]) {
      expect(t.mode).toBe("auto");
      expect(t.rules.map((r) => [r.first, r.last, r.weak, r.scan])).toEqual([
        [1, 32767, true, true],
        [61000, 65535, true, true],
      ]);
    }
    expect(pasta.tcpOut.rules[0].ifname).toBe("lo");
    expect(pasta.tcpIn.rules[0].ifname).toBeNull();
    const passt = parseForwardConfig({ ...base, pasta: false, specs: none });
    expect([passt.tcpIn, passt.udpIn, passt.tcpOut, passt.udpOut].map((t) => t.mode)).toEqual([
      "none", "none", "none", "none",
    ]);
  });

  test("a disabled protocol gets no default and refuses rules, but takes 'none'", () => {
    const noUdp = parseForwardConfig({ ...base, noUdp: true, specs: { ...none, "-u": ["none"] } });
    expect([noUdp.tcpIn.mode, noUdp.udpIn.mode, noUdp.udpOut.mode]).toEqual(["auto", "none", "none"]);
    expect(() => parseForwardConfig({ ...base, noTcp: true, specs: { ...none, "-T": ["22"] } })).toThrow(
      "option '--tcp-ns' conflicts with '--no-tcp'",
    );
  });
});

describe("ephemeral range", () => {
  test("parses the sysctl's text and refuses anything else", () => {
    expect(parseEphemeralRange("32768\t60999\n")).toEqual([32768, 60999]);
    expect(parseEphemeralRange("1024 65535")).toEqual([1024, 65535]);
    for (const bad of ["", "32768", "60999\t32768\n", "1\t65536\n", "a\tb\n", "1\t2\t3\n", "-1\t5\n"]) {
      expect({ bad, range: parseEphemeralRange(bad) }).toEqual({ bad, range: undefined });
    }
  });

  test("reads this host's range, or falls back to RFC 6335's", () => {
    let text = "";
    try {
      text = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    } catch {
      // Without procfs the fallback is expected.
    }
    expect(ephemeralRange()).toEqual(parseEphemeralRange(text) ?? [49152, 65535]);
  });
});

describe("lookups", () => {
  test("ruleForPort finds the rule of a port, targetPort its mapped port", () => {
    const t = table(["22", "8080-8089:80-89", "~5000,4000-6000"]);
    const lookup = (...ports: number[]) => ports.map((port) => ruleForPort(t, port));
    expect(lookup(22, 8080, 8089, 4000, 4999, 5000, 5001)).toEqual([0, 1, 1, 2, 2, -1, 3]);
    expect(lookup(21, 8090, 0, 65535, -1, 65536, 80.5)).toEqual([-1, -1, -1, -1, -1, -1, -1]);
    expect(targetPort(t.rules[1], 8085)).toBe(85);
    expect(targetPort(t.rules[0], 22)).toBe(22);
  });

  test("with an address, the first rule listening on it", () => {
    const t = table(["10.0.0.1/80:10.0.0.9/8080", "10.0.0.2/80", "[::]/80-81", "0.0.0.0/81"]);
    const at = (text: string, port: number) => ruleForPort(t, port, addr(text));
    expect([at("10.0.0.1", 80), at("10.0.0.2", 80), at("fd00::1", 80), at("10.0.0.3", 80)]).toEqual([0, 1, 2, -1]);
    expect([at("10.0.0.3", 81), at("fd00::1", 81)]).toEqual([3, 2]);
    expect(ruleForPort(t, 80)).toBe(0);
    // The address may sit inside a larger buffer, as in a flow's side.
    const buffer = new Uint8Array(40);
    buffer.set(addr("10.0.0.2"), 20);
    expect(ruleForPort(t, 80, buffer, 20)).toBe(1);
    const dual = table(["80"]);
    expect([ruleForPort(dual, 80, addr("10.0.0.3")), ruleForPort(dual, 80, addr("::1"))]).toEqual([0, 0]);
  });

  test("tables built by hand are looked up too", () => {
    const rule = table(["100-199:1100-1199"]).rules[0];
    const t: ForwardTable = { proto: "udp", direction: "out", mode: "spec", rules: [rule] };
    expect([ruleForPort(t, 150), ruleForPort(t, 99)]).toEqual([0, -1]);
    expect(targetPort(rule, 150)).toBe(1150);
  });
});

describe("random and truncated specs", () => {
  /** Parses specs; anything but a table or a one-line CliError fails the test. Checks every table's invariants. */
  function parseOrRefuse(specs: string[], opts: Partial<ForwardSpecOptions> = {}): "parsed" | "refused" {
    let t: ForwardTable;
    try {
      t = table(specs, opts);
    } catch (e) {
      if (!(e instanceof CliError)) throw new Error(`${JSON.stringify(specs)} threw ${String(e)}`);
      expect(e.message).not.toContain("\n");
      expect(e.message).toStartWith(`invalid value for ${opts.option ?? "-t"}: `);
      return "refused";
    }
    expect(t.rules.length).toBeLessThanOrEqual(MAX_RULES);
    for (const r of t.rules) {
      expect(r.first >= 1 && r.first <= r.last && r.last <= 65535).toBe(true);
      expect(r.toFirst >= 1 && r.toFirst + r.last - r.first <= 65535).toBe(true);
      expect(r.dualStack).toBe(r.listenAddr === null);
    }
    return "parsed";
  }

  const REAL_SPECS = [
    "22,80-82,443",
    "10.0.0.1%eth0/8080-8081:10.0.0.2/80-81",
    "[fe80::1]%eth0/80:[fe80::2]/8080",
    "0.0.0.0/all:10.0.0.9",
    "auto,~22,~1000-2000",
    "*%lo/1-1023:2001-3023",
  ];

  test("every prefix and suffix of real specs parses or is refused", () => {
    const outcomes = new Set<string>();
    for (const spec of REAL_SPECS) {
      for (let i = 0; i <= spec.length; i++) {
        outcomes.add(parseOrRefuse([spec.slice(0, i)]));
        outcomes.add(parseOrRefuse([spec.slice(i)]));
        outcomes.add(parseOrRefuse([spec.slice(i)], { option: "-U", pasta: false }));
      }
    }
    expect([...outcomes].sort()).toEqual(["parsed", "refused"]);
  });

  test("random strings over the grammar's characters parse or are refused", () => {
    const random = rng(0x5eed);
    const alphabet = "0123456789-,:~/%*[].abcdefflouatnexFF \x00\n";
    const words = ["all", "auto", "none", "~", "65535", "65536", "0", "::", "10.0.0.1", "[::1]", "%lo", "/", ":", ","];
    const outcomes = new Set<string>();
    for (let n = 0; n < 3000; n++) {
      let spec = "";
      const length = Math.floor(random() * 24);
      for (let i = 0; i < length; i++) {
        const pick = <T>(from: ArrayLike<T>) => from[Math.floor(random() * from.length)];
        spec += random() < 0.3 ? pick(words) : pick(alphabet);
      }
      const option = (["-t", "-u", "-T", "-U"] as const)[n % 4];
      outcomes.add(parseOrRefuse([spec], { option, pasta: n % 3 !== 0, ipv4: n % 5 !== 0, ipv6: n % 7 !== 0 }));
    }
    expect([...outcomes].sort()).toEqual(["parsed", "refused"]);
  });
});

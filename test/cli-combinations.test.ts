/**
 * Options given together or more than once, as pasta's conf.c treats them: unless noted, the last one wins
 * (pasta(1): "if conflicting or multiple options are given, the last one takes effect"), and only the pairs
 * pasta refuses are refused.
 */
import { describe, expect, test } from "bun:test";
import type { Config } from "../src/cli/config.ts";
import { refused, run } from "./helpers/cli.ts";

describe("options that undo each other: the last one wins", () => {
  test("-q, -d and --trace in any order; -d after --trace keeps tracing", () => {
    const cases: [string[], Config["logLevel"]][] = [
      [["-q", "-d"], "debug"],
      [["-d", "-q"], "warn"],
      [["-qd"], "debug"],
      [["-dq"], "warn"],
      [["--trace", "-q"], "warn"],
      [["-q", "--trace"], "trace"],
      [["--trace", "-d"], "trace"],
      [["-q", "--debug", "--quiet", "--trace"], "trace"],
      [["passt", "--trace", "-q", "-d"], "debug"],
    ];
    for (const [args, level] of cases) expect({ args, level: run(args).logLevel }).toEqual({ args, level });
  });

  test("-4 and -6: the later one, and the forwarding wildcard follows it", () => {
    expect(run(["-4", "-6"])).toMatchObject({ ipv4Only: false, ipv6Only: true });
    expect(run(["-6", "-4"])).toMatchObject({ ipv4Only: true, ipv6Only: false });
    expect(run(["-64"])).toMatchObject({ ipv4Only: true, ipv6Only: false });
    expect(run(["--ipv4-only", "--ipv6-only", "-4"])).toMatchObject({ ipv4Only: true, ipv6Only: false });
    const any4 = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0]);
    expect(run(["-6", "-4", "-t", "80"]).forward.tcpIn.rules[0]).toMatchObject({ dualStack: false, listenAddr: any4 });
    expect(run(["-4", "-6", "-t", "80"]).forward.tcpIn.rules[0]).toMatchObject({ dualStack: false, listenAddr: new Uint8Array(16) });
  });

  test("--userns and --netns-only: the later one", () => {
    expect(run(["--userns", "/u", "--netns-only", "7"])).toMatchObject({ usernsPath: undefined, netnsOnly: true, targetPid: 7 });
    expect(run(["--netns-only", "--userns", "/u", "7"])).toMatchObject({ usernsPath: "/u", netnsOnly: false, targetPid: 7 });
    expect(run(["--netns-only", "--userns", "/u", "--netns", "n"])).toMatchObject({ usernsPath: "/u", netnsOnly: false });
  });
});

describe("repeated options", () => {
  test("-a twice: the last address of each IP version", () => {
    expect(run(["-a", "10.0.0.1", "-a", "10.0.0.2"]).ip4).toMatchObject({ address: "10.0.0.2", prefixLen: undefined });
    expect(run(["-a", "10.0.0.1/24", "-a", "10.0.0.2"]).ip4).toMatchObject({ address: "10.0.0.2", prefixLen: undefined });
    expect(run(["-a", "10.0.0.1", "-a", "10.0.0.2/16"]).ip4).toMatchObject({ address: "10.0.0.2", prefixLen: 16 });
    const both = run(["-a", "2001:db8::1/56", "-a", "10.0.0.1", "-a", "2001:db8::2", "-a", "10.0.0.3"]);
    expect([both.ip4, both.ip6]).toMatchObject([{ address: "10.0.0.3" }, { address: "2001:db8::2", prefixLen: undefined }]);
  });

  test("-a and -n: the last of them sets the IPv4 length; a length in -a and a -n in a row are refused", () => {
    const cases: [string[], number | undefined][] = [
      [["-n", "16", "-a", "10.0.0.1"], 16],
      [["-a", "10.0.0.1", "-n", "16"], 16],
      [["-n", "16", "-a", "10.0.0.1", "-n", "24"], 24],
      [["-a", "10.0.0.1/24", "-a", "10.0.0.2", "-n", "16"], 16],
      // An IPv6 -a between them: the IPv4 address keeps its own length until the -n.
      [["-a", "10.0.0.1/24", "-a", "2001:db8::1", "-n", "16"], 16],
      [["-a", "10.0.0.1/24", "-a", "2001:db8::1"], 24],
    ];
    for (const [args, prefixLen] of cases) expect({ args, prefixLen: run(args).ip4.prefixLen }).toEqual({ args, prefixLen });
    const conflict = (a: string) => `option '--netmask' conflicts with the prefix length in '--address ${a}'`;
    for (const [args, a] of [
      [["-a", "10.0.0.1/24", "-n", "16"], "10.0.0.1/24"],
      [["-n", "16", "-a", "10.0.0.1/24"], "10.0.0.1/24"],
      [["-n", "16", "-a", "10.0.0.1", "-a", "10.0.0.2/24"], "10.0.0.2/24"],
      // As in pasta, whatever the IP version of the -a.
      [["-a", "2001:db8::1/64", "-n", "16"], "2001:db8::1/64"],
      [["-n", "16", "-a", "2001:db8::1/64"], "2001:db8::1/64"],
    ] as const) {
      expect({ args, message: refused([...args]) }).toEqual({ args, message: conflict(a) });
    }
  });

  test("-S with several domains in one argument, and -S repeated", () => {
    expect(run(["-S", "a.example b.example"]).search).toEqual(["a.example", "b.example"]);
    expect(run(["-S", " a.example\tb.example  c.example "]).search).toEqual(["a.example", "b.example", "c.example"]);
    expect(run(["-S", "a.example b.example", "-S", "c.example"]).search).toEqual(["a.example", "b.example", "c.example"]);
    expect(run(["-S", "a.example b.example", "-S", "none"])).toMatchObject({ search: [], noSearch: true });
    expect(run(["-S", "none", "-S", "a.example b.example"])).toMatchObject({ search: ["a.example", "b.example"], noSearch: false });
    // A domain called "none" is written with its dot.
    expect(run(["-S", "none. a.example"]).search).toEqual(["none.", "a.example"]);
  });

  test("single-valued options keep the last value; -D, -g, --dns-forward and --map-* keep one per IP version", () => {
    expect(run(["-m", "1500", "-m", "9000", "-P", "/a", "-P", "/b", "-I", "x", "-I", "y"])).toMatchObject({
      mtu: 9000, pidFile: "/b", nsIfname: "y",
    });
    expect(run(["-D", "none", "-D", "192.0.2.53"])).toMatchObject({ dns: ["192.0.2.53"], noDns: false });
    const per = run(["-g", "10.0.0.1", "-g", "fd00::1", "-g", "10.0.0.2", "--dns-forward", "10.0.0.3", "--dns-forward", "10.0.0.4"]);
    expect([per.ip4, per.ip6]).toMatchObject([{ gateway: "10.0.0.2", dnsForward: "10.0.0.4" }, { gateway: "fd00::1" }]);
    // --map-host-loopback none drops the default mapping for good, as --no-map-gw does; a later address still maps.
    expect(run(["--map-host-loopback", "none", "--map-host-loopback", "10.0.2.9"])).toMatchObject({
      ip4: { mapHostLoopback: "10.0.2.9" }, ip6: { mapHostLoopback: undefined }, noMapGw: true,
    });
    expect(run(["passt", "-1", "--one-off"]).oneOff).toBe(true);
  });
});

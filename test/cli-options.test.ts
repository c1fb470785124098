/** The pasta/passt options beyond logging: each one parsed into Config, and its malformed values refused. */
import { describe, expect, test } from "bun:test";
import type { Config } from "../src/cli/config.ts";
import { refused, run } from "./helpers/cli.ts";

/** Checks a table of command lines against the Config fields each must produce. */
function accepts(cases: [string[], Partial<Config>][]): void {
  for (const [args, want] of cases) expect({ args, config: run(args) }).toMatchObject({ args, config: want });
}

/** Checks a table of command lines against the one-line error each must get. */
function refuses(cases: [string[], string][]): void {
  for (const [args, message] of cases) expect({ args, message: refused(args) }).toEqual({ args, message });
}

describe("addressing options", () => {
  test("-m/--mtu: 0 to 65521", () => {
    accepts([
      [["-m", "1500"], { mtu: 1500 }],
      [["--mtu=0"], { mtu: 0 }],
      [["-m65521"], { mtu: 65521 }],
      [["passt", "-m", "9000"], { mtu: 9000 }],
    ]);
    expect(run([]).mtu).toBeUndefined();
    refuses([
      [["-m", "70000"], "invalid value for -m: '70000' is out of range for an MTU (0-65521)"],
      [["-m", "65522"], "invalid value for -m: '65522' is out of range for an MTU (0-65521)"],
      [["--mtu", "-1"], "invalid value for --mtu: '-1' is not a number"],
      [["-m", "1e3"], "invalid value for -m: '1e3' is not a number"],
      [["-m", ""], "invalid value for -m: '' is not a number"],
    ]);
  });

  test("-a/--address: one IPv4 and one IPv6 address, optionally with a prefix length", () => {
    accepts([
      [["-a", "10.0.2.15"], { ip4: { address: "10.0.2.15", prefixLen: undefined }, ip6: {} }],
      [["-a", "10.0.2.15/24"], { ip4: { address: "10.0.2.15", prefixLen: 24 } }],
      [["-a", "2001:DB8:0:0::5"], { ip6: { address: "2001:db8::5" } }],
      [["-a", "2001:db8::5/56", "-a", "192.0.2.2"], { ip4: { address: "192.0.2.2" }, ip6: { prefixLen: 56 } }],
      [["--address=169.254.1.1/0"], { ip4: { address: "169.254.1.1", prefixLen: 0 } }],
    ]);
    refuses([
      [["-a", "notanaddress"], "invalid value for -a: 'notanaddress' is not an IPv4 or IPv6 address"],
      [["-a", "10.0.0.256"], "invalid value for -a: '10.0.0.256' is not an IPv4 or IPv6 address"],
      [["-a", "[2001:db8::1]"], "invalid value for -a: '[2001:db8::1]' is not an IPv4 or IPv6 address"],
      [["-a", "fe80::1%eth0"], "invalid value for -a: 'fe80::1%eth0' is not an IPv4 or IPv6 address"],
      [["-a", "10.0.0.1/33"], "invalid value for -a: '10.0.0.1/33' has a bad prefix length (0-32 for IPv4)"],
      [["-a", "2001:db8::1/129"], "invalid value for -a: '2001:db8::1/129' has a bad prefix length (0-128 for IPv6)"],
      [["-a", "10.0.0.1/"], "invalid value for -a: '10.0.0.1/' has a bad prefix length (0-32 for IPv4)"],
      [["-a", "0.0.0.0"], "invalid value for -a: '0.0.0.0' is the unspecified address"],
      [["-a", "127.0.0.2"], "invalid value for -a: '127.0.0.2' is a loopback address"],
      [["-a", "::1"], "invalid value for -a: '::1' is a loopback address"],
      [["-a", "224.0.0.1"], "invalid value for -a: '224.0.0.1' is a multicast address"],
      [["-a", "ff02::1"], "invalid value for -a: 'ff02::1' is a multicast address"],
      [["-a", "255.255.255.255"], "invalid value for -a: '255.255.255.255' is the broadcast address"],
      [
        ["-a", "::ffff:10.0.0.1"],
        "invalid value for -a: '::ffff:10.0.0.1' is an IPv4-mapped IPv6 address: give the IPv4 address",
      ],
    ]);
  });

  test("-n/--netmask: a prefix length or a contiguous netmask, not both -n and -a ADDR/LEN", () => {
    accepts([
      [["-n", "24"], { ip4: { prefixLen: 24 } }],
      [["-n", "255.255.240.0"], { ip4: { prefixLen: 20 } }],
      [["-n", "255.255.255.255"], { ip4: { prefixLen: 32 } }],
      [["-n", "0.0.0.0"], { ip4: { prefixLen: 0 } }],
      [["-a", "10.0.0.2", "-n", "16"], { ip4: { address: "10.0.0.2", prefixLen: 16 } }],
      // IPv6 prefix lengths come only from -a.
      [["-a", "2001:db8::2", "-n", "16"], { ip4: { prefixLen: 16 }, ip6: { prefixLen: undefined } }],
    ]);
    refuses([
      [["-n", "33"], "invalid value for -n: '33' is not a prefix length (0-32) or a netmask"],
      [["-n", "255.0.255.0"], "invalid value for -n: '255.0.255.0' is not a prefix length (0-32) or a netmask"],
      [["-n", "0.255.255.255"], "invalid value for -n: '0.255.255.255' is not a prefix length (0-32) or a netmask"],
      [["-n", "x"], "invalid value for -n: 'x' is not a prefix length (0-32) or a netmask"],
      [
        ["-a", "10.0.0.2/8", "-n", "16"],
        "option '--netmask' conflicts with the prefix length in '--address 10.0.0.2/8'",
      ],
      [
        ["-n", "16", "-a", "10.0.0.2/8"],
        "option '--netmask' conflicts with the prefix length in '--address 10.0.0.2/8'",
      ],
    ]);
  });

  test("-M/--mac-addr and pasta's --ns-mac-addr: unicast MAC addresses", () => {
    accepts([
      [["-M", "02:00:00:AB:cd:01"], { macAddr: "02:00:00:ab:cd:01" }],
      [["passt", "--mac-addr=9a:55:9a:55:9a:56"], { macAddr: "9a:55:9a:55:9a:56" }],
      [["--ns-mac-addr", "02:11:22:33:44:55"], { nsMacAddr: "02:11:22:33:44:55" }],
    ]);
    refuses([
      [["-M", "zz:zz"], "invalid value for -M: 'zz:zz' is not a MAC address (xx:xx:xx:xx:xx:xx)"],
      [["-M", "02:00:00:00:00"], "invalid value for -M: '02:00:00:00:00' is not a MAC address (xx:xx:xx:xx:xx:xx)"],
      [["-M", "2:0:0:0:0:1"], "invalid value for -M: '2:0:0:0:0:1' is not a MAC address (xx:xx:xx:xx:xx:xx)"],
      [["-M", "01:00:5e:00:00:01"], "invalid value for -M: '01:00:5e:00:00:01' is a multicast MAC address"],
      [["-M", "ff:ff:ff:ff:ff:ff"], "invalid value for -M: 'ff:ff:ff:ff:ff:ff' is a multicast MAC address"],
      [["-M", "00:00:00:00:00:00"], "invalid value for -M: '00:00:00:00:00:00' is the all-zeros MAC address"],
      [["--ns-mac-addr", "x"], "invalid value for --ns-mac-addr: 'x' is not a MAC address (xx:xx:xx:xx:xx:xx)"],
      [["passt", "--ns-mac-addr", "02:11:22:33:44:55"], "option '--ns-mac-addr' is for pasta mode only"],
    ]);
  });

  test("-g/--gateway: one per IP version, the last one wins", () => {
    accepts([
      [["-g", "10.0.2.2"], { ip4: { gateway: "10.0.2.2" } }],
      [
        ["-g", "fe80::1", "-g", "10.0.2.2", "-g", "10.0.2.3"],
        { ip4: { gateway: "10.0.2.3" }, ip6: { gateway: "fe80::1" } },
      ],
    ]);
    refuses([
      [["-g", "gw"], "invalid value for -g: 'gw' is not an IPv4 or IPv6 address"],
      [["-g", "0.0.0.0"], "invalid value for -g: '0.0.0.0' is the unspecified address"],
      [["-g", "::"], "invalid value for -g: '::' is the unspecified address"],
      [["-g", "127.0.0.1"], "invalid value for -g: '127.0.0.1' is a loopback address"],
    ]);
  });

  test("-i/--interface and pasta's -I/--ns-ifname: interface names", () => {
    accepts([
      [["-i", "eth0"], { templateIfname: "eth0" }],
      [["-I", "tap-container0"], { nsIfname: "tap-container0" }],
      [["--ns-ifname=a23456789012345"], { nsIfname: "a23456789012345" }],
    ]);
    refuses([
      [["-I", "a234567890123456"], "invalid value for -I: 'a234567890123456' is longer than 15 bytes"],
      [["-I", "tap/0"], "invalid value for -I: 'tap/0' is not a valid interface name"],
      [["-I", "tap 0"], "invalid value for -I: 'tap 0' is not a valid interface name"],
      [["-I", ""], "invalid value for -I: '' is not a valid interface name"],
      [["-i", ".."], "invalid value for -i: '..' is not a valid interface name"],
      [["passt", "-I", "tap0"], "option '-I' is for pasta mode only"],
    ]);
  });

  test("-4/--ipv4-only and -6/--ipv6-only (cli-combinations.test.ts: both given)", () => {
    accepts([
      [["-4"], { ipv4Only: true, ipv6Only: false }],
      [["--ipv6-only"], { ipv4Only: false, ipv6Only: true }],
    ]);
  });
});

describe("DNS options", () => {
  test("-D/--dns: repeatable; none empties the list and turns DNS information off", () => {
    accepts([
      [["-D", "192.0.2.53", "-D", "2001:db8::53"], { dns: ["192.0.2.53", "2001:db8::53"], noDns: false }],
      [["-D", "none"], { dns: [], noDns: true }],
      [["-D", "192.0.2.53", "-D", "none"], { dns: [], noDns: true }],
      [["-D", "none", "-D", "192.0.2.53"], { dns: ["192.0.2.53"], noDns: false }],
      [["-D", "127.0.0.53"], { dns: ["127.0.0.53"] }],
    ]);
    refuses([
      [["-D", "dns.example"], "invalid value for -D: 'dns.example' is not an IPv4 or IPv6 address"],
      [["-D", "0.0.0.0"], "invalid value for -D: '0.0.0.0' is the unspecified address"],
      [["-D", "None"], "invalid value for -D: 'None' is not an IPv4 or IPv6 address"],
    ]);
  });

  test("--dns-forward and --dns-host: one per IP version", () => {
    accepts([
      [["--dns-forward", "169.254.0.1"], { ip4: { dnsForward: "169.254.0.1" } }],
      [
        ["--dns-forward", "fd00::3", "--dns-host", "127.0.0.53"],
        { ip4: { dnsHost: "127.0.0.53" }, ip6: { dnsForward: "fd00::3" } },
      ],
    ]);
    refuses([
      [["--dns-forward", "127.0.0.1"], "invalid value for --dns-forward: '127.0.0.1' is a loopback address"],
      [["--dns-host", "::"], "invalid value for --dns-host: '::' is the unspecified address"],
    ]);
  });

  test("-S/--search: repeatable, space-separated domain names, at most 5; none turns the search list off", () => {
    accepts([
      [["-S", "example.com", "-S", "corp.example."], { search: ["example.com", "corp.example."], noSearch: false }],
      [["-S", "none"], { search: [], noSearch: true }],
      [["-S", "a.example", "-S", "none", "-S", "b.example"], { search: ["b.example"], noSearch: false }],
      [["-S", "a", "-S", "b", "-S", "c", "-S", "d", "-S", "e"], { search: ["a", "b", "c", "d", "e"] }],
    ]);
    refuses([
      [["-S", "a", "-S", "b", "-S", "c", "-S", "d", "-S", "e", "-S", "f"], "option '--search' gives more than 5 search domains"],
      [["-S", "a b c", "-S", "d e f"], "option '--search' gives more than 5 search domains"],
      [["-S", "a..b"], "invalid value for -S: 'a..b' is not a valid domain name"],
      [["-S", "two bad..words"], "invalid value for -S: 'bad..words' is not a valid domain name"],
      [["-S", " "], "invalid value for -S: ' ' is not a valid domain name"],
      [["-S", `${"x".repeat(64)}.example`], `invalid value for -S: '${"x".repeat(64)}…' is not a valid domain name`],
      [["-S", "."], "invalid value for -S: '.' is not a valid domain name"],
    ]);
  });

  test("-H/--hostname and --fqdn", () => {
    accepts([[["-H", "guest", "--fqdn", "guest.example.org"], { hostname: "guest", fqdn: "guest.example.org" }]]);
    refuses([
      [["-H", ""], "invalid value for -H: '' is not a valid host name"],
      [["-H", "a\nb"], "invalid value for -H: 'a\\x0ab' is not a valid host name"],
      [["--fqdn", "bad..name"], "invalid value for --fqdn: 'bad..name' is not a valid domain name"],
    ]);
  });

  test("passing DNS via DHCP: passt on unless --no-dhcp-*, pasta off unless --dhcp-*", () => {
    accepts([
      [["passt"], { dhcpDns: true, dhcpSearch: true }],
      [["passt", "--no-dhcp-dns"], { dhcpDns: false, dhcpSearch: true }],
      [["passt", "--no-dhcp-search"], { dhcpDns: true, dhcpSearch: false }],
      [[], { dhcpDns: false, dhcpSearch: false }],
      [["--dhcp-dns", "--dhcp-search"], { dhcpDns: true, dhcpSearch: true }],
    ]);
    refuses([
      [["--no-dhcp-dns"], "option '--no-dhcp-dns' is for passt mode only"],
      [["passt", "--dhcp-search"], "option '--dhcp-search' is for pasta mode only"],
    ]);
  });
});

describe("NAT options", () => {
  test("--map-host-loopback, --map-guest-addr: per IP version; none clears both", () => {
    accepts([
      [["--map-host-loopback", "10.0.2.2"], { ip4: { mapHostLoopback: "10.0.2.2" }, noMapGw: false }],
      [["--map-host-loopback", "none"], { ip4: { mapHostLoopback: undefined }, noMapGw: true }],
      [
        ["--map-host-loopback", "fd00::2", "--map-host-loopback", "none"],
        { ip6: { mapHostLoopback: undefined }, noMapGw: true },
      ],
      [
        ["--map-host-loopback", "none", "--map-host-loopback", "10.0.2.2"],
        { ip4: { mapHostLoopback: "10.0.2.2" }, noMapGw: true },
      ],
      [
        ["--map-guest-addr", "10.0.2.3", "--map-guest-addr", "fd00::3"],
        { ip4: { mapGuestAddr: "10.0.2.3" }, ip6: { mapGuestAddr: "fd00::3" } },
      ],
      [
        ["--map-guest-addr", "10.0.2.3", "--map-guest-addr", "none"],
        { ip4: { mapGuestAddr: undefined }, noMapGw: false },
      ],
      [["--no-map-gw"], { noMapGw: true }],
    ]);
    refuses([
      [
        ["--map-host-loopback", "127.0.0.1"],
        "invalid value for --map-host-loopback: '127.0.0.1' is a loopback address",
      ],
      [["--map-guest-addr", "ff02::1"], "invalid value for --map-guest-addr: 'ff02::1' is a multicast address"],
      [["--map-guest-addr", ""], "invalid value for --map-guest-addr: '' is not an IPv4 or IPv6 address"],
    ]);
  });
});

describe("protocol switches", () => {
  test("each --no-* flag and --freebind sets its field", () => {
    const flags: [string, keyof Config][] = [
      ["--no-tcp", "noTcp"],
      ["--no-udp", "noUdp"],
      ["--no-icmp", "noIcmp"],
      ["--no-dhcp", "noDhcp"],
      ["--no-ndp", "noNdp"],
      ["--no-dhcpv6", "noDhcpv6"],
      ["--no-ra", "noRa"],
      ["--freebind", "freebind"],
    ];
    for (const mode of ["pasta", "passt"]) {
      const plain = run([mode]);
      for (const [flag, field] of flags) {
        expect({ flag, before: plain[field], after: run([mode, flag])[field] }).toEqual(
          { flag, before: false, after: true },
        );
      }
    }
  });
});

describe("forwarding options", () => {
  test("-t/-u/-T/-U keep their specs in order", () => {
    accepts([
      [["-t", "80", "-t", "8080:80", "--udp-ports=53"], { tcpPorts: ["80", "8080:80"], udpPorts: ["53"] }],
      [["-T", "auto", "-U", "none"], { tcpNs: ["auto"], udpNs: ["none"] }],
      [["passt", "-t", "22", "-u", "all"], { tcpPorts: ["22"], udpPorts: ["all"], tcpNs: [], udpNs: [] }],
    ]);
    refuses([
      [["-t", ""], "invalid value for -t: empty port specification"],
      [["--udp-ns="], "invalid value for --udp-ns: empty port specification"],
      [["passt", "-T", "80"], "option '-T' is for pasta mode only"],
      [["passt", "--udp-ns", "80"], "option '--udp-ns' is for pasta mode only"],
    ]);
  });

  test("specs become rule tables in config.forward; options not given take the mode's default", () => {
    const pasta = run(["-t", "8080:80", "-u", "none", "-T", "22"]).forward;
    expect(pasta.tcpIn).toMatchObject({ proto: "tcp", direction: "in", mode: "spec" });
    expect(pasta.tcpIn.rules).toMatchObject([{ first: 8080, last: 8080, toFirst: 80, dualStack: true }]);
    expect(pasta.udpIn).toEqual({ proto: "udp", direction: "in", mode: "none", rules: [] });
    expect(pasta.tcpOut.rules).toMatchObject([{ first: 22, last: 22, ifname: "lo", scan: false }]);
    expect(pasta.udpOut.mode).toBe("auto");
    expect(pasta.udpOut.rules.every((r) => r.scan && r.weak && r.ifname === "lo")).toBe(true);

    const passt = run(["passt", "-u", "53"]).forward;
    expect([passt.tcpIn.mode, passt.udpIn.mode, passt.tcpOut.mode, passt.udpOut.mode]).toEqual([
      "none", "spec", "none", "none",
    ]);
  });

  test("-4/-6 pick the wildcard's IP version; --no-tcp/--no-udp leave their tables empty", () => {
    const v4 = run(["-4", "-t", "80:10.0.0.1"]).forward.tcpIn.rules[0];
    const any4 = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0]);
    const target = Uint8Array.from([...any4.subarray(0, 12), 10, 0, 0, 1]);
    expect(v4).toMatchObject({ dualStack: false, listenAddr: any4, targetAddr: target });
    expect(run(["-6", "-t", "80"]).forward.tcpIn.rules[0].listenAddr).toEqual(new Uint8Array(16));
    const noTcp = run(["--no-tcp", "-t", "none"]).forward;
    expect([noTcp.tcpIn.mode, noTcp.tcpOut.mode, noTcp.udpIn.mode]).toEqual(["none", "none", "auto"]);
    expect(run(["--no-udp"]).forward.udpOut.rules).toEqual([]);
  });

  test("malformed or conflicting specs are refused with the option and the spec", () => {
    refuses([
      [["-t", "70000"], "invalid value for -t: port '70000' is out of range (1-65535)"],
      [["--tcp-ports", "80,8080-80"], "invalid value for -t: '80,8080-80': range '8080-80' ends before it starts"],
      [
        ["-U", "*/53"],
        "invalid value for -U: '*/53': -U takes no listening address: it listens on 'lo' in the namespace",
      ],
      [["passt", "-u", "auto"], "invalid value for -u: 'auto' is for pasta mode only"],
      [
        ["-6", "-t", "10.0.0.1/80"],
        "invalid value for -t: '10.0.0.1/80': 10.0.0.1 is an IPv4 address but IPv4 is disabled",
      ],
      [["-t", "80", "--no-tcp"], "option '--tcp-ports' conflicts with '--no-tcp'"],
      [["-U", "53", "--no-udp"], "option '--udp-ns' conflicts with '--no-udp'"],
      [["-t", "80-90", "-t", "85"], "invalid value for -t: '85': rule *:85 => 85 overlaps rule *:80-90 => 80-90"],
    ]);
  });

  test("splicing: --no-splice, --host-lo-to-ns-lo", () => {
    accepts([
      [[], { noSplice: false, hostLoToNsLo: false }],
      [["passt"], { noSplice: true }],
      [["--no-splice"], { noSplice: true }],
      [["--host-lo-to-ns-lo"], { hostLoToNsLo: true }],
    ]);
    refuses([
      [["--no-splice", "--host-lo-to-ns-lo"], "option '--host-lo-to-ns-lo' conflicts with '--no-splice'"],
      [["passt", "--splice-only"], "option '--splice-only' is for pasta mode only"],
    ]);
  });
});

describe("pasta namespace options", () => {
  test("--netns joins a namespace by path, or by name under /run/netns, with --netns-only implied", () => {
    accepts([
      [["--netns", "/proc/1234/ns/net"], { netnsPath: "/proc/1234/ns/net", command: [], netnsOnly: true }],
      [["--netns=ctr"], { netnsPath: "/run/netns/ctr", command: [] }],
      [["--netns", "./ns"], { netnsPath: "./ns" }],
      [["--userns", "/proc/7/ns/user", "--netns", "/run/x"], { usernsPath: "/proc/7/ns/user", netnsOnly: false }],
      [["--netns", "x", "--no-netns-quit"], { noNetnsQuit: true }],
    ]);
    refuses([
      [["--netns", "x", "1234"], "option '--netns' conflicts with the PID or command '1234'"],
      [["--netns", "x", "--", "sh", "-c", "true"], "option '--netns' conflicts with the PID or command 'sh'"],
      [["--netns", ""], "invalid value for --netns: '' is not a namespace name or path"],
      [["--netns", ".."], "invalid value for --netns: '..' is not a namespace name or path"],
      [["--netns", "x".repeat(5000)], "invalid value for --netns: path longer than 4095 bytes"],
      [["passt", "--netns", "x"], "option '--netns' is for pasta mode only"],
    ]);
  });

  test("--userns and --netns-only", () => {
    accepts([
      [["--userns", "/proc/7/ns/user", "7"], { usernsPath: "/proc/7/ns/user", targetPid: 7, netnsOnly: false }],
      [["--netns-only", "7"], { netnsOnly: true, targetPid: 7 }],
      // A PID without --userns joins that process's user namespace: not --netns-only.
      [["7"], { netnsOnly: false, usernsPath: undefined }],
      [["--netns-only", "true"], { netnsOnly: true, command: ["true"] }],
    ]);
    refuses([[["--userns", ""], "invalid value for --userns: empty path"]]);
  });

  test("--config-net, and --no-copy-routes/--no-copy-addrs which need it", () => {
    accepts([
      [["--config-net"], { configNet: true, noCopyRoutes: false, noCopyAddrs: false }],
      [
        ["--config-net", "--no-copy-routes", "--no-copy-addrs"],
        { configNet: true, noCopyRoutes: true, noCopyAddrs: true },
      ],
    ]);
    refuses([
      [["--no-copy-routes"], "option '--no-copy-routes' requires '--config-net'"],
      [["--no-copy-addrs"], "option '--no-copy-addrs' requires '--config-net'"],
      [["passt", "--config-net"], "option '--config-net' is for pasta mode only"],
    ]);
  });
});

describe("identity, capture and passt's socket", () => {
  test("--runas: numbers or names, optionally with a group", () => {
    accepts([
      [["--runas", "1000"], { runAs: { user: 1000 } }],
      [["--runas", "1000:100"], { runAs: { user: 1000, group: 100 } }],
      [["--runas=nobody:nogroup"], { runAs: { user: "nobody", group: "nogroup" } }],
      [["passt", "--runas", "alice:100"], { runAs: { user: "alice", group: 100 } }],
    ]);
    expect(run([]).runAs).toBeUndefined();
    refuses([
      [["--runas", ""], "invalid value for --runas: '' is not UID[:GID] or USER[:GROUP]"],
      [["--runas", "1000:"], "invalid value for --runas: '1000:' is not UID[:GID] or USER[:GROUP]"],
      [["--runas", ":100"], "invalid value for --runas: ':100' is not UID[:GID] or USER[:GROUP]"],
      [["--runas", "4294967295"], "invalid value for --runas: '4294967295' has an ID out of range (0-4294967294)"],
      [["--runas", "a b"], "invalid value for --runas: 'a b' is not UID[:GID] or USER[:GROUP]"],
      [["--runas", "1:2:3"], "invalid value for --runas: '1:2:3' is not UID[:GID] or USER[:GROUP]"],
    ]);
  });

  test("-p/--pcap in both modes", () => {
    accepts([
      [["-p", "/tmp/x.pcap"], { pcapFile: "/tmp/x.pcap" }],
      [["passt", "--pcap=cap.pcap"], { pcapFile: "cap.pcap" }],
    ]);
    refuses([[["-p", ""], "invalid value for -p: empty path"]]);
  });

  test("passt: -s/--socket/--socket-path, -F/--fd (implies --one-off), -1/--one-off", () => {
    accepts([
      [["passt", "-s", "/tmp/q.sock"], { socketPath: "/tmp/q.sock", oneOff: false }],
      [["passt", "--socket-path", "/tmp/q.sock"], { socketPath: "/tmp/q.sock" }],
      [["passt", "--socket-p=/tmp/q.sock"], { socketPath: "/tmp/q.sock" }],
      // Abbreviations shared by --socket and --socket-path name one option, so they are not ambiguous.
      [["passt", "--sock", "/tmp/q.sock"], { socketPath: "/tmp/q.sock" }],
      [["passt", "-F", "5"], { socketFd: 5, oneOff: true }],
      [["passt", "-1"], { oneOff: true }],
      [["passt"], { socketPath: undefined, socketFd: undefined, oneOff: false }],
    ]);
    refuses([
      [
        ["passt", "-s", `/tmp/${"s".repeat(110)}`],
        `invalid value for -s: '/tmp/${"s".repeat(59)}…' is longer than 107 bytes, the limit for a socket path`,
      ],
      [["passt", "-F", "x"], "invalid value for -F: 'x' is not a number"],
      [
        ["passt", "--fd", "2147483648"],
        "invalid value for --fd: '2147483648' is out of range for a file descriptor (0-2147483647)",
      ],
      [["passt", "-s", "/tmp/q", "-F", "3"], "option '--fd' conflicts with '--socket'"],
      [["-s", "/tmp/q"], "option '-s' is for passt mode only"],
      [["--socket-path", "/tmp/q"], "option '--socket' is for passt mode only"],
      [["-1"], "option '-1' is for passt mode only"],
      [["-F", "3"], "option '-F' is for passt mode only"],
    ]);
  });

  test("-e/--stderr is accepted and does nothing", () => {
    expect(run(["-e", "--stderr"])).toEqual(run([]));
  });
});

describe("getopt behaviour with the full table", () => {
  test("short options cluster and take attached values", () => {
    accepts([
      [["-4fm1500"], { ipv4Only: true, foreground: true, mtu: 1500 }],
      [["-a10.0.0.2", "-g10.0.0.1", "-n24"], { ip4: { address: "10.0.0.2", gateway: "10.0.0.1", prefixLen: 24 } }],
    ]);
  });

  test("rootlesskit's and Podman's command lines parse", () => {
    accepts([
      [
        [
          "--stderr", "--ns-ifname=tap0", "--mtu=65520", "--config-net", "--address=10.0.2.100", "--netmask=24",
          "--gateway=10.0.2.2", "--dns-forward=10.0.2.3", "--no-map-gw", "--ipv4-only", "--tcp-ports=none",
          "--udp-ports=none", "1234",
        ],
        {
          nsIfname: "tap0", mtu: 65520, configNet: true, noMapGw: true, ipv4Only: true, targetPid: 1234,
          ip4: { address: "10.0.2.100", prefixLen: 24, gateway: "10.0.2.2", dnsForward: "10.0.2.3" },
          tcpPorts: ["none"], udpPorts: ["none"],
        },
      ],
      [
        [
          "--config-net", "-t", "8080-8081:80-81", "--dns-forward", "169.254.0.1", "-u", "none", "-T", "none",
          "-U", "none", "--no-map-gw", "--quiet", "--netns", "/run/user/1000/netns/netns-1",
        ],
        {
          configNet: true, tcpPorts: ["8080-8081:80-81"], udpPorts: ["none"], tcpNs: ["none"], udpNs: ["none"],
          logLevel: "warn", netnsPath: "/run/user/1000/netns/netns-1", netnsOnly: true, command: [],
        },
      ],
    ]);
  });
});

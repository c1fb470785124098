/**
 * The command-line options: one table, each row saying how an option is spelled, which modes take it, how its
 * value is checked and how it is documented, and a getopt_long-style parser over that table.
 */
import { CliError } from "./errors.ts";
import {
  address,
  addressOrNone,
  domainName,
  fdNumber,
  filePath,
  guestAddress,
  hostName,
  interfaceName,
  logSize,
  macAddress,
  mtu,
  netmask,
  netnsPath,
  portSpec,
  runAs,
  searchDomains,
  socketPath,
  SPECIAL_ADDRESSES,
  statsDelay,
} from "./values.ts";

/** The two personalities: pasta (a network namespace) or passt (a qemu guest on a UNIX socket). */
export type Mode = "pasta" | "passt";

/** Every mode; they are also the names of orzo's subcommands. */
export const MODES: readonly Mode[] = ["pasta", "passt"];

/** Which modes accept an option. */
export type ModeScope = Mode | "both";

interface OptionCommon {
  /** Long name, without the leading "--". */
  readonly long: string;
  /** Other long names for the same option (e.g. --socket-path for --socket). */
  readonly aliases?: readonly string[];
  /** Single-letter short name, without the leading "-". */
  readonly short?: string;
  /** One line for the help text. */
  readonly help: string;
  readonly modes: ModeScope;
}

/** An option without a value: given or not; giving it twice is the same as once. */
export interface FlagOption extends OptionCommon {
  readonly kind: "flag";
  /** Parsing stops when it is seen (help, version), so what follows cannot turn it into an error. */
  readonly terminal: boolean;
}

/** An option with a required value: "single" keeps the last one given, "multiple" keeps all, in order. */
export interface ValueOption<T, K extends "single" | "multiple" = "single" | "multiple"> extends OptionCommon {
  readonly kind: K;
  /** Placeholder for the value in help, e.g. PATH. */
  readonly valueName: string;
  /** Checks and converts the raw value; throws CliError with the reason when it is malformed. */
  readonly parse: (raw: string) => T;
}

/**
 * An option of pasta(1)/passt(1) that orzo does not implement yet: refused with a one-line error wherever it is
 * given, rather than accepted and ignored. valueName says it takes a value, so that the words after it are read as
 * pasta reads them.
 */
export interface RefusedOption extends OptionCommon {
  readonly kind: "refused";
  readonly valueName?: string;
}

/** Any row of the option table. */
export type OptionDef = FlagOption | ValueOption<unknown> | RefusedOption;

/** An option table: parsed-value names to rows. */
export type OptionTable = Record<string, OptionDef>;

type FlagRow = Omit<FlagOption, "kind" | "modes" | "terminal"> & { modes?: ModeScope; terminal?: boolean };
type RefusedRow = Omit<RefusedOption, "kind" | "modes"> & { modes?: ModeScope };
type ValueRow<T> = Omit<ValueOption<T>, "kind" | "modes"> & { modes?: ModeScope };

/** A flag row; modes default to both. */
export function flag(row: FlagRow): FlagOption {
  return { modes: "both", terminal: false, ...row, kind: "flag" };
}

/** A row whose last value wins; modes default to both. */
export function single<T>(row: ValueRow<T>): ValueOption<T, "single"> {
  return { modes: "both", ...row, kind: "single" };
}

/** A row for an option orzo refuses (not supported yet); modes default to both. */
export function refused(row: RefusedRow): RefusedOption {
  return { modes: "both", ...row, kind: "refused" };
}

/** A repeatable row whose values accumulate in order (like -t/-u/-T/-U); modes default to both. */
export function multiple<T>(row: ValueRow<T>): ValueOption<T, "multiple"> {
  return { modes: "both", ...row, kind: "multiple" };
}

/**
 * The option table, in help order. Keys name the parsed values; config.ts turns them into a Config. Long and
 * short names, and which mode takes which option, are pasta's and passt's.
 */
export const OPTIONS = {
  debug: flag({ long: "debug", short: "d", help: "Print debugging messages" }),
  trace: flag({ long: "trace", help: "Print per-packet messages too (implies --debug)" }),
  quiet: flag({ long: "quiet", short: "q", help: "Print only warnings and errors" }),
  stderr: flag({ long: "stderr", short: "e", help: "Accepted for compatibility; does nothing" }),
  logFile: single({
    long: "log-file",
    short: "l",
    valueName: "PATH",
    parse: filePath,
    help: "Log to PATH (truncated first) instead of stderr",
  }),
  foreground: flag({
    long: "foreground",
    short: "f",
    help: "Stay in the foreground instead of running as a daemon",
  }),
  pidFile: single({
    long: "pid",
    short: "P",
    valueName: "PATH",
    parse: filePath,
    help: "Write the process ID to PATH",
  }),
  runAs: single({
    long: "runas",
    valueName: "UID[:GID]|USER[:GROUP]",
    parse: runAs,
    help: "Run as this user and group (default: the invoking user; nobody for root)",
  }),
  pcapFile: single({
    long: "pcap",
    short: "p",
    valueName: "FILE",
    parse: filePath,
    help: "Capture the frames of the tap side to FILE (pcap format)",
  }),

  socketPath: single({
    long: "socket",
    aliases: ["socket-path"],
    short: "s",
    valueName: "PATH",
    parse: socketPath,
    help: "UNIX domain socket for qemu (default: first free /tmp/passt_N.socket)",
    modes: "passt",
  }),
  socketFd: single({
    long: "fd",
    short: "F",
    valueName: "FD",
    parse: fdNumber,
    help: "Use the inherited, connected socket FD instead of listening (implies --one-off)",
    modes: "passt",
  }),
  oneOff: flag({ long: "one-off", short: "1", help: "Exit when the guest disconnects", modes: "passt" }),

  nsIfname: single({
    long: "ns-ifname",
    short: "I",
    valueName: "NAME",
    parse: interfaceName,
    help: "Name of the tap interface in the namespace (default: the host's template interface, else tap0)",
    modes: "pasta",
  }),
  mtu: single({
    long: "mtu",
    short: "m",
    valueName: "MTU",
    parse: mtu,
    help: "MTU to advertise, 0 for none (default: 65520)",
  }),
  address: multiple({
    long: "address",
    short: "a",
    valueName: "ADDR[/LEN]",
    parse: guestAddress,
    help: "IPv4 or IPv6 address for the guest, the last one of each IP version counts (default: the host's)",
  }),
  netmask: single({
    long: "netmask",
    short: "n",
    valueName: "MASK|LEN",
    parse: netmask,
    help: "IPv4 prefix length or netmask for the guest (default: the host's)",
  }),
  macAddr: single({
    long: "mac-addr",
    short: "M",
    valueName: "MAC",
    parse: macAddress,
    help: "Our MAC address on the tap side (default: 9a:55:9a:55:9a:55)",
  }),
  nsMacAddr: single({
    long: "ns-mac-addr",
    valueName: "MAC",
    parse: macAddress,
    help: "MAC address of the tap interface in the namespace",
    modes: "pasta",
  }),
  gateway: multiple({
    long: "gateway",
    short: "g",
    valueName: "ADDR",
    parse: address(SPECIAL_ADDRESSES),
    help: "IPv4 or IPv6 gateway for the guest (default: the host's)",
  }),
  templateIfname: single({
    long: "interface",
    short: "i",
    valueName: "NAME",
    parse: interfaceName,
    help: "Host interface to take addresses and routes from (default: the one with the default route)",
  }),
  outbound: multiple({
    long: "outbound",
    short: "o",
    valueName: "ADDR",
    parse: address(SPECIAL_ADDRESSES),
    help: "Source address of outbound sockets toward the host, the last one of each IP version counts",
  }),
  outboundIf4: single({
    long: "outbound-if4",
    valueName: "NAME",
    parse: interfaceName,
    help: "Bind outbound IPv4 sockets to this interface, and take it as the IPv4 template unless -i",
  }),
  outboundIf6: single({
    long: "outbound-if6",
    valueName: "NAME",
    parse: interfaceName,
    help: "Bind outbound IPv6 sockets to this interface, and take it as the IPv6 template unless -i",
  }),
  ipv4Only: flag({ long: "ipv4-only", short: "4", help: "Enable IPv4 only" }),
  ipv6Only: flag({ long: "ipv6-only", short: "6", help: "Enable IPv6 only" }),

  dns: multiple({
    long: "dns",
    short: "D",
    valueName: "ADDR|none",
    parse: addressOrNone(["unspecified", "multicast", "broadcast"]),
    help: "Nameserver for the guest; none: no DNS information (default: from /etc/resolv.conf)",
  }),
  dnsForward: multiple({
    long: "dns-forward",
    valueName: "ADDR",
    parse: address(SPECIAL_ADDRESSES),
    help: "IPv4 or IPv6 address whose DNS queries go to the host's nameserver",
  }),
  dnsHost: multiple({
    long: "dns-host",
    valueName: "ADDR",
    parse: address(["unspecified", "multicast", "broadcast"]),
    help: "IPv4 or IPv6 nameserver that forwarded queries go to (default: first in /etc/resolv.conf)",
  }),
  search: multiple({
    long: "search",
    short: "S",
    valueName: "LIST|none",
    parse: searchDomains,
    help: "DNS search domains, space-separated; none: no search list (default: from /etc/resolv.conf)",
  }),
  hostname: single({
    long: "hostname",
    short: "H",
    valueName: "NAME",
    parse: hostName,
    help: "Host name for the guest (DHCP; pasta also sets it in the namespace)",
  }),
  fqdn: single({ long: "fqdn", valueName: "NAME", parse: domainName, help: "FQDN for the guest (DHCP, DHCPv6)" }),
  dhcpDns: flag({ long: "dhcp-dns", help: "Pass nameservers via DHCP, DHCPv6 and NDP", modes: "pasta" }),
  dhcpSearch: flag({ long: "dhcp-search", help: "Pass the search list via DHCP, DHCPv6 and NDP", modes: "pasta" }),
  noDhcpDns: flag({ long: "no-dhcp-dns", help: "Don't pass nameservers via DHCP, DHCPv6 and NDP", modes: "passt" }),
  noDhcpSearch: flag({
    long: "no-dhcp-search",
    help: "Don't pass the search list via DHCP, DHCPv6 and NDP",
    modes: "passt",
  }),

  noMapGw: flag({ long: "no-map-gw", help: "Don't map the gateway address to the host's loopback" }),
  mapHostLoopback: multiple({
    long: "map-host-loopback",
    valueName: "ADDR|none",
    parse: addressOrNone(SPECIAL_ADDRESSES),
    help: "IPv4 or IPv6 guest address that reaches the host's loopback (default: the gateway)",
  }),
  mapGuestAddr: multiple({
    long: "map-guest-addr",
    valueName: "ADDR|none",
    parse: addressOrNone(SPECIAL_ADDRESSES),
    help: "IPv4 or IPv6 guest address that reaches the host's own address (default: none)",
  }),

  noTcp: flag({ long: "no-tcp", help: "Disable TCP" }),
  noUdp: flag({ long: "no-udp", help: "Disable UDP" }),
  noIcmp: flag({ long: "no-icmp", help: "Disable ICMP and ICMPv6 echo (implies --no-ndp)" }),
  noDhcp: flag({ long: "no-dhcp", help: "Disable the DHCP server" }),
  noNdp: flag({ long: "no-ndp", help: "Disable NDP responses" }),
  noDhcpv6: flag({ long: "no-dhcpv6", help: "Disable the DHCPv6 server" }),
  noRa: flag({ long: "no-ra", help: "Disable router advertisements" }),
  freebind: flag({ long: "freebind", help: "Bind forwarded ports to addresses not (yet) on the host" }),

  tcpPorts: multiple({
    long: "tcp-ports",
    short: "t",
    valueName: "SPEC",
    parse: portSpec,
    help: "TCP ports to forward from the host to the guest (pasta default: auto; passt: none)",
  }),
  udpPorts: multiple({
    long: "udp-ports",
    short: "u",
    valueName: "SPEC",
    parse: portSpec,
    help: "UDP ports to forward from the host to the guest (pasta default: auto; passt: none)",
  }),
  tcpNs: multiple({
    long: "tcp-ns",
    short: "T",
    valueName: "SPEC",
    parse: portSpec,
    help: "TCP ports to forward from the namespace to the host (default: auto)",
    modes: "pasta",
  }),
  udpNs: multiple({
    long: "udp-ns",
    short: "U",
    valueName: "SPEC",
    parse: portSpec,
    help: "UDP ports to forward from the namespace to the host (default: auto)",
    modes: "pasta",
  }),

  netns: single({
    long: "netns",
    valueName: "PATH|NAME",
    parse: netnsPath,
    help: "Join this network namespace (a NAME is /run/netns/NAME) instead of running a command",
    modes: "pasta",
  }),
  userns: single({
    long: "userns",
    valueName: "PATH",
    parse: filePath,
    help: "Join this user namespace first",
    modes: "pasta",
  }),
  netnsOnly: flag({
    long: "netns-only",
    help: "Don't create or join a user namespace (implied by --netns without --userns)",
    modes: "pasta",
  }),
  noNetnsQuit: flag({
    long: "no-netns-quit",
    help: "Keep running when the joined network namespace goes away",
    modes: "pasta",
  }),
  configNet: flag({
    long: "config-net",
    help: "Configure the tap interface: MTU, addresses and routes (disables router advertisements)",
    modes: "pasta",
  }),
  noCopyRoutes: flag({
    long: "no-copy-routes",
    help: "With --config-net, add only a default route instead of copying the host's",
    modes: "pasta",
  }),
  noCopyAddrs: flag({
    long: "no-copy-addrs",
    help: "With --config-net, add only one address instead of copying the host's",
    modes: "pasta",
  }),
  noSplice: flag({ long: "no-splice", help: "Don't splice loopback connections socket to socket", modes: "pasta" }),
  spliceOnly: flag({
    long: "splice-only",
    help: "No tap device: forward loopback connections only, by splicing (implies --host-lo-to-ns-lo)",
    modes: "pasta",
  }),
  hostLoToNsLo: flag({
    long: "host-lo-to-ns-lo",
    help: "Connections to the host's loopback arrive on the namespace's loopback",
    modes: "pasta",
  }),

  logSize: single({
    long: "log-size",
    valueName: "BYTES",
    parse: logSize,
    help: "Largest size of the log file, at least 40960 (default: 1 MiB); when full, its oldest part goes",
  }),
  stats: single({
    long: "stats",
    valueName: "DELAY",
    parse: statsDelay,
    help: "Print event counts to stderr, at least DELAY seconds apart (foreground only; 0: none)",
  }),
  confPath: refused({ long: "conf-path", short: "c", valueName: "PATH", help: "Configuration and control socket for pesto" }),
  chrootFallback: refused({ long: "chroot-fallback", help: "Isolate with chroot() where pivot_root() fails" }),
  vhostUser: refused({ long: "vhost-user", help: "vhost-user mode, on the socket given by -s" }),
  printCapabilities: refused({ long: "print-capabilities", help: "Print the vhost-user back-end's capabilities" }),
  repairPath: refused({ long: "repair-path", valueName: "PATH|none", help: "Socket for passt-repair (vhost-user)" }),
  migrateExit: refused({ long: "migrate-exit", help: "Exit after migration (vhost-user; deprecated)" }),
  migrateNoLinger: refused({ long: "migrate-no-linger", help: "Close sockets on migration (vhost-user; deprecated)" }),

  version: flag({ long: "version", help: "Print the version and exit", terminal: true }),
  help: flag({ long: "help", short: "h", help: "Print this help and exit", terminal: true }),
} satisfies OptionTable;

type OptionValue<O> =
  O extends RefusedOption ? never
  : O extends FlagOption ? true
  : O extends ValueOption<infer T, "multiple"> ? T[]
  : O extends ValueOption<infer T, "single"> ? T
  : never;

/** The options given on a command line, each converted by its row; absent keys were not given. */
export type ParsedOptions<Table extends OptionTable = typeof OPTIONS> = {
  -readonly [K in keyof Table]?: OptionValue<Table[K]>;
};

/** Options and operands of one command line. */
export interface ParsedArgs<Table extends OptionTable = typeof OPTIONS> {
  readonly options: ParsedOptions<Table>;
  /** The options given, as their keys, once per occurrence in command-line order: where the last of several wins. */
  readonly order: readonly (keyof Table & string)[];
  /** Arguments after the options: for pasta, the command to run or a PID. */
  readonly operands: readonly string[];
}

/** Which of the given keys came last on the command line (undefined: none was given), for options that undo each other. */
export function lastGiven<K extends string>(order: readonly string[], keys: readonly K[]): K | undefined {
  for (let i = order.length - 1; i >= 0; i--) if ((keys as readonly string[]).includes(order[i])) return order[i] as K;
  return undefined;
}

/** Whether an option takes a value. */
function takesValue(def: OptionDef): boolean {
  return def.kind === "refused" ? def.valueName !== undefined : def.kind !== "flag";
}

/** Every long name of a row: its own and its aliases. */
function longNames(def: OptionDef): readonly string[] {
  return def.aliases === undefined ? [def.long] : [def.long, ...def.aliases];
}

/**
 * Resolves a long name as getopt_long does: an exact name, or a prefix of the names of exactly one option (names
 * of one option, like --socket and --socket-path, do not make a prefix ambiguous).
 */
function findLong(rows: readonly [string, OptionDef][], name: string): string {
  const exact = rows.find(([, def]) => longNames(def).includes(name));
  if (exact !== undefined) return exact[0];
  const candidates =
    name === "" ? [] : rows.filter(([, def]) => longNames(def).some((long) => long.startsWith(name)));
  if (candidates.length === 1) return candidates[0][0];
  if (candidates.length === 0) throw new CliError(`unrecognized option '--${name}'`);
  const names = candidates.map(([, def]) => `'--${def.long}'`).join(" ");
  throw new CliError(`option '--${name}' is ambiguous; possibilities: ${names}`);
}

/**
 * Parses options like getopt_long with a leading "+" (as pasta does): short flags cluster (`-dq`), a short
 * option's value is the rest of its word or the next word (`-Pfile`, `-P file`), a long option's value follows
 * "=" or is the next word, long names may be abbreviated, "--" ends the options, and so does the first word that
 * is not an option. Options of the other mode, unknown options and malformed values throw CliError.
 */
export function parseOptions<Table extends OptionTable = typeof OPTIONS>(
  args: readonly string[],
  mode: Mode,
  table: Table = OPTIONS as OptionTable as Table,
): ParsedArgs<Table> {
  const rows = Object.entries(table);
  const values: Record<string, unknown> = {};
  const order: (keyof Table & string)[] = [];
  const done = (operands: readonly string[]): ParsedArgs<Table> => ({
    options: values as ParsedOptions<Table>,
    order,
    operands,
  });
  let next = 0;

  // Returns true when the option ends parsing (help, version).
  const take = (key: keyof Table & string, spelled: string, inlineValue: string | undefined): boolean => {
    const def = table[key];
    if (def.modes !== "both" && def.modes !== mode) {
      throw new CliError(`option '${spelled}' is for ${def.modes} mode only`);
    }
    if (def.kind === "refused") throw new CliError(`--${def.long}: not supported yet`);
    if (def.kind === "flag") {
      if (inlineValue !== undefined) throw new CliError(`option '${spelled}' doesn't allow an argument`);
      values[key] = true;
      order.push(key);
      return def.terminal;
    }
    const raw = inlineValue ?? (next < args.length ? args[next++] : undefined);
    if (raw === undefined) throw new CliError(`option '${spelled}' requires an argument`);
    let value: unknown;
    try {
      value = def.parse(raw);
    } catch (e) {
      if (e instanceof CliError) throw new CliError(`invalid value for ${spelled}: ${e.message}`);
      throw e;
    }
    if (def.kind === "multiple") ((values[key] ??= []) as unknown[]).push(value);
    else values[key] = value;
    order.push(key);
    return false;
  };

  while (next < args.length) {
    const arg = args[next++];
    if (arg === "--") return done(args.slice(next));
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const key = findLong(rows, eq < 0 ? arg.slice(2) : arg.slice(2, eq));
      if (take(key, `--${table[key].long}`, eq < 0 ? undefined : arg.slice(eq + 1))) return done([]);
      continue;
    }
    if (arg.length < 2 || arg[0] !== "-") return done(args.slice(next - 1));
    for (let at = 1; at < arg.length; ) {
      const letter = String.fromCodePoint(arg.codePointAt(at)!);
      at += letter.length;
      const row = rows.find(([, def]) => def.short === letter);
      if (row === undefined) throw new CliError(`invalid option -- '${letter}'`);
      const [key, def] = row;
      // A valued option takes the rest of its word, which ends the cluster.
      if (takesValue(def) && at < arg.length) {
        take(key, `-${letter}`, arg.slice(at));
        break;
      }
      if (take(key, `-${letter}`, undefined)) return done([]);
    }
  }
  return done([]);
}

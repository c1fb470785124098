/**
 * The host's resolver configuration (resolv.conf): the nameservers and search domains the guest is offered by
 * default. Parsing is tolerant, like the C library's: lines it does not understand are skipped, never an error.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { isDomainName, parseIpText } from "./cli/values.ts";

/** What resolv.conf says, in file order. */
export interface ResolvConf {
  /** `nameserver` addresses in canonical text, zone suffixes ("%eth0") removed. */
  readonly nameservers: readonly string[];
  /** The search list: from the last `search` or `domain` line, as the C library takes it. */
  readonly search: readonly string[];
}

// Far more than any real file; bounds the memory a corrupt or hostile file can cost.
const READ_LIMIT = 1 << 20;
// Entries kept: the services pass at most 3 nameservers per IP version and 5 search domains.
const MAX_NAMESERVERS = 32;
const MAX_SEARCH = 32;

/** Parses resolv.conf text; comment lines (# or ;), unknown keywords and malformed values are skipped. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const words = line.trim().split(/[ \t]+/);
    switch (words[0]) {
      case "nameserver": {
        const zone = (words[1] ?? "").indexOf("%");
        const parsed = parseIpText(zone < 0 ? (words[1] ?? "") : words[1].slice(0, zone));
        if (parsed !== undefined && nameservers.length < MAX_NAMESERVERS && !nameservers.includes(parsed.text)) {
          nameservers.push(parsed.text);
        }
        break;
      }
      case "search":
      case "domain": {
        // Each search or domain line replaces the list, so the last one counts; a comment may end the line.
        const comment = words.findIndex((w) => w.startsWith("#") || w.startsWith(";"));
        search = words.slice(1, comment < 0 ? undefined : comment).filter(isDomainName).slice(0, MAX_SEARCH);
        break;
      }
    }
  }
  return { nameservers, search };
}

/** Reads and parses resolv.conf; a missing or unreadable file is an empty configuration. */
export function readResolvConf(path = "/etc/resolv.conf"): ResolvConf {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return { nameservers: [], search: [] };
  }
  try {
    const buf = Buffer.alloc(READ_LIMIT);
    let len = 0;
    while (len < buf.length) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n <= 0) break;
      len += n;
    }
    return parseResolvConf(buf.toString("utf8", 0, len));
  } catch {
    return { nameservers: [], search: [] };
  } finally {
    closeSync(fd);
  }
}

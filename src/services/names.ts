/**
 * The DNS names the services pass on (search domains, the FQDN), filtered down to what can be encoded.
 *
 * Search domains come from the command line or from the host's resolv.conf, which may hold anything; the wire
 * encoders refuse a whole list for one bad name, so each name is checked on its own and only the bad ones are left
 * out. The root name "." is dropped too: as a search domain it means nothing.
 */
import { dnsNameEncode } from "../wire/dnsname.ts";

/** The names that encode as DNS names (RFC 1035 labels), in order; the root and invalid names left out. */
export function encodableDomains(names: readonly string[]): string[] {
  return names.filter((n) => n !== "" && n !== "." && dnsNameEncode(n) !== null);
}

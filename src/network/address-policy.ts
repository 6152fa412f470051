import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";
import { invalid } from "../errors.js";
import { ProviderCallError } from "./provider-call-error.js";

/**
 * Where the broker may send requests (token, refresh, revocation, discovery, JWKS, webhooks):
 * `https` to public addresses. Private, loopback, link-local and other special ranges are
 * refused (SSRF, e.g. the cloud metadata address 169.254.169.254) unless the allow-list
 * (`BROKER_OUTBOUND_ALLOWLIST`: host names, IP addresses, CIDR ranges) names them; plain `http` is
 * then allowed to them too. Host names are checked again at connect time against every address
 * they resolve to, so DNS cannot point an approved name at an internal address later.
 */
export class OutboundPolicy {
  readonly #allowedHosts = new Set<string>();
  readonly #allowedAddresses: AddressList;

  constructor(allowlist: readonly string[]) {
    this.#allowedAddresses = new AddressList(allowlist);
    for (const entry of allowlist) if (!entry.includes("/") && isIP(entry) === 0) this.#allowedHosts.add(entry.toLowerCase());
  }

  /** A host the allow-list names, by name or by address. */
  isAllowlisted(hostname: string): boolean {
    const host = unbracket(hostname).toLowerCase();
    return this.#allowedHosts.has(host) || this.#allowedAddresses.has(host);
  }

  /** An address the broker may connect to. */
  isAllowedAddress(address: string): boolean {
    return this.isAllowlisted(address) || !isSpecialAddress(address);
  }

  /** Why the broker may not call this URL, or undefined when it may. */
  refusal(url: URL): string | undefined {
    if (url.protocol !== "https:" && url.protocol !== "http:") return "only https URLs are allowed";
    if (url.username !== "" || url.password !== "") return "URLs with a user name or password are refused";
    const host = unbracket(url.hostname);
    if (url.protocol === "http:" && !this.isAllowlisted(host)) return "plain http is allowed only to hosts on BROKER_OUTBOUND_ALLOWLIST";
    if (isIP(host) !== 0 && !this.isAllowedAddress(host)) return "internal addresses (private or loopback or link-local) are refused";
    return undefined;
  }

  /**
   * Refuses a special-use or internal host name (see isSpecialUseName) that the allow-list does
   * not name. For host names a credential's template parameter fills in (Okta's `domain`), which
   * are stored to be called later: refused when stored, not only at connect time.
   */
  requireHostName(hostname: string, field: string): void {
    if (isSpecialUseName(hostname) && !this.isAllowlisted(hostname.replace(/\.$/, ""))) {
      invalid(field, "is refused - special-use and internal host names (localhost, .local, .internal, .localdomain) are allowed only when BROKER_OUTBOUND_ALLOWLIST names them");
    }
  }

  /** Validates an outbound URL given in a request. Throws InvalidInputError naming the field. */
  requireUrl(value: string, field: string, url: URL): string {
    const refusal = this.refusal(url);
    if (refusal !== undefined) invalid(field, `is refused - ${refusal}`);
    return value;
  }

  /**
   * A dns.lookup for sockets that refuses a host name resolving to any address the broker may
   * not call.
   */
  readonly lookup = (
    hostname: string,
    options: { all?: boolean; family?: number | string },
    callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { all: true, family: options.family === undefined ? 0 : Number(options.family) || 0 }, (error, addresses) => {
      if (error) return callback(error, []);
      const byName = this.isAllowlisted(hostname);
      const refused = addresses.find((entry) => !byName && !this.isAllowedAddress(entry.address));
      if (refused !== undefined || addresses.length === 0) {
        // A coded error, so that boundedFetch recognises the refusal inside undici's wrapping.
        const failure = new ProviderCallError("unreachable", `refused: ${hostname} resolves to a private or special address`);
        return callback(failure as Error as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses;
      callback(null, first!.address, first!.family);
    });
  };
}

// Two lists: node's BlockList matches an IPv4 address against IPv6 rules through its mapped form,
// so one list holding ::ffff:0:0/96 would call every IPv4 address special.
const SPECIAL_V4 = new BlockList();
const SPECIAL_V6 = new BlockList();
for (const [address, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  SPECIAL_V4.addSubnet(address, prefix, "ipv4");
}
for (const [address, prefix] of [
  ["::", 96], // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d (RFC 4291 §2.5.5.1)
  ["::ffff:0:0", 96], // IPv4-mapped (RFC 4291 §2.5.5.2): an IPv4 address in disguise, never a public IPv6 host
  ["64:ff9b::", 96], // NAT64 can reach IPv4 private ranges (RFC 6052)
  ["64:ff9b:1::", 48], // local-use NAT64 (RFC 8215)
  ["100::", 64],
  ["2001:db8::", 32],
  ["2002::", 16], // 6to4 embeds any IPv4 address, private ones included (RFC 3056)
  ["fc00::", 7],
  ["fe80::", 10],
  ["fec0::", 10], // deprecated site-local (RFC 3879)
  ["ff00::", 8],
] as const) {
  SPECIAL_V6.addSubnet(address, prefix, "ipv6");
}

/**
 * Names that never mean a public host: RFC 6761 §6.3 `localhost` and §6.4 `invalid`, RFC 6762
 * `local` (multicast DNS), RFC 8375 `home.arpa`, `internal` (reserved by ICANN for private use;
 * `metadata.google.internal` is the cloud metadata server) and `localdomain`, which many systems
 * resolve to themselves.
 */
const SPECIAL_USE_DOMAINS = ["localhost", "invalid", "local", "internal", "localdomain", "home.arpa"];

/** A special-use or internal host name: one of SPECIAL_USE_DOMAINS or a name under one. */
export function isSpecialUseName(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  return SPECIAL_USE_DOMAINS.some((domain) => host === domain || host.endsWith(`.${domain}`));
}

/** Loopback, private, link-local, multicast, documentation and other non-public ranges. */
export function isSpecialAddress(address: string): boolean {
  const host = unbracket(address);
  const family = isIP(host);
  if (family === 0) return false;
  return family === 6 ? SPECIAL_V6.check(host, "ipv6") : SPECIAL_V4.check(host, "ipv4");
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Parses `BROKER_OUTBOUND_ALLOWLIST`. Throws with the bad entry. */
/** The IP addresses and CIDR ranges among `entries` (host names are left out), as one list. */
export class AddressList {
  readonly #list = new BlockList();

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = "", bits] = entry.split("/");
      const family = isIP(address);
      if (family === 0) continue;
      if (bits === undefined) this.#list.addAddress(address, family === 6 ? "ipv6" : "ipv4");
      else this.#list.addSubnet(address, Number(bits), family === 6 ? "ipv6" : "ipv4");
    }
  }

  has(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.#list.check(address, family === 6 ? "ipv6" : "ipv4");
  }
}

export function parseOutboundAllowlist(text: string): string[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const [address, prefix, extra] = entry.split("/");
      if (prefix !== undefined) {
        const family = isIP(address ?? "");
        const bits = Number(prefix);
        if (extra !== undefined || family === 0 || !/^\d+$/.test(prefix) || bits > (family === 6 ? 128 : 32)) {
          throw new Error(`"${entry.slice(0, 64)}" is not a CIDR range`);
        }
      } else if (isIP(entry) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(entry)) {
        throw new Error(`"${entry.slice(0, 64)}" is not a host name, IP address or CIDR range`);
      }
      return entry;
    });
}

import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { AddressList, parseOutboundAllowlist } from "./address-policy.js";

/** `BROKER_TRUSTED_PROXIES`: comma-separated IP addresses and CIDR ranges (no host names). */
export function parseTrustedProxies(text: string): string[] {
  return parseOutboundAllowlist(text).map((entry) => {
    if (isIP(entry.split("/")[0] ?? "") === 0) throw new Error(`"${entry.slice(0, 64)}" is not an IP address or CIDR range`);
    return entry;
  });
}

/**
 * The proxies in front of the broker. Only a request whose peer is one of them may say, in
 * `X-Forwarded-For` or `Forwarded`, whom it came from; anyone else could name any address.
 */
export class TrustedProxies extends AddressList {}

/**
 * The address a request came from: the peer, unless the peer is a trusted proxy; then the
 * rightmost address in the forwarding chain that is not a trusted proxy (entries left of it were
 * written by the client and prove nothing). `X-Forwarded-For` is read when present, else
 * `Forwarded` (RFC 7239 §5.2 `for=`). An entry that is no address (`unknown`, an obfuscated
 * identifier, RFC 7239 §6) stops the walk at the proxy that wrote it.
 */
export function clientAddress(peer: string | undefined, headers: IncomingHttpHeaders, trusted: TrustedProxies): string {
  let current = unmapped(peer ?? "unknown");
  if (!trusted.has(current)) return current;
  const chain = forwardedChain(headers);
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = chain[i];
    if (hop === undefined) return current;
    current = hop;
    if (!trusted.has(hop)) return hop;
  }
  return current;
}

/**
 * The key a client is limited under: its address, or for IPv6 its /64, since one host usually
 * holds a whole /64 (RFC 4291 §2.5.4: interface IDs are 64 bits) and could otherwise rotate
 * addresses past any per-address limit.
 */
export function clientLimitKey(address: string): string {
  if (isIP(address) !== 6) return address;
  return `${expandIpv6(address).slice(0, 4).join(":")}::/64`;
}

/** Each hop's address, client first; `undefined` for an entry that is not an IP address. */
function forwardedChain(headers: IncomingHttpHeaders): Array<string | undefined> {
  const xff = headers["x-forwarded-for"];
  if (xff !== undefined) {
    return [xff]
      .flat()
      .join(",")
      .split(",")
      .map((entry) => ipOf(entry.trim()));
  }
  const forwarded = headers.forwarded;
  if (forwarded === undefined) return [];
  // RFC 7239 §4: elements separated by commas, pairs by semicolons; values may be quoted strings.
  const chain: Array<string | undefined> = [];
  for (const element of splitOutsideQuotes(forwarded, ",")) {
    const pair = splitOutsideQuotes(element, ";").find((candidate) => /^\s*for\s*=/i.test(candidate));
    if (pair === undefined) continue;
    const value = pair.slice(pair.indexOf("=") + 1).trim();
    chain.push(ipOf(value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, "$1") : value));
  }
  return chain;
}

/** The IP address of a node (`192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`), else undefined. */
function ipOf(node: string): string | undefined {
  let address = node;
  if (node.startsWith("[")) address = node.slice(1, node.indexOf("]"));
  else if (node.split(":").length === 2) address = node.slice(0, node.indexOf(":"));
  return isIP(address) === 0 ? undefined : unmapped(address);
}

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) as `192.0.2.1`. */
function unmapped(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match?.[1] ?? address;
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "\\" && quoted) i++;
    else if (char === '"') quoted = !quoted;
    else if (char === separator && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** The eight 16-bit groups of an IPv6 address, as lowercase hex without leading zeros. */
function expandIpv6(address: string): string[] {
  let text = address.toLowerCase().split("%")[0] ?? "";
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return groups.map((group) => Number.parseInt(group, 16).toString(16));
}

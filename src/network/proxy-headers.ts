/**
 * Which headers a proxied call passes on. RFC 9110 §7.6.1: hop-by-hop headers (and those the
 * Connection header names) belong to one connection and are never forwarded. The caller's own
 * credentials (Authorization, Cookie) are for the broker, not the provider; Host is the
 * provider's; the broker's own `x-broker-*` controls stay here.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
const REQUEST_DROPPED = new Set([...HOP_BY_HOP, "authorization", "cookie", "host", "content-length", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"]);
const RESPONSE_DROPPED = new Set([...HOP_BY_HOP, "set-cookie", "set-cookie2"]);

/** A header name (RFC 9110 §5.1 token) and a value without control characters but tab. */
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/;
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export type HeaderList = Array<[string, string]>;

/** Why a header cannot be sent (CR/LF smuggling, a bad name), or undefined. */
export function headerRefusal(name: string, value: string): string | undefined {
  if (!NAME.test(name)) return `header name "${name.slice(0, 64).replace(/[^\x20-\x7e]/g, "?")}" is not valid`;
  if (!VALUE.test(value)) return `header "${name}" has control characters`;
  return undefined;
}

/**
 * The caller's headers to forward: without the dropped ones, those the Connection header names,
 * the broker's own `x-broker-*` ones and the token's header (a caller may never set the token).
 * Then the catalog's required headers the caller did not set, then the token.
 */
export function forwardedRequestHeaders(
  caller: HeaderList,
  required: Readonly<Record<string, string>>,
  token: { name: string; value: string } | undefined,
): HeaderList {
  const named = connectionNamed(caller);
  const tokenName = token?.name.toLowerCase();
  const out: HeaderList = [];
  const present = new Set<string>();
  for (const [name, value] of caller) {
    const lower = name.toLowerCase();
    if (REQUEST_DROPPED.has(lower) || named.has(lower) || lower.startsWith("x-broker-") || lower === tokenName) continue;
    out.push([name, value]);
    present.add(lower);
  }
  for (const [name, value] of Object.entries(required)) if (!present.has(name.toLowerCase()) && name.toLowerCase() !== tokenName) out.push([name, value]);
  if (token !== undefined) out.push([token.name, token.value]);
  return out;
}

/** The provider's response headers to pass back. */
export function returnedResponseHeaders(provider: HeaderList): HeaderList {
  const named = connectionNamed(provider);
  return provider.filter(([name]) => {
    const lower = name.toLowerCase();
    return !RESPONSE_DROPPED.has(lower) && !named.has(lower);
  });
}

/** Header octets as HTTP/2 counts them (RFC 9113 §6.5.2: name, value and 32 per field). */
export function headerBytes(headers: HeaderList): number {
  let size = 0;
  for (const [name, value] of headers) size += name.length + value.length + 32;
  return size;
}

function connectionNamed(headers: HeaderList): Set<string> {
  const named = new Set<string>();
  for (const [name, value] of headers) {
    if (name.toLowerCase() !== "connection") continue;
    for (const token of value.split(",")) if (token.trim() !== "") named.add(token.trim().toLowerCase());
  }
  return named;
}

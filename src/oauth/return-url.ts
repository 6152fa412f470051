import { invalid } from "../errors.js";
import { requireEndpointUrl } from "../validation.js";

/** An allow-list entry: an absolute URL with no query or fragment. */
export function parseAllowedReturnUrl(value: string, field: string): string {
  return requireEndpointUrl(value, field, { allowQuery: false }).href;
}

/**
 * RFC 9700 §4.11 (open redirectors): the browser is only ever sent back to a place the
 * organisation listed. Origins must be equal; the path must be the allowed path or below it,
 * compared segment by segment after percent-decoding, so `/oauth` does not allow `/oauthx`. A
 * path that servers or proxies may read differently is refused outright (see `pathSegments`).
 */
export function isAllowedReturnUrl(returnUrl: URL, allowed: readonly string[]): boolean {
  const segments = pathSegments(returnUrl);
  if (segments === undefined) return false;
  return allowed.some((entry) => {
    const base = new URL(entry);
    if (base.origin !== returnUrl.origin) return false;
    const prefix = pathSegments(base);
    if (prefix === undefined) return false;
    if (prefix.at(-1) === "") prefix.pop(); // `/oauth/` allows what `/oauth` allows
    return prefix.length <= segments.length && prefix.every((segment, i) => segment === segments[i]);
  });
}

/**
 * The decoded path segments, or undefined when the path is ambiguous: an encoded `/`, `\`, `.`
 * or NUL (`..%2f..%2fevil` climbs out on servers that decode before routing), a `;` (`..;/` is a
 * parent directory for Tomcat and some proxies), an empty segment (`//evil.example` is a
 * protocol-relative URL to a client-side router) or a dot segment left after parsing.
 */
function pathSegments(url: URL): string[] | undefined {
  const path = url.pathname;
  if (/%(2f|5c|2e|00)/i.test(path) || path.includes(";") || /\/\/./.test(path)) return undefined;
  try {
    const segments = path.split("/").slice(1).map((segment) => decodeURIComponent(segment));
    return segments.some((segment) => segment === "." || segment === "..") ? undefined : segments;
  } catch {
    return undefined; // malformed percent-encoding
  }
}

/** Validates a caller's return URL against the organisation's allow-list. */
export function requireAllowedReturnUrl(value: string, allowed: readonly string[]): string {
  const url = requireEndpointUrl(value, "return_url");
  if (pathSegments(url) === undefined) {
    invalid("return_url", "has an ambiguous path (an encoded '/', '\\' or '.', a ';', or an empty segment)");
  }
  if (!isAllowedReturnUrl(url, allowed)) invalid("return_url", "is not in the organisation's allowed return URLs");
  return url.href;
}

/** The return URL with the outcome added as query parameters. */
export function returnUrlWith(returnUrl: string, params: Record<string, string>): string {
  const url = new URL(returnUrl);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.href;
}

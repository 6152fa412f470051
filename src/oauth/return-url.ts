import { invalid } from "../errors.js";
import { requireEndpointUrl } from "../validation.js";

export const MAX_ALLOWED_RETURN_URLS = 20;

/** An allow-list entry: an absolute URL with no query or fragment. */
export function parseAllowedReturnUrl(value: string, field: string): string {
  return requireEndpointUrl(value, field, { allowQuery: false }).href;
}

/**
 * RFC 9700 §4.11 (open redirectors): the browser is only ever sent back to a place the
 * organisation listed. Origins must be equal; the path must be the allowed path or below it, at a
 * segment boundary, so `/oauth` does not allow `/oauthx`. Paths are compared after URL
 * normalisation, so `/oauth/../admin` cannot climb out.
 */
export function isAllowedReturnUrl(returnUrl: URL, allowed: readonly string[]): boolean {
  return allowed.some((entry) => {
    const base = new URL(entry);
    if (base.origin !== returnUrl.origin) return false;
    const prefix = base.pathname.endsWith("/") ? base.pathname : `${base.pathname}/`;
    return returnUrl.pathname === base.pathname || returnUrl.pathname.startsWith(prefix);
  });
}

/** Validates a caller's return URL against the organisation's allow-list. */
export function requireAllowedReturnUrl(value: string, allowed: readonly string[]): string {
  const url = requireEndpointUrl(value, "return_url");
  if (!isAllowedReturnUrl(url, allowed)) invalid("return_url", "is not in the organisation's allowed return URLs");
  return url.href;
}

/** The return URL with the outcome added as query parameters. */
export function returnUrlWith(returnUrl: string, params: Record<string, string>): string {
  const url = new URL(returnUrl);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.href;
}

import { invalid } from "./errors.js";

/** A field the request rules cannot require on their own (required in one RPC or case only). */
export function requirePresent(value: string, field: string): string {
  if (value === "") invalid(field, "is required");
  return value;
}

/** A required free-text field: non-empty, no control characters, at most `max` characters. */
export function requireText(value: string, field: string, max: number): string {
  requirePresent(value, field);
  return optionalText(value, field, max);
}

export function optionalText(value: string, field: string, max: number): string {
  if (value.length > max) invalid(field, `must be at most ${max} characters`);
  // Control characters have no place in names, IDs or URLs, and would corrupt logs and headers.
  if (/[\u0000-\u001f\u007f]/.test(value)) invalid(field, "must not contain control characters");
  // Decoders turn invalid UTF-8 into U+FFFD rather than fail: refuse what was mis-encoded.
  if (value.includes("\ufffd")) invalid(field, "must be valid UTF-8");
  return value;
}

/**
 * C0 controls, DEL, and the bidi embeddings, overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069; Unicode UAX #9), which make text display other than it reads ("Trojan Source").
 * Values the broker keeps from a provider or a browser (account fields, metadata) must not hold them.
 */
export const UNSAFE_TEXT = /[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/;

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname) || hostname.endsWith(".localhost");
}

export interface UrlRules {
  /** Accept plain `http` for any host (loopback hosts are always accepted). */
  allowHttp?: boolean;
  /** Reject a query string (token endpoints may keep theirs; callbacks may not). */
  allowQuery?: boolean;
}

/**
 * Parses an absolute `https` URL (`http` for loopback hosts or when allowed) with no fragment and
 * no user name or password, as RFC 6749 §3.1 and §3.2 require of endpoints.
 */
export function requireEndpointUrl(value: string, field: string, rules: UrlRules = {}): URL {
  requireText(value, field, 2048);
  const url = URL.parse(value) ?? invalid(field, "must be an absolute URL");
  if (url.protocol !== "https:" && url.protocol !== "http:") invalid(field, "must be an https URL");
  if (url.protocol === "http:" && !rules.allowHttp && !isLoopbackHost(url.hostname)) {
    invalid(field, "must be an https URL (http is allowed only for loopback hosts)");
  }
  // RFC 6749 §3.1: the endpoint URI MUST NOT include a fragment component. `new URL` drops an
  // empty "#", so look at the raw text.
  if (value.includes("#")) invalid(field, "must not contain a fragment");
  if (url.username !== "" || url.password !== "") invalid(field, "must not contain a user name or password");
  if (rules.allowQuery === false && url.search !== "") invalid(field, "must not contain a query");
  return url;
}

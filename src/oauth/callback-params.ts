import { createHmac, timingSafeEqual } from "node:crypto";
import { UNSAFE_TEXT } from "../validation.js";

/**
 * The query of a redirect back from the provider (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2).
 * Read strictly: a parameter given twice, or one far longer than any real provider sends, makes the
 * whole response unusable, since either could be an attempt to confuse the checks that follow.
 */
export interface CallbackParams {
  state: string;
  code: string | undefined;
  error: string | undefined;
  errorDescription: string | undefined;
  iss: string | undefined;
}

const LIMITS: Record<string, number> = {
  state: 256,
  code: 4096,
  error: 256,
  error_description: 2048,
  error_uri: 2048,
  iss: 2048,
};
const MAX_PARAMS = 32;

/** Returns undefined for a response that cannot be trusted or matched to an attempt. */
export function parseCallbackQuery(search: string): CallbackParams | undefined {
  const params = new URLSearchParams(search);
  const seen = new Set<string>();
  for (const [key, value] of params) {
    if (seen.has(key) || seen.size >= MAX_PARAMS) return undefined;
    seen.add(key);
    if (value.length > (LIMITS[key] ?? 2048)) return undefined;
  }
  const state = params.get("state");
  if (state === null || state === "") return undefined;
  const read = (key: string) => {
    const value = params.get(key);
    return value === null || value === "" ? undefined : value;
  };
  return {
    state,
    code: read("code"),
    error: read("error"),
    errorDescription: read("error_description"),
    iss: read("iss"),
  };
}

/**
 * RFC 9207 §2.4 and RFC 9700 §4.4.2 (mix-up defence): with a known issuer, an `iss` that differs
 * from it, or a missing `iss` from a provider that always sends one, means the response may come
 * from another authorization server, so the code must not be sent to this one's token endpoint.
 */
export function issuerMatches(
  iss: string | undefined,
  credential: { issuer?: string | undefined; authorization_response_iss_parameter_supported: boolean },
): boolean {
  if (credential.issuer === undefined) return true;
  if (iss === undefined) return !credential.authorization_response_iss_parameter_supported;
  return iss === credential.issuer;
}

/** The provider's error code if it is a well-formed RFC 6749 §4.1.2.1 code, for the return URL. */
export function providerErrorCode(error: string): string {
  return /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(error) ? error : "access_denied";
}

/** The shared callback path; an organisation with `per_organisation_callback` has its own below it. */
export const CALLBACK_PATH = "/oauth2/callback";

const ORGANISATION_CALLBACK = /^\/oauth2\/callback\/([A-Za-z0-9._-]{1,128})$/;

/**
 * The `redirect_uri` of an organisation's flows: the shared callback, or with
 * `per_organisation_callback` its own (security issue 11, item 2), so that a provider registration
 * naming it can send codes to no other organisation's flow.
 */
export function redirectUriFor(publicUrl: string, perOrganisation: string | undefined): string {
  return perOrganisation === undefined ? `${publicUrl}${CALLBACK_PATH}` : `${publicUrl}${CALLBACK_PATH}/${perOrganisation}`;
}

/**
 * Whether a flow whose `redirect_uri` is `redirectUri` may complete at this callback: the URI must
 * name this same callback (shared, or this organisation's). Only the path is compared, since the
 * request did arrive at this broker, whose instances may know their public URL differently.
 */
export function isRedirectUriOf(callback: { organisationId: string | undefined }, redirectUri: string): boolean {
  return redirectUri.endsWith(redirectUriFor("", callback.organisationId));
}

/**
 * Which callback a request path is: `{ organisationId: undefined }` for the shared one, the
 * organisation's for its own, undefined when the path is no callback.
 */
export function parseCallbackPath(path: string): { organisationId: string | undefined } | undefined {
  if (path === CALLBACK_PATH) return { organisationId: undefined };
  const organisationId = ORGANISATION_CALLBACK.exec(path)?.[1];
  return organisationId === undefined ? undefined : { organisationId };
}

/** How a provider signs its redirect back (see `metadata.callback_signature` in catalog.schema.json). */
export interface CallbackSignature {
  scheme: "hmac_sha256_sorted_query";
  /** The query parameter that carries the signature. */
  parameter: string;
}

/** What the provider profile says about the values a provider adds to its redirect. */
export interface CallbackValueRules {
  /** Metadata key -> query parameter name. */
  names: Readonly<Record<string, string>>;
  /** Metadata key -> anchored pattern the value must match. */
  patterns: Readonly<Record<string, string>>;
  /** Metadata key -> the value it must equal (the connection's own, e.g. its Shopify shop). */
  equals: Readonly<Record<string, string>>;
  signature: CallbackSignature | undefined;
}

/** Why a callback's values were refused: the `error` the return URL gets. */
export type CallbackValueRefusal = "invalid_callback_signature" | "invalid_callback_value";

/**
 * Non-secret values a provider adds to its redirect (QuickBooks' `realmId`, Shopify's `shop`),
 * as metadata, or why the callback must fail. The browser can send anything there (issue 20,
 * item 7), so: the provider's signature over the query first, where its docs define one; then
 * every present value must match its pattern and equal what the connection expects. Call it only
 * on a query that parseCallbackQuery accepted (no repeats, bounded lengths).
 */
export function checkCallbackValues(
  search: string,
  rules: CallbackValueRules,
  clientSecret: () => string,
): { metadata: Record<string, string> } | { refused: CallbackValueRefusal; key: string } {
  const params = new URLSearchParams(search);
  if (rules.signature !== undefined && !signatureValid(params, rules.signature, clientSecret())) {
    return { refused: "invalid_callback_signature", key: rules.signature.parameter };
  }
  const metadata: Record<string, string> = {};
  for (const [key, name] of Object.entries(rules.names)) {
    const value = params.get(name) ?? "";
    const expected = rules.equals[key];
    if (value === "" && expected === undefined) continue;
    const pattern = rules.patterns[key];
    // The catalog requires a pattern for every key; without one (a stale entry) nothing is kept.
    if (pattern === undefined || value.length > 256 || UNSAFE_TEXT.test(value) || !new RegExp(pattern, "u").test(value)) {
      return { refused: "invalid_callback_value", key: name };
    }
    if (expected !== undefined && value !== expected) return { refused: "invalid_callback_value", key: name };
    metadata[key] = value;
  }
  return { metadata };
}

/**
 * Shopify's redirect signature
 * (https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant):
 * HMAC-SHA256 keyed with the client secret over every other parameter, sorted by name, as
 * `name=value` joined by `&` (`%` and `&` escaped in names and values, `=` in names), hex.
 * Compared in constant time.
 */
function signatureValid(params: URLSearchParams, signature: CallbackSignature, secret: string): boolean {
  const given = params.get(signature.parameter) ?? "";
  if (!/^[0-9a-f]{64}$/i.test(given)) return false;
  const escapeForSignature = (text: string, name: boolean) => {
    const escaped = text.replaceAll("%", "%25").replaceAll("&", "%26");
    return name ? escaped.replaceAll("=", "%3D") : escaped;
  };
  const message = [...params]
    .filter(([name]) => name !== signature.parameter)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${escapeForSignature(name, true)}=${escapeForSignature(value, false)}`)
    .join("&");
  const expected = createHmac("sha256", secret).update(message).digest();
  return timingSafeEqual(expected, Buffer.from(given.toLowerCase(), "hex"));
}

import { ProviderCallError } from "../network/provider-call-error.js";
import { UNSAFE_TEXT } from "../validation.js";

/**
 * Reads a token endpoint response (RFC 6749 §5.1, §5.2), accepting the variations real providers
 * send: `token_type` in any case, no `expires_in`, `expires_in` as a string, `scope` separated by
 * spaces or commas, and a form-encoded body from providers that ignore `Accept: application/json`
 * (GitHub). Anything else that is not a usable token response is a ProviderCallError (`oauth_error`, `http_error` or
 * `invalid_response`).
 */
export interface TokenSet {
  accessToken: string;
  /** Lower-cased, e.g. `bearer`. */
  tokenType: string;
  /** Seconds, when the provider said. */
  expiresIn: number | undefined;
  refreshToken: string | undefined;
  idToken: string | undefined;
  /** Granted scopes, when the provider said (RFC 6749 §5.1: omitted when as requested). */
  scopes: string[] | undefined;
  /** The response's other fields, as sent. */
  extra: Record<string, unknown>;
  /** The non-secret values `rules.metadata` names, as strings, when present. */
  metadata: Record<string, string>;
}

/**
 * Where a provider puts each part of its token response, and what to assume when a part is
 * missing: asked of the provider profile, so this module stays pure.
 */
export interface TokenResponseRules {
  /** Dotted paths into the response, tried in order (first present wins). */
  paths: Record<"access_token" | "refresh_token" | "expires_in" | "token_type" | "scope" | "id_token", readonly string[]>;
  /** For providers that answer errors with HTTP 200: a boolean success field (Slack's `ok`). */
  okField: string | undefined;
  /** The error code's field (RFC 6749 §5.2 `error`). */
  errorField: string;
  /** The `token_type` to assume when the response has none (lower-case). */
  defaultTokenType: string | undefined;
  /** Seconds to assume when the response has no `expires_in` and the provider documents a lifetime. */
  defaultExpiresIn: number | undefined;
  /** Non-secret values to keep: metadata key -> dotted path. */
  metadata?: Readonly<Record<string, string>>;
}

/** RFC 6749 §5.1 names, no defaults: the generic behaviour. */
export const STANDARD_TOKEN_RESPONSE: TokenResponseRules = {
  paths: {
    access_token: ["access_token"],
    refresh_token: ["refresh_token"],
    expires_in: ["expires_in"],
    token_type: ["token_type"],
    scope: ["scope"],
    id_token: ["id_token"],
  },
  okField: undefined,
  errorField: "error",
  defaultTokenType: undefined,
  defaultExpiresIn: undefined,
};

/** A token response that is not a usable one: the body is not what RFC 6749 §5.1 describes. */
function invalidResponse(message: string, status?: number): ProviderCallError {
  return new ProviderCallError("invalid_response", message, { status });
}

const KNOWN_FIELDS = new Set(["access_token", "token_type", "expires_in", "refresh_token", "id_token", "scope"]);
/** RFC 6749 §5.2: error = 1*( %x20-21 / %x23-5B / %x5D-7E ) */
const ERROR_CODE = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

export function parseTokenResponse(
  status: number,
  contentType: string | null,
  body: string,
  rules: TokenResponseRules = STANDARD_TOKEN_RESPONSE,
): TokenSet {
  const fields = parseBody(contentType, body);
  if (fields === undefined) throw invalidResponse(`HTTP ${status} with a body that is neither JSON nor form-encoded`, status);
  // Some providers (GitHub) answer errors with HTTP 200, so look for `error` whatever the status;
  // others (Slack) say `"ok": false` with the code in their own field.
  const error = valueAt(fields, rules.errorField);
  const failed = rules.okField !== undefined && valueAt(fields, rules.okField) !== true;
  if (typeof error === "string" || failed) {
    const code = typeof error === "string" && ERROR_CODE.test(error) ? error : "invalid_error";
    throw new ProviderCallError("oauth_error", `provider error (HTTP ${status})`, { oauthError: code, status });
  }
  if (status !== 200) throw new ProviderCallError("http_error", `HTTP ${status}`, { status });

  const first = (field: keyof TokenResponseRules["paths"]) => {
    for (const path of rules.paths[field]) {
      const value = valueAt(fields, path);
      if (value !== undefined && value !== null && value !== "") return value;
    }
    return undefined;
  };
  const accessToken = first("access_token");
  if (typeof accessToken !== "string" || accessToken === "") throw invalidResponse('no "access_token"', status);
  const tokenType = first("token_type") ?? rules.defaultTokenType;
  if (typeof tokenType !== "string" || tokenType === "") throw invalidResponse('no "token_type"', status);
  return {
    accessToken,
    tokenType: tokenType.toLowerCase(),
    expiresIn: parseExpiresIn(first("expires_in")) ?? rules.defaultExpiresIn,
    refreshToken: optionalString(first("refresh_token"), "refresh_token"),
    idToken: optionalString(first("id_token"), "id_token"),
    scopes: parseScope(first("scope")),
    extra: Object.fromEntries(Object.entries(fields).filter(([key]) => !KNOWN_FIELDS.has(key))),
    metadata: extractMetadata(fields, rules.metadata ?? {}),
  };
}

/** A dotted path into a parsed response (`authed_user.access_token`). */
function valueAt(fields: Record<string, unknown>, path: string): unknown {
  let value: unknown = fields;
  for (const key of path.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Scalar values at the named paths, as strings; absent or structured values are left out. */
function extractMetadata(fields: Record<string, unknown>, paths: Readonly<Record<string, string>>): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [key, path] of Object.entries(paths)) {
    const value = valueAt(fields, path);
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") continue;
    const text = String(value);
    // Control and bidi characters: left out (issue 20, item 7), as values too long are.
    if (text !== "" && text.length <= 2048 && !UNSAFE_TEXT.test(text)) metadata[key] = text;
  }
  return metadata;
}

function parseBody(contentType: string | null, body: string): Record<string, unknown> | undefined {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const text = body.trim();
  if (type === "application/json" || type.endsWith("+json") || text.startsWith("{")) {
    try {
      const value: unknown = JSON.parse(text);
      return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
  if (type === "application/x-www-form-urlencoded" || type === "text/plain") {
    if (!/^[^=&\s<]+=[^&]*(&[^=&\s]+=[^&]*)*$/.test(text)) return undefined;
    return Object.fromEntries(new URLSearchParams(text));
  }
  return undefined;
}

/**
 * The longest lifetime the broker believes (10 years). RFC 6749 §5.1 sets no limit, and providers
 * that mean "long-lived" send anything from 2^31-1 to 1e300, which made an invalid date that every
 * GetAccessToken then tried to refresh; a longer promise is treated as this one.
 */
export const MAX_EXPIRES_IN_SECONDS = 10 * 365 * 24 * 3600;

function parseExpiresIn(value: unknown): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const seconds = typeof value === "string" && /^\d{1,20}$/.test(value) ? Number(value) : value;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    throw invalidResponse('"expires_in" is not a number of seconds');
  }
  // A token that expired as it was issued is no lifetime at all: Mailchimp sends 0 for tokens that
  // never expire (https://mailchimp.com/developer/marketing/guides/access-user-data-oauth-2/), and
  // taken literally every connection would need reauthorization at once. 0 means "not said".
  if (seconds === 0) return undefined;
  return Math.min(Math.floor(seconds), MAX_EXPIRES_IN_SECONDS);
}

function parseScope(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalidResponse('"scope" is not a string');
  return [...new Set(value.split(/[\s,]+/).filter((scope) => scope !== ""))];
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw invalidResponse(`"${name}" is not a string`);
  return value;
}

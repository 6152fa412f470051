/**
 * Reads a token endpoint response (RFC 6749 §5.1, §5.2), accepting the variations real providers
 * send: `token_type` in any case, no `expires_in`, `expires_in` as a string, `scope` separated by
 * spaces or commas, and a form-encoded body from providers that ignore `Accept: application/json`
 * (GitHub). Anything else that is not a usable token response is a TokenResponseError.
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
}

export class TokenResponseError extends Error {
  override readonly name = "TokenResponseError";

  constructor(
    message: string,
    /** The OAuth `error` code when the provider sent one (RFC 6749 §5.2). */
    readonly oauthError?: string,
  ) {
    super(message);
  }
}

const KNOWN_FIELDS = new Set(["access_token", "token_type", "expires_in", "refresh_token", "id_token", "scope"]);
/** RFC 6749 §5.2: error = 1*( %x20-21 / %x23-5B / %x5D-7E ) */
const ERROR_CODE = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

export function parseTokenResponse(status: number, contentType: string | null, body: string): TokenSet {
  const fields = parseBody(contentType, body);
  if (fields === undefined) throw new TokenResponseError(`HTTP ${status} with a body that is neither JSON nor form-encoded`);
  // Some providers (GitHub) answer errors with HTTP 200, so look for `error` whatever the status.
  if (typeof fields.error === "string") {
    throw new TokenResponseError(`provider error (HTTP ${status})`, ERROR_CODE.test(fields.error) ? fields.error : "invalid_error");
  }
  if (status !== 200) throw new TokenResponseError(`HTTP ${status}`);

  const accessToken = fields.access_token;
  if (typeof accessToken !== "string" || accessToken === "") throw new TokenResponseError('no "access_token"');
  const tokenType = fields.token_type;
  if (typeof tokenType !== "string" || tokenType === "") throw new TokenResponseError('no "token_type"');
  return {
    accessToken,
    tokenType: tokenType.toLowerCase(),
    expiresIn: parseExpiresIn(fields.expires_in),
    refreshToken: optionalString(fields.refresh_token, "refresh_token"),
    idToken: optionalString(fields.id_token, "id_token"),
    scopes: parseScope(fields.scope),
    extra: Object.fromEntries(Object.entries(fields).filter(([key]) => !KNOWN_FIELDS.has(key))),
  };
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
    throw new TokenResponseError('"expires_in" is not a number of seconds');
  }
  return Math.min(Math.floor(seconds), MAX_EXPIRES_IN_SECONDS);
}

function parseScope(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new TokenResponseError('"scope" is not a string');
  return [...new Set(value.split(/[\s,]+/).filter((scope) => scope !== ""))];
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new TokenResponseError(`"${name}" is not a string`);
  return value;
}

import type { JWTPayload } from "jose";
import { ProviderCallError } from "../network/provider-call-error.js";
import { UNSAFE_TEXT } from "../validation.js";

/** The account at the provider, as far as it said. */
export interface ExternalAccount {
  id: string;
  email?: string;
  name?: string;
}

/** Where an account's fields are in a JSON object (claims, a userinfo or token response). */
export interface AccountFields {
  id: string;
  email?: string;
  name?: string;
}

/** OpenID Connect Core §5.1 standard claims. */
export const OIDC_ACCOUNT_FIELDS: AccountFields = { id: "sub", email: "email", name: "name" };

/**
 * The account named by a verified ID token (OpenID Connect Core §2: `sub` is the stable
 * identifier; `email` and `name` are optional §5.1 claims). Undefined without a `sub`.
 */
export function accountFromIdToken(claims: JWTPayload): ExternalAccount | undefined {
  return accountFromObject(claims, OIDC_ACCOUNT_FIELDS);
}

/**
 * Reads an account from a JSON object by field names, which may be dotted paths
 * (`data.user.id`). A number ID (GitHub's `id`) is kept as its decimal text. Undefined without an
 * ID; other fields are left out when absent or not text. A field holding control or bidi
 * characters (UNSAFE_TEXT) counts as absent: stripping them would change the value (two IDs could
 * become one, an email another address), and these are shown to operators and compared on reconnect.
 */
export function accountFromObject(source: Record<string, unknown>, fields: AccountFields): ExternalAccount | undefined {
  const read = (path: string): unknown =>
    path.split(".").reduce<unknown>((value, key) => (typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined), source);
  const raw = read(fields.id);
  const id = typeof raw === "number" && Number.isSafeInteger(raw) ? String(raw) : typeof raw === "string" ? raw : undefined;
  if (id === undefined || id === "" || id.length > 512 || UNSAFE_TEXT.test(id)) return undefined;
  const account: ExternalAccount = { id };
  for (const key of ["email", "name"] as const) {
    const path = fields[key];
    const value = path === undefined ? undefined : read(path);
    if (typeof value === "string" && value !== "" && value.length <= 512 && !UNSAFE_TEXT.test(value)) account[key] = value;
  }
  return account;
}

/**
 * Asks the provider's userinfo endpoint (OpenID Connect Core §5.3, or a provider's own "current
 * user" endpoint) who the access token belongs to. Throws ProviderCallError when the call fails
 * (`http_error` for a status other than 200) or the answer is not a JSON object (`invalid_response`).
 */
export async function fetchUserinfoAccount(
  url: string,
  accessToken: string,
  fields: AccountFields,
  fetchImpl: typeof fetch,
): Promise<ExternalAccount | undefined> {
  // RFC 6750 §2.1: the access token as a bearer token in the Authorization header.
  const response = await fetchImpl(url, { headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" } });
  const text = await response.text();
  if (response.status !== 200) throw new ProviderCallError("http_error", `userinfo answered HTTP ${response.status}`, { status: response.status });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new ProviderCallError("invalid_response", "userinfo answered with something other than JSON", { cause: error, status: 200 });
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ProviderCallError("invalid_response", "userinfo answered with something other than a JSON object", { status: 200 });
  return accountFromObject(body as Record<string, unknown>, fields);
}

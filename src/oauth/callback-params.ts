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

/**
 * Non-secret values a provider adds to its redirect (QuickBooks' `realmId`), by the names the
 * provider profile gives: metadata key -> query parameter. Call it only on a query that
 * parseCallbackQuery accepted (no repeats, bounded lengths). Values with control characters are
 * left out.
 */
export function callbackMetadata(search: string, names: Readonly<Record<string, string>>): Record<string, string> {
  const params = new URLSearchParams(search);
  const metadata: Record<string, string> = {};
  for (const [key, name] of Object.entries(names)) {
    const value = params.get(name);
    if (value !== null && value !== "" && value.length <= 256 && !/[\u0000-\u001f\u007f]/.test(value)) metadata[key] = value;
  }
  return metadata;
}

import * as oauth from "oauth4webapi";
import { type ClientCredentials, clientAuthentication, withSecretFallback } from "./client-authentication.js";
import { ProviderCallError } from "../network/provider-call-error.js";
import { parseTokenResponse, STANDARD_TOKEN_RESPONSE, type TokenResponseRules, type TokenSet } from "./token-response.js";

export type { TokenEndpointAuthMethodName } from "./client-authentication.js";

/** The client side of a token request: who the broker is at this provider, and how it proves it. */
export interface TokenClient extends ClientCredentials {
  tokenUrl: string;
  /** The credential's issuer, when it has one. */
  issuer: string | undefined;
  /** The token request body's format: form (RFC 6749 §4.1.3) unless the provider wants JSON (Notion). */
  bodyFormat?: "form" | "json";
  /** Where the provider puts the parts of its response (the provider profile's). */
  response?: TokenResponseRules;
  /** Parameters the provider documents for every exchange or refresh request (Pinterest's `continuous_refresh`). */
  extraParams?: { exchange?: Readonly<Record<string, string>>; refresh?: Readonly<Record<string, string>> };
}

/**
 * RFC 6749 §4.1.3: exchanges an authorization code for tokens. oauth4webapi builds the request,
 * with the broker's client authentication (clientAuthentication); the response is read by parseTokenResponse, which accepts real-world variations
 * that oauth4webapi rightly refuses. Throws ProviderCallError.
 */
export async function exchangeAuthorizationCode(
  client: TokenClient,
  grant: { code: string; redirectUri: string; codeVerifier: string | undefined },
  fetchImpl: typeof fetch,
): Promise<TokenSet> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  // The callback's checks (state, iss, error) were done by the broker; oauth4webapi only needs
  // the code, in the branded form its grant request takes.
  const params = oauth.validateAuthResponse(as, oauthClient, new URLSearchParams({ code: grant.code }), oauth.skipStateCheck);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    oauthClient,
    auth,
    params,
    grant.redirectUri,
    grant.codeVerifier ?? oauth.nopkce,
    { ...options, additionalParameters: client.extraParams?.exchange },
  );
  return parseTokenResponse(response.status, response.headers.get("content-type"), await response.text(), client.response);
}

/**
 * RFC 6749 §6: a new access token for a refresh token, with the same client authentication.
 * Throws ProviderCallError (coded `oauth_error`, with `oauthError` "invalid_grant", when the grant
 * is gone).
 */
export async function refreshAccessToken(client: TokenClient, refreshToken: string, fetchImpl: typeof fetch): Promise<TokenSet> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  const response = await oauth.refreshTokenGrantRequest(as, oauthClient, auth, refreshToken, {
    ...options,
    additionalParameters: client.extraParams?.refresh,
  });
  return parseTokenResponse(response.status, response.headers.get("content-type"), await response.text(), client.response ?? STANDARD_TOKEN_RESPONSE);
}

/** How a provider takes a revocation request (the provider profile's RevocationRules). */
export interface RevocationRequest {
  method: "POST" | "DELETE" | "GET";
  tokenIn: "form" | "json" | "query" | "bearer" | "none";
  tokenParam: string;
  tokenTypeHint: boolean;
  clientAuth: "basic" | "form" | "json" | "none";
  headers: Readonly<Record<string, string>>;
  successStatus: readonly number[];
}

/** RFC 7009 §2.1: a form POST of `token` (and its hint) with the token endpoint's client authentication. */
export const RFC7009_REVOCATION: RevocationRequest = {
  method: "POST",
  tokenIn: "form",
  tokenParam: "token",
  tokenTypeHint: true,
  clientAuth: "basic",
  headers: {},
  successStatus: [200],
};

/**
 * Revokes a grant as the provider documents it: RFC 7009 §2 by default, or the entry's variant (a
 * JSON body with Basic auth as Notion, `DELETE /applications/{client_id}/grant` as GitHub, the
 * token in the query, or the token as the bearer credential as Slack's auth.revoke). Resolves
 * when the provider answered one of its success statuses (and, for providers that answer errors
 * with HTTP 200, its ok field); otherwise throws ProviderCallError (`revocation_failed`) with a short reason that holds
 * no token.
 */
export async function revokeToken(
  client: TokenClient,
  revocationUrl: string,
  token: { value: string; hint: "refresh_token" | "access_token" },
  fetchImpl: typeof fetch,
  request: RevocationRequest = RFC7009_REVOCATION,
): Promise<void> {
  const url = new URL(revocationUrl);
  const headers = new Headers(request.headers);
  if (!headers.has("accept")) headers.set("accept", "application/json");
  const fields: Record<string, string> = {};
  const tokenFields: Record<string, string> = { [request.tokenParam]: token.value };
  if (request.tokenTypeHint) tokenFields.token_type_hint = token.hint;
  switch (request.tokenIn) {
    case "form":
    case "json":
      Object.assign(fields, tokenFields);
      break;
    case "query":
      for (const [key, value] of Object.entries(tokenFields)) url.searchParams.set(key, value);
      break;
    case "bearer":
      headers.set("authorization", `Bearer ${token.value}`);
      break;
    case "none":
      break;
  }
  // The client authenticates as the entry says (Basic, or in the body), through the same step as
  // every token request: a private_key_jwt credential signs an assertion instead, and a secret
  // mid-rotation is retried once with the previous one on `invalid_client`.
  const auth = revocationClient(client, request.clientAuth);
  const params = new URLSearchParams(fields);
  if (auth !== undefined) {
    const as = { issuer: client.issuer ?? new URL(client.tokenUrl).origin, token_endpoint: client.tokenUrl };
    await clientAuthentication(auth, client.tokenUrl)(as, { client_id: client.clientId }, params, headers);
  }
  let body: string | URLSearchParams | undefined;
  if ([...params.keys()].length > 0) {
    const json = request.tokenIn === "json" || request.clientAuth === "json";
    headers.set("content-type", json ? "application/json" : "application/x-www-form-urlencoded;charset=UTF-8");
    body = json ? JSON.stringify(Object.fromEntries(params)) : params;
  }
  // The fallback re-authenticates a form body; a token sent as the bearer credential is left alone.
  const send = auth !== undefined && request.tokenIn !== "bearer" ? withSecretFallback(auth, client.tokenUrl, fetchImpl) : fetchImpl;
  const response = await send(url.href, { method: request.method, headers, body, redirect: "manual" });
  const text = await response.text();
  let answer: { error?: unknown; ok?: unknown } | undefined;
  try {
    answer = JSON.parse(text) as { error?: unknown; ok?: unknown };
  } catch {
    // Not JSON: the status says enough.
  }
  const okField = client.response?.okField;
  const refused = okField !== undefined && answer !== undefined && typeof answer === "object" && answer !== null && (answer as Record<string, unknown>)[okField] !== true;
  if (request.successStatus.includes(response.status) && !refused) return;
  const error = typeof answer === "object" && answer !== null ? answer.error : undefined;
  const oauthError = typeof error === "string" && /^[\x20-\x7e]{1,64}$/.test(error) ? error : undefined;
  throw new ProviderCallError("revocation_failed", oauthError ?? `HTTP ${response.status}`, { oauthError, status: response.status });
}

export function requestParts(client: TokenClient, fetchImpl: typeof fetch) {
  const tokenUrl = new URL(client.tokenUrl);
  return {
    // oauth4webapi wants an issuer; it would be a client assertion's audience, which
    // clientAuthentication sets to the token endpoint, so a credential without one gets its origin.
    as: { issuer: client.issuer ?? tokenUrl.origin, token_endpoint: tokenUrl.href } satisfies oauth.AuthorizationServer,
    oauthClient: { client_id: client.clientId } satisfies oauth.Client,
    auth: clientAuthentication(client, tokenUrl.href),
    options: {
      [oauth.customFetch]: withSecretFallback(client, tokenUrl.href, client.bodyFormat === "json" ? jsonBody(fetchImpl) : fetchImpl),
      // token_url was validated as https, or http on a loopback host.
      [oauth.allowInsecureRequests]: tokenUrl.protocol === "http:",
    },
  };
}

/**
 * For providers that take the token request as JSON (Notion): the same parameters oauth4webapi
 * built, client authentication included, sent as a JSON object instead of a form.
 */
function jsonBody(fetchImpl: typeof fetch): typeof fetch {
  return (input, init) => {
    if (!(init?.body instanceof URLSearchParams)) return fetchImpl(input, init);
    const headers = new Headers(init.headers);
    headers.set("content-type", "application/json");
    return fetchImpl(input, { ...init, headers, body: JSON.stringify(Object.fromEntries(init.body)) });
  };
}

/** The client authentication a revocation request uses: the entry's choice of Basic or body, or the credential's signed assertion. */
function revocationClient(client: TokenClient, clientAuth: RevocationRequest["clientAuth"]): TokenClient | undefined {
  if (clientAuth === "none") return undefined;
  if (client.authMethod === "private_key_jwt") return client;
  return { ...client, authMethod: clientAuth === "basic" ? "client_secret_basic" : "client_secret_post" };
}

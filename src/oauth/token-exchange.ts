import * as oauth from "oauth4webapi";
import { parseTokenResponse, STANDARD_TOKEN_RESPONSE, type TokenResponseRules, type TokenSet } from "./token-response.js";

/** How the client authenticates at the token endpoint (RFC 6749 §2.3.1, OpenID Connect Core §9). */
export type TokenEndpointAuthMethodName = "client_secret_basic" | "client_secret_post";

/** The client side of a token request: who the broker is at this provider. */
export interface TokenClient {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  authMethod: TokenEndpointAuthMethodName;
  /** The credential's issuer, when it has one. */
  issuer: string | undefined;
  /** The token request body's format: form (RFC 6749 §4.1.3) unless the provider wants JSON (Notion). */
  bodyFormat?: "form" | "json";
  /** Where the provider puts the parts of its response (the provider profile's). */
  response?: TokenResponseRules;
}

/**
 * RFC 6749 §4.1.3: exchanges an authorization code for tokens. oauth4webapi builds the request
 * (including the form-encoding of the client ID and secret that RFC 6749 §2.3.1 requires for
 * HTTP Basic); the response is read by parseTokenResponse, which accepts real-world variations
 * that oauth4webapi rightly refuses. Throws TokenResponseError or OutboundError.
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
    options,
  );
  return parseTokenResponse(response.status, response.headers.get("content-type"), await response.text(), client.response);
}

/**
 * RFC 6749 §6: a new access token for a refresh token, with the same client authentication.
 * Throws TokenResponseError (with `oauthError` "invalid_grant" when the grant is gone) or
 * OutboundError.
 */
export async function refreshAccessToken(client: TokenClient, refreshToken: string, fetchImpl: typeof fetch): Promise<TokenSet> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  const response = await oauth.refreshTokenGrantRequest(as, oauthClient, auth, refreshToken, options);
  return parseTokenResponse(response.status, response.headers.get("content-type"), await response.text(), client.response ?? STANDARD_TOKEN_RESPONSE);
}

/** What a client credentials request asks for: scopes (joined by the provider's separator), RFC 8707 resources, an audience. */
export interface ClientCredentialsRequest {
  scope: string | undefined;
  resource: readonly string[];
  audience: string | undefined;
}

/**
 * RFC 6749 §4.4.2: a token for the client itself, with the same client authentication as every
 * token request; `resource` repeated as RFC 8707 §2 allows. Throws TokenResponseError (with the
 * provider's `oauthError`, such as `invalid_client` or `invalid_scope`) or OutboundError.
 */
export async function requestClientCredentials(client: TokenClient, request: ClientCredentialsRequest, fetchImpl: typeof fetch): Promise<TokenSet> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  const parameters = new URLSearchParams();
  if (request.scope !== undefined) parameters.set("scope", request.scope);
  for (const resource of request.resource) parameters.append("resource", resource);
  if (request.audience !== undefined) parameters.set("audience", request.audience);
  const response = await oauth.clientCredentialsGrantRequest(as, oauthClient, auth, parameters, options);
  return parseTokenResponse(response.status, response.headers.get("content-type"), await response.text(), client.response ?? STANDARD_TOKEN_RESPONSE);
}

/**
 * RFC 7009 §2: revokes a token. Resolves when the provider answered 200; otherwise throws
 * RevocationError with a short reason that holds no token.
 */
export async function revokeToken(
  client: TokenClient,
  revocationUrl: string,
  token: { value: string; hint: "refresh_token" | "access_token" },
  fetchImpl: typeof fetch,
): Promise<void> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  const url = new URL(revocationUrl);
  const response = await oauth.revocationRequest({ ...as, revocation_endpoint: url.href }, oauthClient, auth, token.value, {
    ...options,
    [oauth.allowInsecureRequests]: url.protocol === "http:",
    additionalParameters: { token_type_hint: token.hint },
  });
  if (response.status === 200) return;
  const body = await response.text();
  let reason = `HTTP ${response.status}`;
  try {
    const error = (JSON.parse(body) as { error?: unknown }).error;
    if (typeof error === "string" && /^[\x20-\x7e]{1,64}$/.test(error)) reason = error;
  } catch {
    // Not JSON: the status says enough.
  }
  throw new RevocationError(reason);
}

export class RevocationError extends Error {
  override readonly name = "RevocationError";
}

function requestParts(client: TokenClient, fetchImpl: typeof fetch) {
  const tokenUrl = new URL(client.tokenUrl);
  return {
    // oauth4webapi wants an issuer; it is used only for JWT client assertions, which the broker
    // does not make, so a credential without one gets the token endpoint's origin.
    as: { issuer: client.issuer ?? tokenUrl.origin, token_endpoint: tokenUrl.href } satisfies oauth.AuthorizationServer,
    oauthClient: { client_id: client.clientId } satisfies oauth.Client,
    auth: client.authMethod === "client_secret_post" ? oauth.ClientSecretPost(client.clientSecret) : oauth.ClientSecretBasic(client.clientSecret),
    options: {
      [oauth.customFetch]: client.bodyFormat === "json" ? jsonBody(fetchImpl) : fetchImpl,
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

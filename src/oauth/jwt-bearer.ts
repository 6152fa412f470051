import { randomUUID } from "node:crypto";
import * as oauth from "oauth4webapi";
import { type SigningKey, signJwtWithCredentialKey } from "./client-authentication.js";
import { parseTokenResponse, STANDARD_TOKEN_RESPONSE, type TokenResponseRules, type TokenSet } from "./token-response.js";

/** RFC 7523 §2.1: the grant type of a token request that presents a JWT as the grant. */
export const JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/**
 * How a provider wants the assertion (RFC 7523 §3), from the catalog's `grants.jwt_bearer`:
 * - `issuer`: `iss` is the credential's `client_id` (Salesforce's consumer key) or the signing
 *   key's service account (Google's `client_email`);
 * - `audience`: `aud` is the token endpoint's URL (Google) or its origin (Salesforce's login host);
 * - `scope`: a `scope` claim (Google), the RFC 7521 §4.1 `scope` parameter, or none (the app's);
 * - `max_lifetime`: the longest `exp - iat` the provider accepts, in seconds;
 * - `subject`: whether `sub` is required (Salesforce's username) or optional (Google's delegation).
 */
export interface JwtBearerRules {
  issuer: "client_id" | "service_account_email";
  audience: "token_endpoint" | "token_endpoint_origin";
  scope: "claim" | "parameter" | "none";
  max_lifetime: number;
  subject: "optional" | "required";
}

/** What one assertion is made of: who signs, for whom, and what it asks for. */
export interface JwtBearerAssertion {
  rules: JwtBearerRules;
  key: SigningKey;
  clientId: string;
  /** The signing key's service account (Google's `client_email`), when it has one. */
  serviceAccountEmail: string | undefined;
  tokenUrl: string;
  subject: string | undefined;
  /** Already joined with the provider's separator; undefined: none. */
  scope: string | undefined;
  /** An explicit `aud`, when the connection names one. */
  audience: string | undefined;
}

/** Why an assertion cannot be made from what the credential holds; nothing was sent. */
export class JwtBearerAssertionError extends Error {
  override readonly name = "JwtBearerAssertionError";
}

/** The assertion's claims, as the provider's rules say (RFC 7523 §3; `now` in seconds). */
export function jwtBearerClaims(input: Omit<JwtBearerAssertion, "key">, now: number): Record<string, string | number> {
  const { rules } = input;
  const iss = rules.issuer === "service_account_email" ? input.serviceAccountEmail : input.clientId;
  if (iss === undefined || iss === "") throw new JwtBearerAssertionError("the credential's newest key is not a service account key (no client_email)");
  const aud = input.audience ?? (rules.audience === "token_endpoint_origin" ? new URL(input.tokenUrl).origin : input.tokenUrl);
  // RFC 7523 §3: exp bounds the assertion's life; iat and jti let the provider refuse replays.
  const claims: Record<string, string | number> = { iss, aud, iat: now, exp: now + rules.max_lifetime, jti: randomUUID() };
  if (input.subject !== undefined) claims.sub = input.subject;
  if (rules.scope === "claim" && input.scope !== undefined) claims.scope = input.scope;
  return claims;
}

/**
 * RFC 7523 §2.1: a token for a signed assertion. The assertion is the client's proof, so no client
 * authentication is sent (§3.1 leaves it optional; Google and Salesforce document none). Throws
 * ProviderCallError (with the provider's `oauthError`, such as `invalid_grant`), or
 * JwtBearerAssertionError before sending anything.
 */
export async function requestJwtBearer(input: JwtBearerAssertion, response: TokenResponseRules | undefined, fetchImpl: typeof fetch): Promise<TokenSet> {
  const assertion = await signJwtWithCredentialKey(input.key, jwtBearerClaims(input, Math.floor(Date.now() / 1000)));
  const tokenUrl = new URL(input.tokenUrl);
  const parameters = new URLSearchParams({ assertion });
  if (input.rules.scope === "parameter" && input.scope !== undefined) parameters.set("scope", input.scope);
  const noClientAuthentication: oauth.ClientAuth = () => {};
  const answer = await oauth.genericTokenEndpointRequest(
    { issuer: tokenUrl.origin, token_endpoint: tokenUrl.href },
    { client_id: input.clientId },
    noClientAuthentication,
    JWT_BEARER_GRANT_TYPE,
    parameters,
    // token_url was validated as https, or http on a loopback host.
    { [oauth.customFetch]: fetchImpl, [oauth.allowInsecureRequests]: tokenUrl.protocol === "http:" },
  );
  return parseTokenResponse(answer.status, answer.headers.get("content-type"), await answer.text(), response ?? STANDARD_TOKEN_RESPONSE);
}

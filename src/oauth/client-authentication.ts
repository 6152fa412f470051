import type { JsonWebKey as NodeJwk } from "node:crypto";
import * as jose from "jose";
import * as oauth from "oauth4webapi";
import type { SigningAlgorithm } from "../crypto/signing-keys.js";

/** How the client authenticates at the token endpoint (RFC 6749 §2.3.1, OpenID Connect Core §9). */
export type TokenEndpointAuthMethodName = "client_secret_basic" | "client_secret_post" | "private_key_jwt";

/** Which of a credential's client secrets was used. */
export type ClientSecretSlot = "current" | "previous";

/** A credential's private signing key, decrypted for one request. */
export interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  privateJwk: NodeJwk;
}

/** The client-authentication part of a token client (see `TokenClient` in token-exchange.ts). */
export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
  authMethod: TokenEndpointAuthMethodName;
  /** client_secret_basic: "form" (default) or "raw", as the provider's docs build the header. */
  basicEncoding?: "form" | "raw";
  /** The provider's names for client_id and client_secret in the body (TikTok's `client_key`). */
  clientIdParam?: string;
  clientSecretParam?: string;
  /** While a rotation is under way: retried once when the provider answers `invalid_client`. */
  previousClientSecret?: string;
  /** Told which secret the provider accepted, during a rotation only. */
  recordSecretUse?: (slot: ClientSecretSlot) => Promise<void>;
  /** For `private_key_jwt`: the credential's newest key, and the assertion's `aud` (the token endpoint when unset). */
  signingKey?: SigningKey;
  assertionAudience?: string;
}

/**
 * Signs a JWT with a credential's key (`alg` and `kid` from the key): the client assertion here,
 * and the JWT bearer grant's assertion (RFC 7523 §2.1), whose claims its caller decides.
 */
export async function signJwtWithCredentialKey(key: SigningKey, payload: jose.JWTPayload): Promise<string> {
  return new jose.SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT" }).sign(await importSigningKey(key));
}

async function importSigningKey(key: SigningKey): Promise<jose.CryptoKey> {
  return (await jose.importJWK(key.privateJwk as jose.JWK, key.alg)) as jose.CryptoKey;
}

/**
 * The client-authentication step of every token request (code exchange, refresh, revocation):
 * the client secret in the body or in HTTP Basic, or oauth4webapi's PrivateKeyJwt. Basic is
 * built here: oauth4webapi's ClientSecretBasic form-encodes every character but letters and
 * digits, `-_.~` included, which a provider that compares the header raw (Notion, whose client
 * IDs are UUIDs) refuses.
 */
export function clientAuthentication(client: ClientCredentials, tokenUrl: string, secret = client.clientSecret): oauth.ClientAuth {
  if (client.authMethod === "client_secret_post") {
    return (_as, _client, body) => {
      body.set(client.clientIdParam ?? "client_id", client.clientId);
      body.set(client.clientSecretParam ?? "client_secret", secret);
    };
  }
  if (client.authMethod === "client_secret_basic") {
    return (_as, _client, _body, headers) => {
      headers.set("authorization", basicAuthorization(client.clientId, secret, client.basicEncoding ?? "form"));
    };
  }
  const key = client.signingKey;
  return async (as, oauthClient, body, headers) => {
    if (key === undefined) throw new ClientAuthenticationError("the credential has no signing key for private_key_jwt");
    // RFC 7523 §3 and OpenID Connect Core §9: iss = sub = client_id, a unique jti, a short exp
    // (oauth4webapi: 60 s); aud the token endpoint's URL, or the issuer where the provider's
    // profile says so.
    const auth = oauth.PrivateKeyJwt(
      { key: await importSigningKey(key), kid: key.kid },
      {
        [oauth.modifyAssertion]: (_header, payload) => {
          payload.aud = client.assertionAudience ?? tokenUrl;
        },
      },
    );
    await auth(as, oauthClient, body, headers);
  };
}

/** A token request that could not be authenticated (no key): nothing was sent. */
export class ClientAuthenticationError extends Error {
  override readonly name = "ClientAuthenticationError";
}

/**
 * Client-secret rotation without downtime: when a previous secret is kept and the provider answers
 * `invalid_client` (RFC 6749 §5.2, RFC 7009 §2.2.1) to the newest, the same request is sent once
 * more with the previous secret. Which one was accepted is recorded.
 */
export function withSecretFallback(client: ClientCredentials, tokenUrl: string, fetchImpl: typeof fetch): typeof fetch {
  const previous = client.previousClientSecret;
  if (previous === undefined || client.authMethod === "private_key_jwt") return fetchImpl;
  return async (input, init) => {
    const response = await fetchImpl(input, init);
    if (!(await isInvalidClient(response)) || !(init?.body instanceof URLSearchParams)) {
      if (response.status < 400) await client.recordSecretUse?.("current");
      return response;
    }
    const body = new URLSearchParams(init.body);
    const headers = new Headers(init.headers);
    body.delete(client.clientSecretParam ?? "client_secret");
    headers.delete("authorization");
    const as = { issuer: new URL(tokenUrl).origin, token_endpoint: tokenUrl };
    await clientAuthentication(client, tokenUrl, previous)(as, { client_id: client.clientId }, body, headers);
    const retried = await fetchImpl(input, { ...init, body, headers });
    if (retried.status < 400) await client.recordSecretUse?.("previous");
    return retried;
  };
}

async function isInvalidClient(response: Response): Promise<boolean> {
  if (response.status !== 400 && response.status !== 401) return false;
  try {
    const body = (await response.clone().json()) as { error?: unknown };
    return body.error === "invalid_client";
  } catch {
    return false;
  }
}

/**
 * The HTTP Basic `Authorization` value for a client. RFC 6749 §2.3.1 form-encodes the ID and
 * secret first; "form" encodes only what RFC 3986 §2.3 does not leave unreserved, so a provider
 * that decodes reads the same value and one that does not still reads ordinary IDs (`-_.~`).
 * "raw": `<id>:<secret>` as is, for providers whose docs build it so.
 */
export function basicAuthorization(clientId: string, clientSecret: string, encoding: "form" | "raw"): string {
  const pair = encoding === "raw" ? `${clientId}:${clientSecret}` : `${formEncode(clientId)}:${formEncode(clientSecret)}`;
  return `Basic ${Buffer.from(pair, "utf8").toString("base64")}`;
}

/** application/x-www-form-urlencoded, leaving RFC 3986 unreserved characters as they are. */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]|%20/g, (c) => (c === "%20" ? "+" : `%${c.charCodeAt(0).toString(16).toUpperCase()}`));
}

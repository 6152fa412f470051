import * as jose from "jose";
import * as oauth from "oauth4webapi";
import { ProviderCallError } from "../network/provider-call-error.js";

/** An ID token the broker cannot accept (OpenID Connect Core §3.1.3.7). */
export function idTokenInvalid(message: string, cause?: unknown): ProviderCallError {
  return new ProviderCallError("id_token_invalid", message, cause === undefined ? {} : { cause });
}

/**
 * Verifies ID tokens (OpenID Connect Core §3.1.3.7) with jose: the signature against the
 * issuer's JWKS, then `iss`, `aud` (and `azp` when there are several audiences), `exp` and the
 * `nonce` of the attempt. The JWKS URI comes from the issuer's discovery document, which
 * oauth4webapi fetches and checks (its `issuer` must equal the credential's); both are cached per
 * issuer, and jose refetches the key set when a token names a key it has not seen (rotation).
 */
export class IdTokenVerifier {
  readonly #keySets = new Map<string, Promise<jose.JWTVerifyGetKey>>();

  constructor(private readonly fetchImpl: typeof fetch) {}

  async verify(idToken: string, expected: { issuer: string; clientId: string; nonce: string | undefined }): Promise<jose.JWTPayload> {
    const keys = await this.#keySet(expected.issuer);
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(idToken, keys, {
        issuer: expected.issuer,
        audience: expected.clientId,
        requiredClaims: ["sub", "iat", "exp"],
        clockTolerance: 30,
      }));
    } catch (error) {
      throw idTokenInvalid(`ID token rejected (${error instanceof jose.errors.JOSEError ? error.code : "invalid"})`, error);
    }
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== expected.clientId) {
      throw idTokenInvalid("ID token rejected (azp)");
    }
    if (payload.nonce !== expected.nonce) throw idTokenInvalid("ID token rejected (nonce)");
    return payload;
  }

  #keySet(issuer: string): Promise<jose.JWTVerifyGetKey> {
    let keys = this.#keySets.get(issuer);
    if (keys === undefined) {
      keys = this.#discover(issuer);
      this.#keySets.set(issuer, keys);
      // A failed discovery is not cached: the next callback tries again.
      keys.catch(() => this.#keySets.delete(issuer));
    }
    return keys;
  }

  async #discover(issuer: string): Promise<jose.JWTVerifyGetKey> {
    const url = new URL(issuer);
    const options = { [oauth.customFetch]: this.fetchImpl, [oauth.allowInsecureRequests]: url.protocol === "http:" };
    let metadata: oauth.AuthorizationServer;
    try {
      metadata = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, options));
    } catch (error) {
      throw new ProviderCallError("discovery_failed", "issuer discovery failed", { cause: error });
    }
    if (metadata.jwks_uri === undefined) throw new ProviderCallError("discovery_failed", "issuer has no jwks_uri");
    return jose.createRemoteJWKSet(new URL(metadata.jwks_uri), { [jose.customFetch]: this.fetchImpl });
  }
}

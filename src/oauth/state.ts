import { hash } from "node:crypto";
import * as oauth from "oauth4webapi";

/**
 * The per-attempt secrets of an authorization request. oauth4webapi draws each from a CSPRNG:
 * 32 bytes, base64url (RFC 9700 §2.1.1 wants state and PKCE values unguessable; 256 bits is
 * RFC 7636 §7.1's recommendation for the verifier).
 */
export interface AttemptSecrets {
  state: string;
  stateHash: string;
  codeVerifier: string | undefined;
  codeChallenge: string | undefined;
  nonce: string | undefined;
}

export function generateAttemptSecrets(options: { pkce: boolean; nonce: boolean }): AttemptSecrets {
  const state = oauth.generateRandomState();
  const codeVerifier = options.pkce ? oauth.generateRandomCodeVerifier() : undefined;
  return {
    state,
    stateHash: hashState(state),
    codeVerifier,
    codeChallenge: codeVerifier === undefined ? undefined : pkceS256Challenge(codeVerifier),
    nonce: options.nonce ? oauth.generateRandomNonce() : undefined,
  };
}

/** Only this hash is stored, so a database dump cannot complete anyone's flow. */
export function hashState(state: string): string {
  return hash("sha256", state, "base64url");
}

/**
 * RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))). The same value as oauth4webapi's
 * calculatePKCECodeChallenge (a test holds them equal), without a WebCrypto job per call: this runs
 * on every InitialiseOAuth2Connection.
 */
export function pkceS256Challenge(codeVerifier: string): string {
  // hash() reads a string as UTF-8: the same bytes as ASCII for the verifier's unreserved characters (§4.1).
  return hash("sha256", codeVerifier, "base64url");
}

import { hash } from "node:crypto";
import * as oauth from "oauth4webapi";

/**
 * The per-attempt secrets of an authorization request. oauth4webapi draws each from a CSPRNG:
 * 32 bytes, base64url (RFC 9700 §2.1.1 wants state and PKCE values unguessable; 256 bits is
 * RFC 7636 §7.1's recommendation for the verifier). The state is prefixed with its creation
 * window (see stateWindowOf); its 256 random bits are unchanged.
 */
export interface AttemptSecrets {
  state: string;
  stateHash: string;
  codeVerifier: string | undefined;
  codeChallenge: string | undefined;
  nonce: string | undefined;
}

export function generateAttemptSecrets(options: { pkce: boolean; nonce: boolean }, now = new Date()): AttemptSecrets {
  // The random part is oauth4webapi's, unchanged; the window prefix only tells the store where to look.
  const state = `${stateWindowAt(now)}.${oauth.generateRandomState()}`;
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

/**
 * Width of a state's creation window (issue 13). A state names its window, `<window>.<random>`,
 * so the store finds it in the one collection of states created in those seconds.
 */
export const STATE_WINDOW_SECONDS = 10;

/** The window a state created at `time` belongs to: whole STATE_WINDOW_SECONDS since the epoch, base 36. */
export function stateWindowAt(time: Date): string {
  return Math.floor(time.getTime() / 1000 / STATE_WINDOW_SECONDS).toString(36);
}

/**
 * The window a state names: a string for `<window>.<random>`, undefined for a state of the
 * previous format (no prefix; legacy), null for a prefix that is not a canonical base-36 number
 * (forged: refused before any database call).
 */
export function stateWindowOf(state: string): string | undefined | null {
  const dot = state.indexOf(".");
  if (dot < 0) return undefined;
  const window = state.slice(0, dot);
  return /^[1-9a-z][0-9a-z]{0,9}$/.test(window) ? window : null;
}

/**
 * Why a call to a provider (token, refresh, revocation, discovery, JWKS, userinfo; webhooks use
 * the same bounded fetch) did not give a usable answer. Callers decide by `code`, as with
 * oauth4webapi's OperationProcessingError:
 * - `unreachable`: no answer: the destination was refused by the outbound policy, the connection
 *   failed, or nothing came back in time;
 * - `redirected`: the server answered with a redirect, which the broker never follows;
 * - `response_too_large`: the answer was larger than the broker reads;
 * - `http_error`: an HTTP status the call does not accept, with no OAuth error;
 * - `invalid_response`: a body that is not the answer the protocol describes;
 * - `oauth_error`: the provider's OAuth error (RFC 6749 §5.2, RFC 7009 §2.2.1), in `oauthError`;
 * - `id_token_invalid`: an ID token missing or failing verification (OpenID Connect Core §3.1.3.7);
 * - `discovery_failed`: no usable metadata from the issuer (RFC 8414, OpenID Connect Discovery);
 * - `revocation_failed`: a revocation the provider did not confirm (RFC 7009 §2.2).
 * The message is short and never holds a token or a secret.
 */
export type ProviderCallErrorCode =
  | "unreachable"
  | "redirected"
  | "response_too_large"
  | "http_error"
  | "invalid_response"
  | "oauth_error"
  | "id_token_invalid"
  | "discovery_failed"
  | "revocation_failed";

export interface ProviderCallErrorOptions {
  /** The underlying error, when there is one: for logs, never shown to callers. */
  cause?: unknown;
  /** The provider's OAuth `error` code when it sent one (RFC 6749 §5.2). */
  oauthError?: string;
  /** The HTTP status of the answer, when there was one. */
  status?: number;
}

export class ProviderCallError extends Error {
  override readonly name = "ProviderCallError";
  readonly oauthError: string | undefined;
  readonly status: number | undefined;

  constructor(
    readonly code: ProviderCallErrorCode,
    message: string,
    options: ProviderCallErrorOptions = {},
  ) {
    super(message, "cause" in options ? { cause: options.cause } : undefined);
    this.oauthError = options.oauthError;
    this.status = options.status;
  }
}

/**
 * Codes for calls the provider did not answer usably at the HTTP level: the provider may have
 * acted on the request (rotated a refresh token) without the broker learning of it.
 */
const UNANSWERED: ReadonlySet<ProviderCallErrorCode> = new Set(["unreachable", "redirected", "response_too_large"]);

/** A ProviderCallError for a call that got no usable answer (see UNANSWERED). */
export function isUnanswered(error: unknown): error is ProviderCallError {
  return error instanceof ProviderCallError && UNANSWERED.has(error.code);
}

/** Why a connection operation did not happen; the service layer turns it into a gRPC code. */
export type ConnectionErrorCode =
  | "not_found"
  | "busy"
  | "pending"
  | "not_waiting"
  | "wrong_confirmation"
  | "needs_reauthorization"
  | "refresh_failed"
  | "refresh_timeout"
  | "revocation_failed"
  | "account_mismatch"
  | "account_unverified"
  | "superseded"
  | "grant_refused"
  | "provider_unreachable"
  | "kind_mismatch";

/**
 * A connection operation's coded failure. The message is shown to the caller as it is, so it
 * never holds a token. `retryAfterMs`, for `refresh_failed`, says when a refresh will be tried
 * again.
 */
export class ConnectionError extends Error {
  override readonly name = "ConnectionError";

  constructor(
    readonly code: ConnectionErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function connectionNotFound(): ConnectionError {
  return new ConnectionError("not_found", "connection not found");
}

export function needsReauthorization(reason: string | undefined): ConnectionError {
  return new ConnectionError(
    "needs_reauthorization",
    `the connection needs reauthorization (${reason ?? "unknown"}) so the end user must connect again`,
  );
}

export function refreshFailed(retryAfterMs: number): ConnectionError {
  return new ConnectionError("refresh_failed", "refreshing the access token failed at the provider - try again later", retryAfterMs);
}

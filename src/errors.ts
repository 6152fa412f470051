/**
 * An input that breaks a documented rule. Pure modules throw it; the edge turns it into
 * INVALID_ARGUMENT. The message is short, lowercase and quotes the field, e.g.
 * `"additional_params" must not set "state"`. It never contains the offending secret value.
 *
 * Keep messages free of `; , / ? : @ & = + $ #`: connect-es percent-encodes the gRPC status message
 * with encodeURIComponent while @grpc/grpc-js decodes it with decodeURI, so those characters would
 * reach grpc-js callers as `%3A` and the like.
 */
export class InvalidInputError extends Error {
  override readonly name = "InvalidInputError";

  constructor(
    /** The request field at fault, as its proto name (`credential.id`, `scopes[2]`). */
    readonly field: string,
    message: string,
    /** One entry per broken rule (the request rules may find several at once). */
    readonly violations: readonly FieldViolation[] = [{ field, description: message }],
  ) {
    super(message);
  }
}

/** A broken rule as `google.rpc.BadRequest` reports it: the field's proto path and the message. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** Throws an InvalidInputError whose message starts with the quoted field name. */
export function invalid(field: string, problem: string): never {
  throw new InvalidInputError(field, `"${field}" ${problem}`);
}

/**
 * Why the broker refuses a request, when the input is well-formed: a resource that does not exist
 * for this caller, a caller without the right, or a state that does not allow the request.
 */
export type DomainErrorCode =
  | "not_found"
  | "unauthenticated"
  | "admin_only"
  | "precondition_failed"
  | "busy"
  | "concurrent_change";

/**
 * A coded refusal. Services and the modules below them throw it; only the RPC edge (toEdgeError)
 * turns its code into a gRPC code. The message is shown to the caller as it is, under the same
 * rules as InvalidInputError's, and never holds a secret.
 */
export class DomainError extends Error {
  override readonly name = "DomainError";

  constructor(
    readonly code: DomainErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** `<what> not found`, for a missing resource or one of another organisation alike. */
export function notFound(what: string): DomainError {
  return new DomainError("not_found", `${what} not found`);
}

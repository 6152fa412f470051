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

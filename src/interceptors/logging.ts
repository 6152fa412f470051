import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ConnectionError, type ConnectionErrorCode } from "../connections/connection-errors.js";
import { DomainError, type DomainErrorCode, InvalidInputError } from "../errors.js";
import { callerKey } from "../auth/caller.js";
import type { Metrics } from "../observability/metrics.js";
import { Tracing, traceFields } from "../observability/tracing.js";
import { isDatabaseUnavailable } from "../store/database.js";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Gives each RPC a request ID (the caller's `x-request-id` when it is well-formed), logs one line
 * per call, and turns every error into one a client may see (toEdgeError), a streamed one's too.
 */
export function loggingInterceptor(logger: Logger, metrics: Metrics, tracing: Tracing): Interceptor {
  return (next) => async (req) => {
    const incoming = req.header.get("x-request-id");
    const requestId = incoming !== null && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    const method = `${req.service.typeName}/${req.method.name}`;
    const span = tracing.startServerSpan(method, req.header);
    const started = performance.now();
    const done = (code: string, error?: unknown): void => {
      const seconds = (performance.now() - started) / 1000;
      metrics.rpcs.inc({ method, code });
      metrics.rpcDuration.observe({ method, code }, seconds);
      Tracing.end(span, code === "ok" ? undefined : code);
      // One line per call, so no child logger: making one costs more than the line.
      const fields = {
        request_id: requestId,
        rpc: method,
        ...traceFields(span),
        grpc_code: code,
        caller: req.contextValues.get(callerKey)?.label,
        duration_ms: Math.round(seconds * 10_000) / 10,
      };
      if (code === "internal") logger.error({ ...fields, err: error }, "rpc failed");
      else logger.info(fields, "rpc");
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) {
        done("ok");
        return res;
      }
      return { ...res, message: translateDomainErrors(res.message) };
    } catch (error) {
      const edge = toEdgeError(error);
      edge.metadata.set("x-request-id", requestId);
      done(codeName(edge.code), error);
      throw edge;
    }
  };
}

/**
 * A streaming handler fails while it is read, after this interceptor returned: its domain errors
 * are translated there. Anything else passes as it is (a stream's end reason is a ConnectError).
 */
async function* translateDomainErrors<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    throw error instanceof InvalidInputError || error instanceof ConnectionError || error instanceof DomainError ? toEdgeError(error) : error;
  }
}

/**
 * The one place domain errors become gRPC codes: InvalidInputError becomes INVALID_ARGUMENT (with
 * google.rpc.BadRequest), ConnectionError and DomainError take their code's gRPC code, a
 * ConnectError passes through, anything else becomes a generic INTERNAL (or UNAVAILABLE while the
 * database is away) whose cause is only logged.
 */
export function toEdgeError(error: unknown): ConnectError {
  if (error instanceof InvalidInputError) {
    // google.rpc.BadRequest lets clients in any language find the field without parsing the text.
    return new ConnectError(error.message, Code.InvalidArgument, undefined, [
      { desc: BadRequestSchema, value: { fieldViolations: [...error.violations] } },
    ]);
  }
  if (error instanceof ConnectionError) {
    // google.rpc.RetryInfo says when a refresh that is backing off will be tried again.
    const details =
      error.retryAfterMs === undefined
        ? undefined
        : [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(Math.max(error.retryAfterMs, 1)) } }];
    return new ConnectError(error.message, CONNECTION_ERROR_CODES[error.code], undefined, details);
  }
  if (error instanceof DomainError) return new ConnectError(error.message, DOMAIN_ERROR_CODES[error.code]);
  if (error instanceof ConnectError && error.code !== Code.Internal && error.code !== Code.Unknown) return error;
  if (isDatabaseUnavailable(error)) {
    return new ConnectError("the database is unavailable - try again shortly", Code.Unavailable, undefined, undefined, error);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

const CONNECTION_ERROR_CODES: Record<ConnectionErrorCode, Code> = {
  not_found: Code.NotFound,
  busy: Code.Unavailable,
  pending: Code.FailedPrecondition,
  not_waiting: Code.FailedPrecondition,
  wrong_confirmation: Code.PermissionDenied,
  needs_reauthorization: Code.FailedPrecondition,
  refresh_failed: Code.Unavailable,
  refresh_timeout: Code.Unavailable,
  revocation_failed: Code.Unavailable,
  account_mismatch: Code.FailedPrecondition,
  account_unverified: Code.FailedPrecondition,
  superseded: Code.FailedPrecondition,
};

const DOMAIN_ERROR_CODES: Record<DomainErrorCode, Code> = {
  not_found: Code.NotFound,
  unauthenticated: Code.Unauthenticated,
  admin_only: Code.PermissionDenied,
  precondition_failed: Code.FailedPrecondition,
  busy: Code.Unavailable,
  concurrent_change: Code.Aborted,
};

/** The code of a ConnectError as metrics and logs spell it: `ok`, `invalid_argument`, … */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { InvalidInputError } from "../errors.js";
import { callerKey } from "../auth/caller.js";
import { requestLogger } from "./context.js";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Gives each RPC a request ID (the caller's `x-request-id` when it is well-formed), logs one line
 * per call, and turns every error into one a client may see: InvalidInputError becomes
 * INVALID_ARGUMENT, a ConnectError passes through, anything else becomes a generic INTERNAL whose
 * cause is only logged.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const incoming = req.header.get("x-request-id");
    const requestId = incoming !== null && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    const log = logger.child({ request_id: requestId, rpc: `${req.service.typeName}/${req.method.name}` });
    req.contextValues.set(requestLogger, log);
    const started = performance.now();
    const done = (code: string, error?: unknown): void => {
      const fields = { grpc_code: code, caller: req.contextValues.get(callerKey)?.label, duration_ms: Math.round((performance.now() - started) * 10) / 10 };
      if (code === "internal") log.error({ ...fields, err: error }, "rpc failed");
      else log.info(fields, "rpc");
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) done("ok");
      return res;
    } catch (error) {
      const edge = toEdgeError(error);
      edge.metadata.set("x-request-id", requestId);
      done(Code[edge.code].toLowerCase(), error);
      throw edge;
    }
  };
}

export function toEdgeError(error: unknown): ConnectError {
  if (error instanceof InvalidInputError) {
    // google.rpc.BadRequest lets clients in any language find the field without parsing the text.
    return new ConnectError(error.message, Code.InvalidArgument, undefined, [
      { desc: BadRequestSchema, value: { fieldViolations: [{ field: error.field, description: error.message }] } },
    ]);
  }
  if (error instanceof ConnectError && error.code !== Code.Internal && error.code !== Code.Unknown) return error;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

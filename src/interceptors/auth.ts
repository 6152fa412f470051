import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";

/**
 * Requires `Authorization: Bearer <admin token>` on every RPC except health checks, which load
 * balancers make without credentials. Both sides are hashed first so the comparison takes the
 * same time whatever the length or content of the presented token.
 */
export function authInterceptor(adminToken: string): Interceptor {
  const expected = digest(adminToken);
  return (next) => async (req) => {
    if (req.service.typeName === Health.typeName) return next(req);
    const header = req.header.get("authorization");
    const match = header === null ? null : /^Bearer ([\x21-\x7e]+)$/i.exec(header);
    if (match?.[1] === undefined) {
      throw new ConnectError('missing bearer token in the "authorization" header', Code.Unauthenticated);
    }
    if (!timingSafeEqual(digest(match[1]), expected)) throw new ConnectError("invalid token", Code.Unauthenticated);
    return next(req);
  };
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

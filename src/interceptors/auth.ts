import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { hashApiKey, looksLikeApiKey } from "../auth/api-keys.js";
import { type Caller, callerKey, callerStillValidKey } from "../auth/caller.js";
import { type JwtCallers, looksLikeJwt } from "../auth/jwt-callers.js";
import type { ApiKeyStore } from "../store/api-keys.js";

export interface AuthDeps {
  adminToken: string;
  apiKeys: ApiKeyStore;
  /** Undefined when no JWT issuer is configured. */
  jwtCallers: JwtCallers | undefined;
}

/** Health checks (load balancers) and reflection (schemas, no data) need no credentials. */
const PUBLIC_SERVICES = new Set([Health.typeName, ReflectionV1.typeName, ReflectionV1Alpha.typeName]);

/**
 * Requires `Authorization: Bearer <credential>` on every RPC except health checks and
 * reflection, and records who called. The credential is an API key
 * (`obk_…`), a JWT from the configured issuer, or the bootstrap admin token. Every failure is the
 * same UNAUTHENTICATED, whatever was wrong.
 */
export function authInterceptor(deps: AuthDeps): Interceptor {
  const adminDigest = digest(deps.adminToken);
  const identify = async (token: string): Promise<Caller | undefined> => {
    if (looksLikeApiKey(token)) {
      const key = await deps.apiKeys.findByHash(hashApiKey(token));
      if (key === null || key.revoke_time !== undefined || (key.expire_time !== undefined && key.expire_time <= new Date())) return undefined;
      return key.admin || key.organisation_id === undefined
        ? { kind: "admin", label: key.prefix }
        : { kind: "organisation", organisationId: key.organisation_id, label: key.prefix };
    }
    if (deps.jwtCallers !== undefined && looksLikeJwt(token)) {
      const verified = await deps.jwtCallers.verify(token);
      return verified && { kind: "organisation", organisationId: verified.organisationId, label: `jwt:${verified.subject}` };
    }
    // Both sides hashed first, so the comparison takes the same time whatever was presented.
    return timingSafeEqual(digest(token), adminDigest) ? { kind: "admin", label: "admin-token" } : undefined;
  };
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const header = req.header.get("authorization");
    const match = header === null ? null : /^Bearer ([\x21-\x7e]{1,4096})$/i.exec(header);
    if (match?.[1] === undefined) {
      throw new ConnectError('missing bearer token in the "authorization" header', Code.Unauthenticated);
    }
    const token = match[1];
    const caller = await identify(token);
    if (caller === undefined) throw new ConnectError("invalid token", Code.Unauthenticated);
    req.contextValues.set(callerKey, caller);
    // Streams outlive this check: they ask again while open (a key revoked, a key or JWT expired).
    if (req.stream) req.contextValues.set(callerStillValidKey, async () => (await identify(token)) !== undefined);
    return next(req);
  };
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

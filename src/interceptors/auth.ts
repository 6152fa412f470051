import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { callerKey, callerStillValidKey } from "../auth/caller.js";
import { callerIdentifier, type IdentifyDeps } from "../auth/identify-caller.js";
import type { ConsoleSessions } from "../console/sessions.js";

export interface AuthDeps extends IdentifyDeps {
  /** The operator console's sessions: a cookie plus its CSRF header stand in for a bearer token. */
  consoleSessions?: ConsoleSessions;
}

/** Health checks (load balancers) and reflection (schemas, no data) need no credentials. */
const PUBLIC_SERVICES = new Set([Health.typeName, ReflectionV1.typeName, ReflectionV1Alpha.typeName]);

/**
 * Requires `Authorization: Bearer <credential>` on every RPC except health checks and
 * reflection, and records who called. The credential is an API key
 * (`obk_…`), a JWT from the configured issuer, or the bootstrap admin token. Without one, the
 * console's session cookie is accepted together with its CSRF header. Every failure is the same
 * UNAUTHENTICATED, whatever was wrong.
 */
export function authInterceptor(deps: AuthDeps): Interceptor {
  const identify = callerIdentifier(deps);
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const header = req.header.get("authorization");
    if (header === null && deps.consoleSessions !== undefined) {
      const sessions = deps.consoleSessions;
      const caller = await sessions.authenticate(req.header);
      if (caller !== undefined) {
        req.contextValues.set(callerKey, caller);
        if (req.stream) req.contextValues.set(callerStillValidKey, async () => (await sessions.authenticate(req.header)) !== undefined);
        return next(req);
      }
    }
    const match = header === null ? null : /^Bearer ([\x21-\x7e]{1,4096})$/i.exec(header);
    if (match?.[1] === undefined) {
      throw new ConnectError('missing bearer token in the "authorization" header', Code.Unauthenticated);
    }
    const token = match[1];
    const identified = await identify(token);
    if (identified === undefined) throw new ConnectError("invalid token", Code.Unauthenticated);
    req.contextValues.set(callerKey, identified.caller);
    // Streams outlive this check: they ask again while open (a key revoked, a key or JWT expired).
    if (req.stream) req.contextValues.set(callerStillValidKey, async () => (await identify(token)) !== undefined);
    return next(req);
  };
}

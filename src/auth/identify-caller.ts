import { hash, timingSafeEqual } from "node:crypto";
import { hashApiKey, looksLikeApiKey } from "./api-keys.js";
import type { Caller } from "./caller.js";
import { type JwtCallers, looksLikeJwt } from "./jwt-callers.js";
import type { ApiKeyDocument, ApiKeyStore } from "../store/api-keys.js";

export interface IdentifyDeps {
  adminToken: string;
  apiKeys: ApiKeyStore;
  /** Undefined when no JWT issuer is configured. */
  jwtCallers: JwtCallers | undefined;
}

export interface Identified {
  caller: Caller;
  /** The hash of the API key presented, when it was one. */
  apiKeyHash?: string;
}

/**
 * Who a bearer credential belongs to: an API key (`obk_…`), a JWT from the configured issuer
 * (unless `jwt` is false), or the bootstrap admin token. Undefined for anything else, whatever
 * was wrong, so callers answer every failure the same way.
 */
export function callerIdentifier(deps: IdentifyDeps): (token: string, options?: { jwt?: boolean }) => Promise<Identified | undefined> {
  const adminDigest = digest(deps.adminToken);
  return async (token, options) => {
    if (looksLikeApiKey(token)) {
      const apiKeyHash = hashApiKey(token);
      const caller = callerOfApiKey(await deps.apiKeys.findByHash(apiKeyHash));
      return caller && { caller, apiKeyHash };
    }
    if ((options?.jwt ?? true) && deps.jwtCallers !== undefined && looksLikeJwt(token)) {
      const verified = await deps.jwtCallers.verify(token);
      return verified && { caller: { kind: "organisation", organisationId: verified.organisationId, label: `jwt:${verified.subject}` } };
    }
    // Both sides hashed first, so the comparison takes the same time whatever was presented.
    return timingSafeEqual(digest(token), adminDigest) ? { caller: { kind: "admin", label: "admin-token" } } : undefined;
  };
}

/** The caller an API key stands for, or undefined when it is unknown, revoked or expired. */
export function callerOfApiKey(key: ApiKeyDocument | null, now = new Date()): Caller | undefined {
  if (key === null || key.revoke_time !== undefined || (key.expire_time !== undefined && key.expire_time <= now)) return undefined;
  return key.admin || key.organisation_id === undefined
    ? { kind: "admin", label: key.prefix }
    : { kind: "organisation", organisationId: key.organisation_id, label: key.prefix };
}

function digest(token: string): Buffer {
  return hash("sha256", token, "buffer");
}

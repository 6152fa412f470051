import type { CredentialStore } from "../store/credentials.js";
import type { RateLimiter } from "../interceptors/rate-limit.js";
import { clientAddress, clientLimitKey, type TrustedProxies } from "../network/client-address.js";
import type { HttpRoute } from "./http-types.js";
import { sendBody } from "./routes.js";
import { sendPage } from "./pages.js";

/** `/credentials/<credential id>/jwks.json`; IDs are the broker's own (UUIDv7), never anything else. */
const JWKS_PATH = /^\/credentials\/([0-9a-f-]{36})\/jwks\.json$/;

export interface JwksRouteDeps {
  credentials: Pick<CredentialStore, "publicKeys">;
  limiter: RateLimiter;
  trustedProxies: TrustedProxies;
}

/**
 * A credential's public keys as a JWK Set (RFC 7517 §5), for providers to verify its
 * `private_key_jwt` client assertions: public, unauthenticated and safe to be so. It holds the
 * public JWKs only (`kty`, the key's public numbers, `kid`, `alg`, `use`) and says nothing else: an
 * unknown credential and one without keys answer the same 404.
 */
export function jwksRoute(deps: JwksRouteDeps): HttpRoute {
  return {
    matches: (path) => JWKS_PATH.test(path),
    async handle(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") return sendPage(res, 405, "Method not allowed", ["This address only serves keys."]);
      // Unauthenticated, like the callback: limited per client address.
      const retryAfter = deps.limiter.take(clientLimitKey(clientAddress(req.socket?.remoteAddress, req.headers, deps.trustedProxies)));
      if (retryAfter > 0) {
        res.setHeader("Retry-After", String(retryAfter));
        return sendPage(res, 429, "Too many requests", ["Please wait a moment and try again."]);
      }
      const id = JWKS_PATH.exec((req.url ?? "").split("?", 1)[0] ?? "")![1]!;
      const keys = await deps.credentials.publicKeys(id);
      if (keys.length === 0) return sendPage(res, 404, "Not found", ["There is nothing at this address."]);
      sendBody(res, 200, "application/json", JSON.stringify({ keys }));
    },
  };
}

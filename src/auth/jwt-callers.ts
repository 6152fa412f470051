import * as jose from "jose";

export interface JwtCallerConfig {
  issuer: string;
  audience: string;
  jwksUrl: string;
  /** The claim that holds the caller's organisation ID. */
  organisationClaim: string;
}

/**
 * Service-to-service callers present a JWT from the configured issuer (`Authorization: Bearer`).
 * jose checks the signature against the issuer's JWKS (cached; fetched again when a token names a
 * key it has not seen, so rotated keys are picked up), `iss`, `aud` and `exp`. Only asymmetric
 * algorithms from the key set are accepted, so `alg: none` and HMAC tricks fail.
 */
export class JwtCallers {
  readonly #keys: jose.JWTVerifyGetKey;

  constructor(
    private readonly config: JwtCallerConfig,
    fetchImpl: typeof fetch,
  ) {
    // A token naming an unknown key refetches the set (rotation), at most every 5 s.
    this.#keys = jose.createRemoteJWKSet(new URL(config.jwksUrl), { [jose.customFetch]: fetchImpl, cooldownDuration: 5_000 });
  }

  /** The caller's organisation, or undefined for any token that does not verify. */
  async verify(token: string): Promise<{ organisationId: string; subject: string } | undefined> {
    try {
      const { payload } = await jose.jwtVerify(token, this.#keys, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        requiredClaims: ["exp"],
        clockTolerance: 30,
        algorithms: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
      });
      const organisationId = payload[this.config.organisationClaim];
      if (typeof organisationId !== "string" || !/^[A-Za-z0-9._-]{1,128}$/.test(organisationId)) return undefined;
      return { organisationId, subject: typeof payload.sub === "string" ? payload.sub.slice(0, 128) : "jwt" };
    } catch {
      return undefined;
    }
  }
}

export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

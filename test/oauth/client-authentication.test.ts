import * as jose from "jose";
import { describe, expect, it } from "vitest";
import { generateSigningKey } from "../../src/crypto/signing-keys.js";
import { signJwtWithCredentialKey } from "../../src/oauth/client-authentication.js";

// The seam the JWT bearer grant (RFC 7523 §2.1) signs its assertions through.
describe("signJwtWithCredentialKey", () => {
  it.each(["ES256", "RS256"] as const)("signs with a %s credential key, its kid in the header, verifiable with the published JWK", async (alg) => {
    const key = await generateSigningKey(alg);
    const jwt = await signJwtWithCredentialKey(
      { kid: key.kid, alg: key.alg, privateJwk: key.privateJwk },
      { iss: "svc@example.iam.gserviceaccount.com", aud: "https://oauth2.googleapis.com/token", exp: Math.floor(Date.now() / 1000) + 3600 },
    );
    expect(jose.decodeProtectedHeader(jwt)).toEqual({ alg, kid: key.kid, typ: "JWT" });
    const { payload } = await jose.jwtVerify(jwt, await jose.importJWK(key.publicJwk as jose.JWK, alg), { audience: "https://oauth2.googleapis.com/token" });
    expect(payload.iss).toBe("svc@example.iam.gserviceaccount.com");
  });
});

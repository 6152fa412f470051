import { describe, expect, it } from "vitest";
import { JwtBearerAssertionError, type JwtBearerRules, jwtBearerClaims } from "../../src/oauth/jwt-bearer.js";

const GOOGLE: JwtBearerRules = { issuer: "service_account_email", audience: "token_endpoint", scope: "claim", max_lifetime: 3600, subject: "optional" };
const SALESFORCE: JwtBearerRules = { issuer: "client_id", audience: "token_endpoint_origin", scope: "none", max_lifetime: 180, subject: "required" };
const RFC7523: JwtBearerRules = { issuer: "client_id", audience: "token_endpoint", scope: "parameter", max_lifetime: 300, subject: "required" };

const input = (rules: JwtBearerRules, fields: Partial<Parameters<typeof jwtBearerClaims>[0]> = {}) => ({
  rules,
  clientId: "client-1",
  serviceAccountEmail: "sa@project.iam.gserviceaccount.com",
  tokenUrl: "https://login.example.com/services/oauth2/token",
  subject: "user@example.com",
  scope: "a b",
  audience: undefined,
  ...fields,
});

describe("jwtBearerClaims (RFC 7523 §3)", () => {
  it("Google: iss the service account, aud the token URI, scope a claim, an hour", () => {
    const { jti, ...claims } = jwtBearerClaims(input(GOOGLE), 1000);
    expect(claims).toEqual({ iss: "sa@project.iam.gserviceaccount.com", aud: "https://login.example.com/services/oauth2/token", iat: 1000, exp: 4600, sub: "user@example.com", scope: "a b" });
    expect(jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("Salesforce: iss the consumer key, aud the login host, no scope claim, 3 minutes", () => {
    const { jti: _, ...claims } = jwtBearerClaims(input(SALESFORCE, { scope: undefined }), 1000);
    expect(claims).toEqual({ iss: "client-1", aud: "https://login.example.com", iat: 1000, exp: 1180, sub: "user@example.com" });
  });

  it("RFC 7523 as written: scope is a parameter, not a claim; an explicit audience wins", () => {
    const claims = jwtBearerClaims(input(RFC7523, { audience: "https://as.example/" }), 1000);
    expect(claims.scope).toBeUndefined();
    expect(claims).toMatchObject({ iss: "client-1", aud: "https://as.example/", exp: 1300 });
  });

  it("refuses a service-account issuer without a service account", () => {
    expect(() => jwtBearerClaims(input(GOOGLE, { serviceAccountEmail: undefined }), 1000)).toThrow(JwtBearerAssertionError);
  });
});

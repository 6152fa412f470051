import { describe, expect, it } from "vitest";
import { isRedirectUriOf, issuerMatches, parseCallbackPath, parseCallbackQuery, providerErrorCode, redirectUriFor } from "../../src/oauth/callback-params.js";

describe("parseCallbackQuery", () => {
  it("reads the parameters", () => {
    expect(parseCallbackQuery("state=s&code=c&iss=https%3A%2F%2Fidp.example")).toEqual({
      state: "s",
      code: "c",
      error: undefined,
      errorDescription: undefined,
      iss: "https://idp.example",
    });
  });

  it.each([
    ["no state", "code=c"],
    ["an empty state", "state=&code=c"],
    ["a state given twice", "state=a&state=b&code=c"],
    ["a code given twice", "state=a&code=b&code=c"],
    ["an iss given twice", "state=a&code=b&iss=x&iss=y"],
    ["an oversized code", `state=a&code=${"c".repeat(4097)}`],
    ["too many parameters", `state=a&${Array.from({ length: 40 }, (_, i) => `p${i}=1`).join("&")}`],
  ])("refuses %s", (_label, query) => {
    expect(parseCallbackQuery(query)).toBeUndefined();
  });
});

describe("issuerMatches (RFC 9207)", () => {
  const withIssuer = { issuer: "https://idp.example", authorization_response_iss_parameter_supported: false };
  const strict = { ...withIssuer, authorization_response_iss_parameter_supported: true };

  it("accepts the expected issuer, or none from a provider that may omit it", () => {
    expect(issuerMatches("https://idp.example", withIssuer)).toBe(true);
    expect(issuerMatches(undefined, withIssuer)).toBe(true);
    expect(issuerMatches("https://idp.example", strict)).toBe(true);
  });

  it("refuses another issuer, or a missing one from a provider that always sends it", () => {
    expect(issuerMatches("https://attacker.example", withIssuer)).toBe(false);
    expect(issuerMatches("https://idp.example/", withIssuer)).toBe(false);
    expect(issuerMatches(undefined, strict)).toBe(false);
  });

  it("has nothing to compare for a credential without an issuer", () => {
    expect(issuerMatches("https://anything.example", { authorization_response_iss_parameter_supported: false })).toBe(true);
  });
});

describe("providerErrorCode", () => {
  it("passes RFC 6749 error codes and replaces anything else", () => {
    expect(providerErrorCode("access_denied")).toBe("access_denied");
    expect(providerErrorCode('bad"quote')).toBe("access_denied");
    expect(providerErrorCode("é")).toBe("access_denied");
  });
});

describe("callback paths (security issue 11, item 2)", () => {
  it("makes the shared and per-organisation redirect URIs from the public URL", () => {
    expect(redirectUriFor("https://broker.example/base", undefined)).toBe("https://broker.example/base/oauth2/callback");
    expect(redirectUriFor("https://broker.example/base", "acme.eu_1")).toBe("https://broker.example/base/oauth2/callback/acme.eu_1");
  });

  it.each([
    ["/oauth2/callback", { organisationId: undefined }],
    ["/oauth2/callback/acme", { organisationId: "acme" }],
    ["/oauth2/callback/a.b_c-D9", { organisationId: "a.b_c-D9" }],
    ["/oauth2/callback/", undefined],
    ["/oauth2/callback/acme/x", undefined],
    ["/oauth2/callback/ac%20me", undefined],
    [`/oauth2/callback/${"a".repeat(129)}`, undefined],
    ["/oauth2/callbackx", undefined],
  ])("reads %s", (path, expected) => {
    expect(parseCallbackPath(path)).toEqual(expected);
  });

  it.each([
    [undefined, "https://b.example/oauth2/callback", true],
    [undefined, "https://b.example/oauth2/callback/acme", false],
    ["acme", "https://b.example/oauth2/callback/acme", true],
    ["acme", "https://b.example/oauth2/callback", false],
    ["acme", "https://b.example/oauth2/callback/globex", false],
    ["acme", "https://b.example/oauth2/callback/xacme", false],
  ])("a flow of the %s callback with redirect URI %s may complete: %s", (organisationId, redirectUri, expected) => {
    expect(isRedirectUriOf({ organisationId }, redirectUri)).toBe(expected);
  });
});

import { describe, expect, it } from "vitest";
import {
  checkCallbackValues,
  isRedirectUriOf,
  issuerMatches,
  parseCallbackPath,
  parseCallbackQuery,
  providerErrorCode,
  redirectUriFor,
} from "../../src/oauth/callback-params.js";
import { loadProviderCatalog } from "../../src/providers/catalog.js";
import { profileFor } from "../../src/providers/profile.js";
import { findRoot } from "../../src/store/embedded-ferretdb.js";

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

describe("checkCallbackValues (issue 20, item 7)", () => {
  const catalog = loadProviderCatalog(findRoot(import.meta.dirname), undefined);
  const rulesOf = (provider: string, connectionConfig: Record<string, string> = {}) => {
    const { callback: names, callbackPatterns: patterns, callbackEquals: equals, callbackSignature: signature } = profileFor(
      catalog,
      { provider, provider_config: {} },
      connectionConfig,
    ).metadata;
    return { names, patterns, equals, signature };
  };
  const noSecret = () => {
    throw new Error("no signature to check");
  };

  it("regression: QuickBooks' realmId was stored as the browser sent it (../../v3/company/OTHER)", () => {
    const quickbooks = rulesOf("quickbooks");
    expect(checkCallbackValues("state=s&code=c&realmId=9130355", quickbooks, noSecret)).toEqual({ metadata: { realm_id: "9130355" } });
    for (const realmId of ["../../v3/company/OTHER", "123/../456", "9130355\u202e", "12 34", "0x1f"]) {
      const query = new URLSearchParams({ state: "s", code: "c", realmId }).toString();
      expect(checkCallbackValues(query, quickbooks, noSecret)).toEqual({ refused: "invalid_callback_value", key: "realmId" });
    }
    // Not every QuickBooks grant names a company (openid alone): absent stays absent.
    expect(checkCallbackValues("state=s&code=c", quickbooks, noSecret)).toEqual({ metadata: {} });
  });

  // The example Shopify's OAuth documentation gives (client secret "hush"), as its libraries reproduce it.
  const SIGNED =
    "code=0907a61c0c8d55e99db179b68161bc00&hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf" +
    "&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173";

  it("verifies Shopify's hmac with the client secret, and requires the connection's own shop", () => {
    const shopify = rulesOf("shopify", { shop: "some-shop" });
    expect(checkCallbackValues(SIGNED, shopify, () => "hush")).toEqual({ metadata: { shop_domain: "some-shop.myshopify.com" } });
    // The order parameters arrive in does not matter; the hex may be upper case.
    const reordered = SIGNED.split("&").reverse().join("&").replace(/hmac=[0-9a-f]+/, (hmac) => hmac.toUpperCase().replace("HMAC", "hmac"));
    expect(checkCallbackValues(reordered, shopify, () => "hush")).toEqual({ metadata: { shop_domain: "some-shop.myshopify.com" } });
  });

  it.each([
    ["another client secret", SIGNED, "not-hush", "hmac"],
    ["no hmac", SIGNED.replace(/&hmac=[0-9a-f]+/, ""), "hush", "hmac"],
    ["a changed shop", SIGNED.replace("shop=some-shop", "shop=evil-shop"), "hush", "hmac"],
    ["an added parameter", `${SIGNED}&realmId=1`, "hush", "hmac"],
    ["a short hmac", SIGNED.replace(/hmac=[0-9a-f]+/, "hmac=700e"), "hush", "hmac"],
  ])("refuses a Shopify callback with %s (invalid_callback_signature)", (_label, query, secret, key) => {
    expect(checkCallbackValues(query, rulesOf("shopify", { shop: "some-shop" }), () => secret)).toEqual({ refused: "invalid_callback_signature", key });
  });

  it("regression: shop=evil.example was stored; a signed shop that is not the connection's is refused too", () => {
    // Signed by Shopify for some-shop, but the connection was started for another shop.
    expect(checkCallbackValues(SIGNED, rulesOf("shopify", { shop: "other-shop" }), () => "hush")).toEqual({
      refused: "invalid_callback_value",
      key: "shop",
    });
  });
});

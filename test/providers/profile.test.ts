import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.js";
import { buildAuthorizeUrl, planAuthorizationRequest } from "../../src/oauth/authorize-url.js";
import { ProviderCallError } from "../../src/network/provider-call-error.js";
import { parseTokenResponse } from "../../src/oauth/token-response.js";
import { loadProviderCatalog, ProviderCatalog } from "../../src/providers/catalog.js";
import { profileFor, renderEndpoint } from "../../src/providers/profile.js";
import { findRoot } from "../../src/store/embedded-ferretdb.js";
import { scriptedCatalogEntries, writeCatalog } from "../support/test-catalog.js";

const root = findRoot(import.meta.dirname);
const real = loadProviderCatalog(root, undefined);
const test = ProviderCatalog.load(writeCatalog(scriptedCatalogEntries("http://127.0.0.1:1")), join(root, "src/providers/catalog.schema.json"));
const secrets = { clientId: "c", redirectUri: "https://broker.example/oauth2/callback", state: "s", codeChallenge: undefined, nonce: undefined };

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return (error as Error).message;
  }
  throw new Error("expected an InvalidInputError");
}

describe("the provider profile", () => {
  it("keeps the generic rules for a credential without provider", () => {
    const profile = profileFor(real, { token_url: "https://as.example/token", token_endpoint_auth_method: "client_secret_basic", disable_pkce: false });
    const plan = planAuthorizationRequest({
      authorizeUrl: "https://as.example/authorize",
      rules: profile.authorize,
      scopes: ["read"],
      disableOfflineAccess: false,
      prompt: undefined,
      additionalParams: "",
      allowHttp: false,
    });
    const url = new URL(buildAuthorizeUrl(plan, secrets));
    expect(url.searchParams.get("scope")).toBe("read offline_access");
    expect(url.searchParams.get("prompt")).toBe("login");
    expect(profile.token).toMatchObject({ authMethod: "client_secret_basic", bodyFormat: "form" });
    expect(profile.authorize.pkce).toBe(true);
  });

  it("asks Google for offline access with access_type=offline, sends no default prompt, and refuses prompt=login", () => {
    const profile = profileFor(real, { provider: "google" });
    expect(profile.authorizeUrl).toBe("https://accounts.google.com/o/oauth2/v2/auth");
    expect(profile.tokenUrl).toBe("https://oauth2.googleapis.com/token");
    expect(profile.token.authMethod).toBe("client_secret_post");
    const plan = (prompt: string | undefined, additionalParams = "", disableOfflineAccess = false) =>
      planAuthorizationRequest({ authorizeUrl: profile.authorizeUrl!, rules: profile.authorize, scopes: ["openid", "email"], disableOfflineAccess, prompt, additionalParams, allowHttp: false });
    const url = new URL(buildAuthorizeUrl(plan(undefined), { ...secrets, nonce: "n" }));
    expect(url.searchParams.get("scope")).toBe("openid email");
    expect(url.searchParams.get("access_type")).toBe("offline");
    expect(url.searchParams.has("prompt")).toBe(false);
    expect(new URL(buildAuthorizeUrl(plan("consent"), { ...secrets, nonce: "n" })).searchParams.get("prompt")).toBe("consent");
    expect(refusal(() => plan("login"))).toBe('"prompt" "login" is not one of the provider\'s prompt values (none consent select_account)');
    // disable_offline_access still turns it off; the caller's value of a provider parameter wins.
    expect(new URL(buildAuthorizeUrl(plan(undefined, "", true), { ...secrets, nonce: "n" })).searchParams.has("access_type")).toBe(false);
    const online = new URL(buildAuthorizeUrl(plan(undefined, "access_type=online"), { ...secrets, nonce: "n" }));
    expect(online.searchParams.getAll("access_type")).toEqual(["online"]);
    // Never a parameter the broker owns.
    expect(refusal(() => plan(undefined, "redirect_uri=https://evil.example"))).toBe('"additional_params" must not set "redirect_uri"');
  });

  it("joins Slack's scopes with commas and refuses a scope that holds one", () => {
    const profile = profileFor(real, { provider: "slack" });
    const plan = (scopes: string[]) =>
      planAuthorizationRequest({ authorizeUrl: profile.authorizeUrl!, rules: profile.authorize, scopes, disableOfflineAccess: false, prompt: undefined, additionalParams: "", allowHttp: false });
    expect(new URL(buildAuthorizeUrl(plan(["chat:write", "channels:read"]), secrets)).searchParams.get("scope")).toBe("chat:write,channels:read");
    expect(refusal(() => plan(["a,b"]))).toBe('"scopes[0]" must not contain the provider\'s scope separator');
  });

  it("lets an explicit credential field override the catalog", () => {
    const profile = profileFor(real, { provider: "google", token_url: "https://proxy.example/token", token_endpoint_auth_method: "client_secret_basic", disable_pkce: true });
    expect(profile.tokenUrl).toBe("https://proxy.example/token");
    expect(profile.token.authMethod).toBe("client_secret_basic");
    expect(profile.authorize.pkce).toBe(false);
    expect(profile.revocationUrl).toBe("https://oauth2.googleapis.com/revoke");
  });

  it("fills a connection-level host label and refuses hostile values naming the field", () => {
    const credential = { provider: "scripted-zendesk" };
    expect(profileFor(test, credential, { subdomain: "acme" }).tokenUrl).toBe("https://acme.zendesk.com/oauth/tokens");
    const pattern = '"connection_config.subdomain" does not match the pattern of provider "scripted-zendesk" (see GetProvider)';
    for (const hostile of ["evil.com/x", "a@b", "acme.evil.com", "acme.zendesk.com.evil.com", "ACME%2e"]) {
      expect(refusal(() => profileFor(test, credential, { subdomain: hostile }))).toBe(pattern);
    }
    expect(refusal(() => profileFor(test, credential, {}))).toBe('"connection_config.subdomain" is required by provider "scripted-zendesk"');
    expect(refusal(() => profileFor(test, credential, { subdomain: "acme", region: "eu" }))).toBe(
      '"connection_config.region" is not a parameter of provider "scripted-zendesk"',
    );
  });

  it("refuses a credential-level key in connection_config, and connection_config for a generic credential", () => {
    expect(refusal(() => profileFor(test, { provider: "scripted-domain", provider_config: { domain: "dev-1.okta.com" } }, { domain: "evil.com" }))).toBe(
      "\"connection_config.domain\" is a credential-level parameter (set it in the credential's provider_config)",
    );
    expect(refusal(() => profileFor(test, { token_url: "https://as.example/token" }, { shop: "acme" }))).toBe(
      '"connection_config.shop" is not a parameter of the credential\'s provider',
    );
  });

  it("lets a credential-level parameter name a whole host", () => {
    const profile = profileFor(test, { provider: "scripted-domain", provider_config: { domain: "dev-1.okta.com" } });
    expect(profile.tokenUrl).toBe("https://dev-1.okta.com/oauth2/v1/token");
  });
});

describe("renderEndpoint, the second line of defence behind the patterns", () => {
  const shop = [{ name: "shop", level: "connection" as const, pattern: "^.*$", description: "" }];
  const tenant = [{ name: "tenant", level: "connection" as const, pattern: "^.*$", description: "" }];
  const domain = [{ name: "domain", level: "credential" as const, pattern: "^.*$", description: "" }];

  it("refuses a value that moves a templated host label off its fixed domain, even past a loose pattern", () => {
    const template = "https://{shop}.myshopify.com/admin/oauth/access_token";
    expect(renderEndpoint(template, { shop: "acme" }, shop)).toBe("https://acme.myshopify.com/admin/oauth/access_token");
    for (const hostile of ["evil.com/x", "a@b", "acme.evil.com", "evil.com#", "evil.com?"]) {
      expect(refusal(() => renderEndpoint(template, { shop: hostile }, shop))).toBe('"connection_config.shop" would change the endpoint\'s host');
    }
  });

  it("lets a host value add only the labels its pattern fixes after a literal dot (Salesforce's My Domain)", () => {
    const template = "https://{login_subdomain}.salesforce.com/services/oauth2/token";
    const loose = [{ name: "login_subdomain", level: "connection" as const, pattern: "^[a-z0-9.-]+(\\.my)?$", description: "d" }];
    expect(renderEndpoint(template, { login_subdomain: "acme--dev.sandbox.my" }, [{ ...loose[0]!, pattern: "^[a-z-]+(\\.sandbox)?\\.my$" }])).toBe(
      "https://acme--dev.sandbox.my.salesforce.com/services/oauth2/token",
    );
    expect(renderEndpoint(template, { login_subdomain: "acme.my" }, loose)).toBe("https://acme.my.salesforce.com/services/oauth2/token");
    for (const hostile of ["acme.evil.my", "acme.my.evil", "evil.com"]) {
      expect(refusal(() => renderEndpoint(template, { login_subdomain: hostile }, loose))).toBe(
        '"connection_config.login_subdomain" would change the endpoint\'s host',
      );
    }
  });

  it("keeps a path segment one segment, and refuses dot segments", () => {
    const template = "https://login.example.com/{tenant}/oauth2/v2.0/token";
    expect(renderEndpoint(template, { tenant: "a/b?c#d" }, tenant)).toBe("https://login.example.com/a%2Fb%3Fc%23d/oauth2/v2.0/token");
    expect(refusal(() => renderEndpoint(template, { tenant: ".." }, tenant))).toBe('"connection_config.tenant" would change the endpoint\'s path');
  });

  it("lets a credential-level value be a whole host but not smuggle a path or user info", () => {
    const template = "https://{domain}/oauth2/v1/token";
    expect(renderEndpoint(template, { domain: "dev-1.okta.com" }, domain)).toBe("https://dev-1.okta.com/oauth2/v1/token");
    expect(refusal(() => renderEndpoint(template, { domain: "evil.com/x" }, domain))).toBe('"credential.provider_config.domain" would change the endpoint\'s host');
    expect(refusal(() => renderEndpoint(template, { domain: "a@b" }, domain))).toBe('"credential.provider_config.domain" would change the endpoint\'s host');
  });
});

describe("token responses read by the profile's rules", () => {
  const rules = profileFor(test, { provider: "scripted-nested" }).token.response;
  const json = (body: unknown, status = 200) => parseTokenResponse(status, "application/json", JSON.stringify(body), rules);

  it("takes Slack's bot token when present, else authed_user's, and never makes a token metadata", () => {
    const bot = json({ ok: true, access_token: "xoxb-1", token_type: "bot", team: { id: "T1", name: "Acme" }, authed_user: { id: "U1", access_token: "xoxp-1", token_type: "user" } });
    expect(bot).toMatchObject({ accessToken: "xoxb-1", tokenType: "bot", metadata: { team_id: "T1", team_name: "Acme", authed_user_id: "U1" } });
    const user = json({ ok: true, team: { id: "T1" }, authed_user: { id: "U1", access_token: "xoxp-1", token_type: "user", scope: "a,b" } });
    expect(user).toMatchObject({ accessToken: "xoxp-1", tokenType: "user", scopes: ["a", "b"] });
    expect(JSON.stringify(user.metadata)).not.toContain("xoxp");
  });

  it("reads an HTTP 200 error with ok false as the provider's error", () => {
    let error: unknown;
    try {
      json({ ok: false, error: "invalid_code" });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ProviderCallError);
    expect(error).toMatchObject({ message: "provider error (HTTP 200)", oauthError: "invalid_code" });
  });

  it("assumes the documented token_type and lifetime when the response has none", () => {
    const defaults = profileFor(test, { provider: "scripted-defaults" }).token.response;
    expect(parseTokenResponse(200, "application/json", '{"access_token":"a","instance_url":"https://na1.example.com"}', defaults)).toMatchObject({
      tokenType: "bearer",
      expiresIn: 30,
      metadata: { instance_url: "https://na1.example.com" },
    });
  });
});

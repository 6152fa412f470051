import { describe, expect, it } from "vitest";
import { loadProviderCatalog } from "../../src/providers/catalog.js";
import { profileFor } from "../../src/providers/profile.js";
import { findRoot } from "../../src/store/embedded-ferretdb.js";

const catalog = loadProviderCatalog(findRoot(import.meta.dirname), undefined);

describe("the device authorization endpoint a profile names (RFC 8628 §3.1)", () => {
  it("is the catalog's grants.device_authorization, with the credential's values filled in", () => {
    expect(profileFor(catalog, { provider: "vercel" }).deviceAuthorizationUrl).toBe("https://api.vercel.com/login/oauth/device-authorization");
    expect(profileFor(catalog, { provider: "authentik", provider_config: { host: "sso.example.com" } }).deviceAuthorizationUrl).toBe(
      "https://sso.example.com/application/o/device/",
    );
  });

  it("is none for a provider that lists none, and for a credential without provider (discovery decides then)", () => {
    expect(profileFor(catalog, { provider: "github" }).deviceAuthorizationUrl).toBeUndefined();
    expect(profileFor(catalog, { token_url: "https://as.example/token" }).deviceAuthorizationUrl).toBeUndefined();
  });
});

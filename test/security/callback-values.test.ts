import { createHmac } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { scriptedCatalogEntries, writeCatalog } from "../support/test-catalog.js";

// Issue 20, item 7: provider and browser values were stored unchecked. Values from the callback
// query (QuickBooks' realmId, Shopify's shop) must match the catalog's pattern, Shopify's must be
// signed (hmac) and be the connection's own shop; account fields and metadata keep no control or
// bidi characters.
const CLIENT_SECRET = "scripted-client-secret";
let broker: TestBroker;
let provider: ScriptedProvider;

/** Shopify as its docs describe it, on loopback: the shop as a path segment (a host label cannot be served here). */
function signedEntry(base: string): Record<string, unknown> {
  const docs = "https://example.com/docs";
  return {
    id: "scripted-signed",
    display_name: "Scripted signed callback (Shopify-like)",
    documentation_url: docs,
    parameters: [{ name: "shop", level: "connection", pattern: "^[a-z0-9][a-z0-9-]{0,62}$", description: "The shop" }],
    endpoints: { authorize: `${base}/t/{shop}/authorize`, token: `${base}/t/{shop}/token` },
    metadata: {
      callback: { shop_domain: "shop" },
      callback_patterns: { shop_domain: "^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}\\.myshopify\\.com$" },
      callback_equals: { shop_domain: "{shop}.myshopify.com" },
      callback_signature: { scheme: "hmac_sha256_sorted_query", parameter: "hmac" },
    },
    sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs, metadata: docs },
  };
}

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  const catalog = writeCatalog([...scriptedCatalogEntries(provider.issuer), signedEntry(provider.issuer)]);
  broker = await startTestBroker({ BROKER_PROVIDERS_DIR: catalog });
});
afterAll(async () => {
  await broker?.close();
  await provider?.close();
});
beforeEach(() => {
  provider.requests.length = 0;
  provider.userinfo = undefined;
  provider.behaviour = { kind: "json", body: { access_token: "cv-at", token_type: "bearer", expires_in: 3600, refresh_token: "cv-rt" } };
});
recordSecrets("cv-at", "cv-rt");

async function providerCredential(providerId: string): Promise<string> {
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: { organisationId: "acme", name: providerId, clientId: "client-1", clientSecret: CLIENT_SECRET, provider: providerId },
  });
  return credential!.id;
}

/** Starts a flow and returns its state. */
async function start(credentialId: string, connectionConfig: Record<string, string> = {}): Promise<string> {
  const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "callback-values",
    credential: { id: credentialId, organisationId: "acme" },
    clientId: "client-1",
    scopes: ["read"],
    connectionConfig,
  });
  const state = new URL(url).searchParams.get("state")!;
  recordSecrets(state);
  return state;
}

/** Signs a query as Shopify's docs say: every other parameter sorted by name, name=value joined by &, HMAC-SHA256 hex. */
function shopifySigned(params: Record<string, string>, secret = CLIENT_SECRET): string {
  const message = Object.entries(params)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
  return new URLSearchParams({ ...params, hmac: createHmac("sha256", secret).update(message).digest("hex") }).toString();
}

const callback = (query: string) => fetch(`${broker.httpUrl}/oauth2/callback?${query}`);
const connectionsOf = (credentialId: string) => broker.database.db.collection("connections").find({ credential_id: credentialId }).toArray();
const exchanges = () => provider.requests.filter((request) => request.form.get("grant_type") === "authorization_code");

describe("values from the callback query", () => {
  it("regression: realmId=../../v3/company/OTHER was stored and returned by GetAccessToken; now the callback fails and nothing is stored", async () => {
    const credentialId = await providerCredential("scripted-callback");
    const state = await start(credentialId);
    const response = await callback(new URLSearchParams({ state, code: "c1", realmId: "../../v3/company/OTHER" }).toString());
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("The response&#39;s &#34;realmId&#34; is not what the provider sends. Nothing was stored.");
    expect(await connectionsOf(credentialId)).toEqual([]);
    expect(exchanges()).toEqual([]);

    const good = await callback(new URLSearchParams({ state: await start(credentialId), code: "c2", realmId: "9130355" }).toString());
    expect(good.status).toBe(200);
    expect((await connectionsOf(credentialId)).map((connection) => connection.metadata)).toEqual([{ realm_id: "9130355" }]);
  });

  it("completes a Shopify-like callback whose hmac verifies and whose shop is the connection's", async () => {
    const credentialId = await providerCredential("scripted-signed");
    const state = await start(credentialId, { shop: "contoso" });
    const response = await callback(shopifySigned({ code: "c3", shop: "contoso.myshopify.com", state, timestamp: "1337178173" }));
    expect(response.status).toBe(200);
    expect((await connectionsOf(credentialId)).map((connection) => connection.metadata)).toEqual([{ shop_domain: "contoso.myshopify.com", shop: "contoso" }]);
    expect(exchanges().map((request) => request.path)).toEqual(["/t/contoso/token"]);
  });

  it.each<[string, (state: string) => string, string]>([
    ["regression: shop=evil.example was stored (unsigned)", (state) => new URLSearchParams({ state, code: "c", shop: "evil.example" }).toString(), "invalid_callback_signature"],
    ["a signature made with another secret", (state) => shopifySigned({ code: "c", shop: "contoso.myshopify.com", state }, "guessed"), "invalid_callback_signature"],
    ["a signed query with a parameter added", (state) => `${shopifySigned({ code: "c", shop: "contoso.myshopify.com", state })}&extra=1`, "invalid_callback_signature"],
    ["a correctly signed shop that is not the connection's", (state) => shopifySigned({ code: "c", shop: "other.myshopify.com", state }), "invalid_callback_value"],
    ["a correctly signed shop outside myshopify.com", (state) => shopifySigned({ code: "c", shop: "evil.example", state }), "invalid_callback_value"],
    ["a correctly signed callback without a shop", (state) => shopifySigned({ code: "c", state }), "invalid_callback_value"],
  ])("refuses %s: nothing exchanged, nothing stored", async (_label, query, reason) => {
    const credentialId = await providerCredential("scripted-signed");
    const response = await callback(query(await start(credentialId, { shop: "contoso" })));
    expect(response.status).toBe(400);
    const page = await response.text();
    expect(page).toContain(reason === "invalid_callback_signature" ? "was not signed by the provider" : "is not what the provider sends");
    expect(await connectionsOf(credentialId)).toEqual([]);
    expect(exchanges()).toEqual([]);
    expect(broker.logs.some((line) => line.outcome === reason && line.credential_id === credentialId)).toBe(true);
  });
});

describe("account fields and metadata from the provider", () => {
  it("regression: external_account kept NUL, CR/LF and U+202E; a field holding control or bidi characters is left out (an ID: no account)", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { userinfoUrl: provider.userinfoUrl });
    provider.userinfo = { sub: "user-7", email: "erin@example.com\r\nBcc: mallory@example.com", name: "Erin\u202egnp.exe" };
    const kept = await connectThroughCallback(broker, credentialId);
    const { connection } = await broker.connect(ConnectionService).getConnection({ organisationId: "acme", id: kept });
    expect(connection!.externalAccount).toMatchObject({ id: "user-7", email: "", name: "" });

    for (const sub of ["user\u0000-8", "user\u2066-9", "user\u007f"]) {
      provider.userinfo = { sub, email: "erin@example.com", name: "Erin" };
      const id = await connectThroughCallback(broker, credentialId);
      const stored = await broker.database.db.collection("connections").findOne({ _id: id as never });
      expect(stored!.external_account).toBeUndefined();
    }
  });

  it("leaves a token response's metadata value with a bidi control out, as one with a control character", async () => {
    const credentialId = await providerCredential("scripted-nested");
    provider.behaviour = {
      kind: "json",
      body: { ok: true, access_token: "cv-at", token_type: "bot", team: { id: "T1", name: "Acme\u202eevil" }, authed_user: { id: "U\u00001" } },
    };
    const response = await callback(new URLSearchParams({ state: await start(credentialId), code: "c5" }).toString());
    expect(response.status).toBe(200);
    expect((await connectionsOf(credentialId)).map((connection) => connection.metadata)).toEqual([{ team_id: "T1" }]);
  });
});

import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApiTokenLocation, ConnectionService, ConnectionStatus, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import { ProviderParameterLevel, ProviderService } from "../../gen/oauth2broker/v1/provider_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider, type TokenBehaviour } from "../support/scripted-provider.js";
import { scriptedCatalogEntries, writeCatalog } from "../support/test-catalog.js";
import { countStates } from "../support/state-store.js";

/**
 * Each kind of provider quirk, behaving as the named provider's documentation says, through the
 * whole flow: InitialiseOAuth2Connection, the callback, GetAccessToken (which refreshes, since
 * every first token expires inside the broker's 60 s margin), and DeleteConnection with revoke.
 * The endpoints come from a test catalog (BROKER_PROVIDERS_DIR) pointing at the scripted
 * provider on loopback; no credential sets a token URL.
 */
let broker: TestBroker;
let provider: ScriptedProvider;
let connections: Client<typeof ConnectionService>;
let credentials: Client<typeof CredentialService>;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_PROVIDERS_DIR: writeCatalog(scriptedCatalogEntries(provider.issuer)) });
  connections = broker.connect(ConnectionService);
  credentials = broker.connect(CredentialService);
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});
beforeEach(() => {
  provider.requests.length = 0;
  provider.refreshBehaviour = undefined;
  provider.revocationStatus = 200;
  provider.basicCheck = undefined;
  provider.revocations.length = 0;
  provider.revocationAnswer = { status: 200, body: undefined };
  provider.metadataAnswers = {};
  provider.metadataRequests.length = 0;
});

async function providerCredential(provider: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { credential } = await credentials.createCredential({
    credential: { organisationId: "acme", name: provider, clientId: "client-1", clientSecret: "scripted-client-secret", provider, ...extra },
  });
  return credential!.id;
}

/** Initialise (no authorize_url: the catalog's), then the provider's redirect with `query`. */
async function connect(
  credentialId: string,
  options: { connectionConfig?: Record<string, string>; scopes?: string[]; query?: Record<string, string>; clientId?: string } = {},
): Promise<{ authorizeUrl: URL; connectionId: string }> {
  const { url } = await connections.initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "quirks",
    credential: { id: credentialId, organisationId: "acme" },
    clientId: options.clientId ?? "client-1",
    scopes: options.scopes ?? ["read"],
    connectionConfig: options.connectionConfig ?? {},
    returnUrl: "",
  });
  const authorizeUrl = new URL(url);
  const state = authorizeUrl.searchParams.get("state")!;
  recordSecrets(state);
  const query = new URLSearchParams({ state, code: `code-${state.slice(0, 8)}`, ...options.query });
  const response = await fetch(`${broker.httpUrl}/oauth2/callback?${query}`);
  expect(response.status).toBe(200);
  const newest = await broker.database.db.collection("connections").find({ credential_id: credentialId }).sort({ _id: -1 }).limit(1).next();
  return { authorizeUrl, connectionId: String(newest!._id) };
}

/** GetAccessToken refreshes (first tokens expire within the margin), then DeleteConnection revokes. */
async function refreshAndRevoke(connectionId: string, refreshed: TokenBehaviour) {
  provider.refreshBehaviour = refreshed;
  const token = await connections.getAccessToken({ organisationId: "acme", connectionId });
  const deleted = await connections.deleteConnection({ organisationId: "acme", id: connectionId, revoke: true });
  return { token, deleted };
}

describe("ProviderService", () => {
  it("lists the catalog a page at a time and returns one provider with its parameters", async () => {
    const service = broker.connect(ProviderService);
    const first = await service.listProviders({ pageSize: 3 });
    const ids = scriptedCatalogEntries(provider.issuer).map((entry) => String(entry.id)).sort();
    expect(first.providers.map((p) => p.id)).toEqual(ids.slice(0, 3));
    const rest = await service.listProviders({ pageSize: 100, pageToken: first.nextPageToken });
    expect(rest.providers.map((p) => p.id)).toEqual(ids.slice(3));
    const { provider: withDefault } = await service.getProvider({ id: "scripted-tenant-default" });
    expect(withDefault!.parameters).toMatchObject([{ name: "tenant", defaultValue: "common" }]);
    expect(rest.providers.find((p) => p.id === "scripted-tenant")!.parameters[0]!.defaultValue).toBeUndefined();
    expect(rest.nextPageToken).toBe("");
    const { provider: zendesk } = await service.getProvider({ id: "scripted-zendesk" });
    expect(zendesk).toMatchObject({ id: "scripted-zendesk", scopeSeparator: " ", documentationUrl: "https://example.com/docs" });
    expect(zendesk!.parameters).toMatchObject([
      { name: "subdomain", pattern: "^[a-z0-9][a-z0-9-]{0,62}$", description: "The subdomain", level: ProviderParameterLevel.CONNECTION },
    ]);
    expect((await connectError(service.getProvider({ id: "nope" }))).code).toBe(Code.NotFound);
    const anonymous = await connectError(broker.connect(ProviderService, null).listProviders({}));
    expect(anonymous.code).toBe(Code.Unauthenticated);
  });
});

describe("credentials that name a provider", () => {
  it("refuses an unknown provider, naming the field", async () => {
    const error = await connectError(providerCredential("nope"));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe('"credential.provider" is not a provider in the catalog');
  });

  it("keeps unset fields unset (as the catalog says) and still stores the generic defaults without a provider", async () => {
    const { credential } = await credentials.getCredential({ organisationId: "acme", id: await providerCredential("scripted-json") });
    expect(credential).toMatchObject({ provider: "scripted-json", tokenUrl: "" });
    expect(credential!.tokenEndpointAuthMethod).toBeUndefined();
    expect(credential!.disablePkce).toBeUndefined();
    const generic = await credentials.createCredential({
      credential: { organisationId: "acme", name: "g", clientId: "c", clientSecret: "scripted-client-secret", tokenUrl: provider.tokenUrl },
    });
    expect(generic.credential).toMatchObject({ tokenEndpointAuthMethod: TokenEndpointAuthMethod.CLIENT_SECRET_BASIC, disablePkce: false });
  });

  it("checks provider_config: required, patterned, and the host it names is under the outbound policy", async () => {
    const missing = await connectError(providerCredential("scripted-domain"));
    expect(missing.rawMessage).toBe('"credential.provider_config.domain" is required by provider "scripted-domain"');
    const internal = await connectError(providerCredential("scripted-domain", { providerConfig: { domain: "169.254.169.254" } }));
    expect(internal.code).toBe(Code.InvalidArgument);
    expect(internal.rawMessage).toBe(
      '"credential.provider_config.domain" is refused - internal addresses (private or loopback or link-local) are refused',
    );
    const hostile = await connectError(providerCredential("scripted-domain", { providerConfig: { domain: "evil.com/x" } }));
    expect(hostile.rawMessage).toBe('"credential.provider_config.domain" does not match the pattern of provider "scripted-domain" (see GetProvider)');
    const stray = await connectError(providerCredential("scripted-json", { providerConfig: { domain: "a.example" } }));
    expect(stray.rawMessage).toBe('"credential.provider_config.domain" is not a parameter of provider "scripted-json"');
  });
});

describe("UpdateCredential with a provider", () => {
  it("checks the credential as a whole: a hostile provider_config, or dropping the provider but not its config, changes nothing", async () => {
    const id = await providerCredential("scripted-domain", { providerConfig: { domain: "dev-1.okta.example" } });
    const hostile = await connectError(
      credentials.updateCredential({
        // Where secrets go changes only with the secret (security issue 11, item 1).
        credential: { id, organisationId: "acme", providerConfig: { domain: "169.254.169.254" }, clientSecret: "scripted-client-secret" },
        updateMask: { paths: ["provider_config", "client_secret"] },
      }),
    );
    expect(hostile.rawMessage).toBe('"credential.provider_config.domain" is refused - internal addresses (private or loopback or link-local) are refused');
    const dropped = await connectError(
      credentials.updateCredential({
        credential: { id, organisationId: "acme", clientSecret: "scripted-client-secret" },
        updateMask: { paths: ["provider", "client_secret"] },
      }),
    );
    const withoutSecret = await connectError(
      credentials.updateCredential({ credential: { id, organisationId: "acme", providerConfig: { domain: "dev-2.okta.example" } }, updateMask: { paths: ["provider_config"] } }),
    );
    expect(withoutSecret.rawMessage).toBe('"credential.client_secret" is required to change "credential.provider_config"');
    expect(dropped.rawMessage).toBe('"credential.provider_config" is only for credentials with a "provider"');
    const { credential } = await credentials.getCredential({ organisationId: "acme", id });
    expect(credential).toMatchObject({ provider: "scripted-domain", providerConfig: { domain: "dev-1.okta.example" } });
    // Clearing the auth method goes back to the catalog's (unset), not to Basic.
    const cleared = await credentials.updateCredential({
      credential: { id, organisationId: "acme" },
      updateMask: { paths: ["token_endpoint_auth_method"] },
    });
    expect(cleared.credential!.tokenEndpointAuthMethod).toBeUndefined();
  });
});

describe("a full flow through each quirk", () => {
  it("nested tokens, HTTP 200 errors and comma scopes (Slack): the user token is primary without a bot token and never metadata", async () => {
    const credentialId = await providerCredential("scripted-nested");
    provider.behaviour = {
      kind: "json",
      body: {
        ok: true,
        app_id: "A1",
        team: { id: "T123", name: "Acme" },
        authed_user: { id: "U1", scope: "chat:write,channels:read", access_token: "xoxp-user-1", token_type: "user", refresh_token: "xoxe-1", expires_in: 30 },
      },
    };
    const { authorizeUrl, connectionId } = await connect(credentialId, { scopes: ["chat:write", "channels:read"] });
    expect(`${authorizeUrl.origin}${authorizeUrl.pathname}`).toBe(`${provider.issuer}/authorize`);
    expect(authorizeUrl.searchParams.get("scope")).toBe("chat:write,channels:read");
    expect(authorizeUrl.searchParams.has("prompt")).toBe(false);
    const [exchange] = provider.grants("authorization_code");
    expect(exchange!.form.get("client_secret")).toBe("scripted-client-secret");
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection).toMatchObject({ tokenType: "user", scopes: ["chat:write", "channels:read"], metadata: { team_id: "T123", team_name: "Acme", authed_user_id: "U1" } });

    const { token, deleted } = await refreshAndRevoke(connectionId, {
      kind: "json",
      body: { ok: true, team: { id: "T123", name: "Acme" }, authed_user: { id: "U1", access_token: "xoxp-user-2", token_type: "user", refresh_token: "xoxe-2", expires_in: 43200 } },
    });
    expect(token).toMatchObject({ accessToken: "xoxp-user-2", tokenType: "user", metadata: { team_id: "T123", authed_user_id: "U1" } });
    expect(JSON.stringify(token.metadata)).not.toContain("xox");
    expect(provider.grants("refresh_token")[0]!.form.get("refresh_token")).toBe("xoxe-1");
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    expect(provider.requests.find((r) => r.path === "/revoke")!.form.get("token")).toBe("xoxe-2");
  });

  it("a transient HTTP 200 error (ok false) on refresh is a refresh failure with the provider's code, retried after backoff", async () => {
    const credentialId = await providerCredential("scripted-nested");
    provider.behaviour = { kind: "json", body: { ok: true, access_token: "xoxb-1", token_type: "bot", refresh_token: "xoxe-b1", expires_in: 30 } };
    const { connectionId } = await connect(credentialId);
    provider.refreshBehaviour = { kind: "json", body: { ok: false, error: "ratelimited" } };
    const error = await connectError(connections.getAccessToken({ organisationId: "acme", connectionId }));
    expect(error.code).toBe(Code.Unavailable);
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection).toMatchObject({ status: ConnectionStatus.REFRESH_FAILED, statusReason: "ratelimited" });
  });

  it("a permanent HTTP 200 error (Slack's invalid_refresh_token) needs reauthorization at once, with the code in the event", async () => {
    const credentialId = await providerCredential("scripted-nested");
    provider.behaviour = { kind: "json", body: { ok: true, access_token: "xoxb-2", token_type: "bot", refresh_token: "xoxe-b2", expires_in: 30 } };
    const { connectionId } = await connect(credentialId);
    provider.refreshBehaviour = { kind: "json", body: { ok: false, error: "invalid_refresh_token" } };
    const error = await connectError(connections.getAccessToken({ organisationId: "acme", connectionId }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the connection needs reauthorization (invalid_refresh_token) so the end user must connect again");
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection).toMatchObject({ status: ConnectionStatus.NEEDS_REAUTHORIZATION, statusReason: "invalid_refresh_token" });
    const events = broker.database.db.collection("events");
    await expect
      .poll(async () => (await events.find({ connection_id: connectionId }).sort({ _id: 1 }).toArray()).map((e) => `${e.type}:${e.status_reason ?? ""}`), { timeout: 15_000 })
      .toEqual(["connection.created:", "connection.needs_reauthorization:invalid_refresh_token"]);
    // Only one refresh was sent: nothing retries a grant the provider has ended.
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it("missing token_type and expires_in (Shopify, Salesforce): the documented defaults, offline access by parameter", async () => {
    const credentialId = await providerCredential("scripted-defaults");
    provider.behaviour = { kind: "json", body: { access_token: "shpat-1", refresh_token: "shprt-1", instance_url: "https://na1.example.com" } };
    const before = Date.now();
    const { authorizeUrl, connectionId } = await connect(credentialId);
    expect(authorizeUrl.searchParams.get("access_type")).toBe("offline");
    expect(authorizeUrl.searchParams.get("scope")).toBe("read");
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.tokenType).toBe("bearer");
    const expiresAt = Number(connection!.accessTokenExpireTime!.seconds) * 1000;
    expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 29_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 31_000);
    expect(connection!.metadata).toEqual({ instance_url: "https://na1.example.com" });
    expect(connection!.apiBaseUrl).toBe("https://na1.example.com/services/data");
    expect(connection!.api).toMatchObject({
      baseUrls: [
        { name: "rest", url: "https://na1.example.com/services/data", description: "REST API" },
        { name: "apex", url: "https://na1.example.com/services/apexrest", description: "" },
      ],
      tokenPlacement: { location: ApiTokenLocation.HEADER, name: "Authorization", scheme: "Bearer" },
      headers: {},
    });

    // A refresh that names another instance moves the API base with it.
    const { token, deleted } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "shpat-2", instance_url: "https://na2.example.com/" } });
    expect(token).toMatchObject({ accessToken: "shpat-2", tokenType: "bearer", metadata: { instance_url: "https://na2.example.com/" } });
    expect(token.apiBaseUrl).toBe("https://na2.example.com/services/data");
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    // No new refresh token came back: the old one stays and is the one revoked.
    expect(provider.requests.find((r) => r.path === "/revoke")!.form.get("token")).toBe("shprt-1");
  });

  it.each([
    ["an internal address", "https://169.254.169.254"],
    ["plain http", "http://na1.example.com"],
    ["user info", "https://evil@na1.example.com"],
    ["a query", "https://na1.example.com/?x=1"],
    ["not a URL", "na1.example.com"],
  ])("an API base from provider metadata is left out when it is %s", async (_label, instanceUrl) => {
    const credentialId = await providerCredential("scripted-defaults");
    provider.behaviour = { kind: "json", body: { access_token: "shpat-x", refresh_token: "shprt-x", instance_url: instanceUrl } };
    const { connectionId } = await connect(credentialId);
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.metadata).toEqual({ instance_url: instanceUrl });
    expect(connection!.apiBaseUrl).toBe("");
    expect(connection!.api).toBeUndefined();
  });

  it("a JSON request body with HTTP Basic authentication (Notion), default authorize parameters", async () => {
    const credentialId = await providerCredential("scripted-json");
    provider.behaviour = {
      kind: "json",
      body: { access_token: "ntn-1", token_type: "bearer", refresh_token: "ntnr-1", expires_in: 30, bot_id: "b1", workspace_id: "w1", workspace_name: "Acme HQ" },
    };
    const { authorizeUrl, connectionId } = await connect(credentialId);
    expect(authorizeUrl.searchParams.get("owner")).toBe("user");
    expect(authorizeUrl.searchParams.get("scope")).toBe("read");
    const [exchange] = provider.grants("authorization_code");
    expect(exchange!.contentType).toBe("application/json");
    // RFC 6749 §2.3.1: the ID and secret are form-encoded before Basic's base64.
    const basic = Buffer.from(exchange!.authorization!.replace(/^Basic /, ""), "base64").toString().split(":").map(decodeURIComponent);
    expect(basic).toEqual(["client-1", "scripted-client-secret"]);
    expect(exchange!.form.get("code")).toMatch(/^code-/);
    expect(exchange!.form.has("client_secret")).toBe(false);

    const { token, deleted } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "ntn-2", token_type: "bearer", expires_in: 3600 } });
    expect(token).toMatchObject({ accessToken: "ntn-2", metadata: { workspace_id: "w1", workspace_name: "Acme HQ", bot_id: "b1" } });
    expect(token.apiBaseUrl).toBe("https://api.notion.example/v1");
    expect(token.api!.headers).toEqual({ "Notion-Version": "2022-06-28" });
    expect(provider.grants("refresh_token")[0]!.contentType).toBe("application/json");
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
  });

  it("callback query metadata (QuickBooks realmId), a form-encoded token response, offline access by another scope", async () => {
    const credentialId = await providerCredential("scripted-callback");
    provider.behaviour = { kind: "raw", status: 200, contentType: "application/x-www-form-urlencoded", body: "access_token=qb-1&token_type=bearer&refresh_token=qbr-1&expires_in=30" };
    recordSecrets("qb-1", "qbr-1");
    const { authorizeUrl, connectionId } = await connect(credentialId, { query: { realmId: "9130355" } });
    expect(authorizeUrl.searchParams.get("scope")).toBe("read offline");
    const { token, deleted } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "qb-2", token_type: "bearer", refresh_token: "qbr-2", expires_in: 3600 } });
    expect(token).toMatchObject({ accessToken: "qb-2", metadata: { realm_id: "9130355" } });
    const listed = await connections.listConnections({ organisationId: "acme", credentialId });
    expect(listed.connections).toHaveLength(0); // deleted
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
  });

  it("a parameter left out takes its default (Microsoft's common tenant), kept on the connection for refresh and revoke", async () => {
    const credentialId = await providerCredential("scripted-tenant-default");
    provider.behaviour = { kind: "json", body: { access_token: "md-1", token_type: "Bearer", refresh_token: "mdr-1", expires_in: 30 } };
    const { authorizeUrl, connectionId } = await connect(credentialId);
    expect(`${authorizeUrl.origin}${authorizeUrl.pathname}`).toBe(`${provider.issuer}/t/common/authorize`);
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.metadata).toEqual({ tenant: "common" });
    const { deleted } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "md-2", token_type: "Bearer", expires_in: 3600 } });
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    expect(provider.requests.map((r) => r.path)).toEqual(["/t/common/token", "/t/common/token", "/t/common/revoke"]);
    // A value given still wins over the default.
    const other = await connect(credentialId, { connectionConfig: { tenant: "contoso" } });
    expect(other.authorizeUrl.pathname).toBe("/t/contoso/authorize");
  });

  it("a templated endpoint (Microsoft-style {tenant} path segment): initialise, exchange, refresh and revoke all go to the connection's tenant", async () => {
    const credentialId = await providerCredential("scripted-tenant");
    provider.behaviour = { kind: "json", body: { access_token: "ms-1", token_type: "Bearer", refresh_token: "msr-1", expires_in: 30 } };
    const { authorizeUrl, connectionId } = await connect(credentialId, { connectionConfig: { tenant: "contoso" } });
    expect(`${authorizeUrl.origin}${authorizeUrl.pathname}`).toBe(`${provider.issuer}/t/contoso/authorize`);
    expect(authorizeUrl.searchParams.get("prompt")).toBeNull();
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.metadata).toEqual({ tenant: "contoso" });
    const listed = await connections.listConnections({ organisationId: "acme", credentialId });
    expect(listed.connections.map((c) => c.metadata)).toEqual([{ tenant: "contoso" }]);
    const { token, deleted } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "ms-2", token_type: "Bearer", expires_in: 3600 } });
    expect(token).toMatchObject({ accessToken: "ms-2", metadata: { tenant: "contoso" } });
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    expect(provider.requests.map((r) => r.path)).toEqual(["/t/contoso/token", "/t/contoso/token", "/t/contoso/revoke"]);
  });
});

describe("token-request variations and metadata requests", () => {
  it("a renamed client parameter (TikTok's client_key) and extra exchange and refresh parameters (Pinterest's continuous_refresh)", async () => {
    const credentialId = await providerCredential("scripted-renamed");
    provider.behaviour = { kind: "json", body: { access_token: "tt-1", token_type: "Bearer", refresh_token: "ttr-1", expires_in: 30 } };
    const { connectionId } = await connect(credentialId);
    const [exchange] = provider.grants("authorization_code");
    expect(exchange!.form.get("client_key")).toBe("client-1");
    expect(exchange!.form.get("client_secret")).toBe("scripted-client-secret");
    expect(exchange!.form.has("client_id")).toBe(false);
    expect(exchange!.form.get("continuous_refresh")).toBe("true");
    expect(exchange!.authorization).toBeUndefined();
    await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "tt-2", token_type: "Bearer", expires_in: 3600 } });
    const [refresh] = provider.grants("refresh_token");
    expect(refresh!.form.get("client_key")).toBe("client-1");
    expect(refresh!.form.get("refresh_mode")).toBe("rotate");
    expect(refresh!.form.has("continuous_refresh")).toBe(false);
    // Revocation authenticates the same way (RFC 7009 §2.1), with the provider's names.
    expect(provider.requests.find((r) => r.path === "/revoke")!.form.get("client_key")).toBe("client-1");
  });

  it("reads metadata from documented requests after the exchange (Mailchimp's dc, Xero's tenant) and renders the API from it", async () => {
    const credentialId = await providerCredential("scripted-metadata");
    provider.behaviour = { kind: "json", body: { access_token: "mc-1", token_type: "bearer" } };
    provider.metadataAnswers = {
      "/m/oauth2/metadata": { status: 200, body: { dc: "us6", api_endpoint: "https://us6.api.mailchimp.example", accountname: "Acme Ltd", login: { email: "a@example.com" } } },
      "/m/connections": { status: 200, body: [{ tenantId: "7d0e1a2b-3c4d", tenantName: "Acme NZ", tenantType: "ORGANISATION" }, { tenantId: "other" }] },
    };
    const { connectionId } = await connect(credentialId);
    expect(provider.metadataRequests).toEqual([
      { method: "GET", path: "/m/oauth2/metadata", authorization: "OAuth mc-1" },
      { method: "GET", path: "/m/connections", authorization: "Bearer mc-1" },
    ]);
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.metadata).toEqual({
      dc: "us6", api_endpoint: "https://us6.api.mailchimp.example", account_name: "Acme Ltd", tenant_id: "7d0e1a2b-3c4d", tenant_name: "Acme NZ",
    });
    expect(connection!.apiBaseUrl).toBe("https://us6.api.mailchimp.example/3.0");
    expect(connection!.api!.baseUrls.map((b) => b.url)).toEqual(["https://us6.api.mailchimp.example/3.0", "https://us6.api.mailchimp.example/3.0"]);
    expect(connection!.api!.headers).toEqual({ "xero-tenant-id": "7d0e1a2b-3c4d" });
  });

  it("untrusted metadata: a dc that is not one DNS label, an internal api_endpoint and an overlong value are not used for the API", async () => {
    const credentialId = await providerCredential("scripted-metadata");
    provider.behaviour = { kind: "json", body: { access_token: "mc-2", token_type: "bearer" } };
    provider.metadataAnswers = {
      "/m/oauth2/metadata": { status: 200, body: { dc: "evil.com/x", api_endpoint: "https://169.254.169.254", accountname: "x".repeat(600) } },
      "/m/connections": { status: 200, body: [{ tenantId: "bad\r\nheader" }] },
    };
    const { connectionId } = await connect(credentialId);
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.metadata).toEqual({ dc: "evil.com/x", api_endpoint: "https://169.254.169.254" });
    expect(connection!.apiBaseUrl).toBe("");
    expect(connection!.api).toBeUndefined();
  });

  it("a failed metadata request leaves its values out, and the connection is still made", async () => {
    const credentialId = await providerCredential("scripted-metadata");
    provider.behaviour = { kind: "json", body: { access_token: "mc-3", token_type: "bearer" } };
    provider.metadataAnswers = { "/m/connections": { status: 200, body: [{ tenantId: "t-1" }] } };
    const { connectionId } = await connect(credentialId);
    const { connection } = await connections.getConnection({ organisationId: "acme", id: connectionId });
    expect(connection!.metadata).toEqual({ tenant_id: "t-1" });
    expect(connection!.apiBaseUrl).toBe("");
    expect(broker.logs.some((line) => line.outcome === "metadata_request_failed")).toBe(true);
  });
});

describe("revocation as each provider documents it", () => {
  /** Connects with one token response, then deletes the connection with revoke. */
  async function connectAndRevoke(providerId: string, body: Record<string, unknown>, clientId = "client-1") {
    const credentialId = await providerCredential(providerId, { clientId });
    provider.behaviour = { kind: "json", body };
    const { connectionId } = await connect(credentialId, { clientId });
    return connections.deleteConnection({ organisationId: "acme", id: connectionId, revoke: true });
  }

  it("a JSON body with HTTP Basic client credentials and a version header (Notion)", async () => {
    const deleted = await connectAndRevoke("scripted-revoke-json", { access_token: "ntn-r1", token_type: "bearer", refresh_token: "ntnr-r1" }, "0f1e2d3c-4b5a");
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    const [request] = provider.revocations;
    expect(request).toMatchObject({ method: "POST", path: "/r/v1/oauth/revoke", contentType: "application/json" });
    expect(JSON.parse(request!.body)).toEqual({ token: "ntnr-r1" });
    expect(Buffer.from(request!.authorization!.replace(/^Basic /, ""), "base64").toString()).toBe("0f1e2d3c-4b5a:scripted-client-secret");
    expect(request!.headers["notion-version"]).toBe("2022-06-28");
  });

  it("DELETE /applications/{client_id}/grant with the access token in a JSON body and 204 (GitHub)", async () => {
    provider.revocationAnswer = { status: 204, body: undefined };
    const deleted = await connectAndRevoke("scripted-revoke-grant", { access_token: "gho-r1", token_type: "bearer" }, "Iv1.abc-def");
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    const [request] = provider.revocations;
    expect(request).toMatchObject({ method: "DELETE", path: "/r/applications/Iv1.abc-def/grant" });
    expect(JSON.parse(request!.body)).toEqual({ access_token: "gho-r1" });
    expect(Buffer.from(request!.authorization!.replace(/^Basic /, ""), "base64").toString()).toBe("Iv1.abc-def:scripted-client-secret");
  });

  it("a success status the provider does not document is a failed revocation, and the connection is kept when asked", async () => {
    const credentialId = await providerCredential("scripted-revoke-grant");
    provider.behaviour = { kind: "json", body: { access_token: "gho-r2", token_type: "bearer" } };
    const { connectionId } = await connect(credentialId);
    provider.revocationAnswer = { status: 422, body: { message: "Validation Failed" } };
    const error = await connectError(connections.deleteConnection({ organisationId: "acme", id: connectionId, revoke: true, keepIfRevocationFails: true }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toBe("revocation failed (HTTP 422) and the connection was kept");
    expect((await connections.getConnection({ organisationId: "acme", id: connectionId })).connection!.id).toBe(connectionId);
  });

  it("the token in the query, no client authentication", async () => {
    const deleted = await connectAndRevoke("scripted-revoke-query", { access_token: "q-r1", token_type: "bearer", refresh_token: "qr-r1" });
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    const [request] = provider.revocations;
    expect(request).toMatchObject({ method: "POST", path: "/r/deauthorize?access_token=q-r1", authorization: undefined, body: "" });
  });

  it("the token as the bearer credential, and an HTTP 200 ok false is a failure (Slack's auth.revoke)", async () => {
    const deleted = await connectAndRevoke("scripted-revoke-bearer", { ok: true, access_token: "xoxb-r1", token_type: "bot" });
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    expect(provider.revocations[0]).toMatchObject({ method: "GET", path: "/r/api/auth.revoke", authorization: "Bearer xoxb-r1", body: "" });
    provider.revocationAnswer = { status: 200, body: { ok: false, error: "invalid_auth" } };
    const failed = await connectAndRevoke("scripted-revoke-bearer", { ok: true, access_token: "xoxb-r2", token_type: "bot" });
    expect(failed).toMatchObject({ revocation: RevocationOutcome.FAILED, revocationError: "invalid_auth" });
  });

  it("a provider without revocation answers NOT_SUPPORTED and sends nothing", async () => {
    const deleted = await connectAndRevoke("scripted-revoke-none", { access_token: "n-r1", token_type: "bearer", refresh_token: "nr-r1" });
    expect(deleted.revocation).toBe(RevocationOutcome.NOT_SUPPORTED);
    expect(provider.requests.filter((r) => r.path.endsWith("/revoke"))).toEqual([]);
    expect(provider.revocations).toEqual([]);
  });
});

describe("HTTP Basic client credentials (RFC 6749 §2.3.1)", () => {
  it("form-encodes what needs it: a provider that form-decodes reads a secret with + % : space and non-ASCII", async () => {
    const secret = "s+e%c:r eét☃-_.~!*";
    recordSecrets(secret);
    const credentialId = await providerCredential("scripted-basic-form", { clientId: "app.client_1", clientSecret: secret });
    provider.basicCheck = { decode: "form", clientId: "app.client_1", clientSecret: secret };
    provider.behaviour = { kind: "json", body: { access_token: "bf-1", token_type: "Bearer", refresh_token: "bfr-1", expires_in: 30 } };
    const { connectionId } = await connect(credentialId, { clientId: "app.client_1" });
    const [exchange] = provider.grants("authorization_code");
    const sent = Buffer.from(exchange!.authorization!.replace(/^Basic /, ""), "base64").toString();
    expect(sent).toBe("app.client_1:s%2Be%25c%3Ar+e%C3%A9t%E2%98%83-_.~%21%2A");
    const { token } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "bf-2", token_type: "Bearer", expires_in: 3600 } });
    expect(token.accessToken).toBe("bf-2");
  });

  it("leaves unreserved characters as they are, so a provider that compares raw accepts IDs with - _ . ~", async () => {
    const clientId = "3f2a-b_c.d~e";
    const credentialId = await providerCredential("scripted-basic-form", { clientId, clientSecret: "secret-_.~value" });
    provider.basicCheck = { decode: "raw", clientId, clientSecret: "secret-_.~value" };
    provider.behaviour = { kind: "json", body: { access_token: "br-1", token_type: "Bearer", refresh_token: "brr-1", expires_in: 30 } };
    const { connectionId } = await connect(credentialId, { clientId });
    const { token } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "br-2", token_type: "Bearer", expires_in: 3600 } });
    expect(token.accessToken).toBe("br-2");
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it("basic_encoding raw (Notion's docs) sends <id>:<secret> exactly, even characters form-encoding would change", async () => {
    const clientId = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const secret = "secret_a+b/c=d";
    recordSecrets(secret);
    const credentialId = await providerCredential("scripted-basic-raw", { clientId, clientSecret: secret });
    provider.basicCheck = { decode: "raw", clientId, clientSecret: secret };
    provider.behaviour = { kind: "json", body: { access_token: "nr-1", token_type: "Bearer", refresh_token: "nrr-1", expires_in: 30 } };
    const { connectionId } = await connect(credentialId, { clientId });
    const { token } = await refreshAndRevoke(connectionId, { kind: "json", body: { access_token: "nr-2", token_type: "Bearer", expires_in: 3600 } });
    expect(token.accessToken).toBe("nr-2");
  });

  it("a provider that compares raw refuses a form-encoded + (why raw exists), and the callback says the exchange failed", async () => {
    const secret = "secret_a+b";
    recordSecrets(secret);
    const credentialId = await providerCredential("scripted-basic-form", { clientSecret: secret });
    provider.basicCheck = { decode: "raw", clientId: "client-1", clientSecret: secret };
    const { url } = await connections.initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "quirks",
      credential: { id: credentialId, organisationId: "acme" },
      clientId: "client-1",
      scopes: ["read"],
    });
    const state = new URL(url).searchParams.get("state")!;
    recordSecrets(state);
    const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-x`);
    expect(response.status).not.toBe(200);
    expect(provider.grants("authorization_code")).toHaveLength(1);
  });
});

describe("hostile connection_config", () => {
  const count = () => countStates(broker.database.db);
  const initialise = (credentialId: string, connectionConfig: Record<string, string>) =>
    connectError(
      connections.initialiseOAuth2Connection({
        organisationId: "acme",
        connectorId: "quirks",
        credential: { id: credentialId, organisationId: "acme" },
        clientId: "client-1",
        scopes: ["read"],
        connectionConfig,
      }),
    );

  it.each<[string, Record<string, string>, string]>([
    ["a path", { tenant: "evil.com/x" }, '"connection_config.tenant" does not match the pattern of provider "scripted-tenant" (see GetProvider)'],
    ["user info", { tenant: "a@b" }, '"connection_config.tenant" does not match the pattern of provider "scripted-tenant" (see GetProvider)'],
    ["another domain", { tenant: "acme.evil.com" }, '"connection_config.tenant" does not match the pattern of provider "scripted-tenant" (see GetProvider)'],
    ["a dot segment", { tenant: ".." }, '"connection_config.tenant" does not match the pattern of provider "scripted-tenant" (see GetProvider)'],
    ["a missing parameter", {}, '"connection_config.tenant" is required by provider "scripted-tenant"'],
    ["an unknown key", { tenant: "acme", host: "evil.com" }, '"connection_config.host" is not a parameter of provider "scripted-tenant"'],
  ])("refuses %s with INVALID_ARGUMENT and stores nothing", async (_label, connectionConfig, message) => {
    const credentialId = await providerCredential("scripted-tenant");
    const before = await count();
    const error = await initialise(credentialId, connectionConfig);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
    expect(await count()).toBe(before);
  });

  it("refuses a credential-level key in connection_config", async () => {
    const credentialId = await providerCredential("scripted-domain", { providerConfig: { domain: "dev-1.okta.example" } });
    const error = await initialise(credentialId, { domain: "evil.com" });
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("\"connection_config.domain\" is a credential-level parameter (set it in the credential's provider_config)");
  });

  it("refuses a host label that would leave the fixed domain (Zendesk-style), before anything is stored", async () => {
    const credentialId = await providerCredential("scripted-zendesk");
    const before = await count();
    const error = await initialise(credentialId, { subdomain: "acme.evil.com" });
    expect(error.rawMessage).toBe('"connection_config.subdomain" does not match the pattern of provider "scripted-zendesk" (see GetProvider)');
    expect(await count()).toBe(before);
    // A good value builds the URL under the fixed domain (not called: loopback has no such host).
    const { url } = await connections.initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "quirks",
      credential: { id: credentialId, organisationId: "acme" },
      clientId: "client-1",
      connectionConfig: { subdomain: "acme" },
    });
    recordSecrets(new URL(url).searchParams.get("state"));
    expect(new URL(url).origin).toBe("https://acme.zendesk.com");
  });
});

describe("discovery for a credential with only an issuer", () => {
  it("fills the token, revocation and userinfo endpoints and iss support from the issuer's metadata", async () => {
    const { credential } = await credentials.createCredential({
      credential: { organisationId: "acme", name: "d", clientId: "client-1", clientSecret: "scripted-client-secret", issuer: provider.issuer },
    });
    expect(credential).toMatchObject({
      tokenUrl: provider.tokenUrl,
      revocationUrl: provider.revocationUrl,
      userinfoUrl: `${provider.issuer}/userinfo`,
      authorizationResponseIssParameterSupported: true,
      disablePkce: false,
    });
  });

  it("refuses an issuer with no discovery document, naming the field, and stores nothing", async () => {
    const before = await broker.database.db.collection("credentials").countDocuments();
    const error = await connectError(
      credentials.createCredential({
        credential: { organisationId: "acme", name: "d", clientId: "client-1", clientSecret: "scripted-client-secret", issuer: `${provider.issuer}/elsewhere` },
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe('"credential.issuer" has no usable discovery document (set token_url instead)');
    expect(await broker.database.db.collection("credentials").countDocuments()).toBe(before);
  });
});

describe("start-up", () => {
  it("refuses to start with a catalog entry that breaks a rule", async () => {
    const bad = writeCatalog([
      {
        id: "bad",
        display_name: "Bad",
        category: "other",
        documentation_url: "https://example.com/docs",
        endpoints: { authorize: "https://auth.example.com/a", token: "http://auth.example.com/t" },
        sources: { endpoints: "https://example.com/docs", authorize: "https://example.com/docs", token: "https://example.com/docs" },
      },
    ]);
    await expect(startTestBroker({ BROKER_PROVIDERS_DIR: bad })).rejects.toThrow("providers/bad.yaml: endpoints.token must be an https URL");
  });
});

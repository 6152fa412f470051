import { type Client, Code } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApiTokenLocation, ConnectionKind, ConnectionService, ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CreateConnectionRequestSchema } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { DEMO_API_RESOURCE, type DemoOidcProvider, startOidcProvider } from "../../scripts/demo-provider.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { writeCatalog } from "../support/test-catalog.js";

/** Catalog entries for the scripted provider that say which grants it supports (the catalog's `grants`). */
function grantEntries(base: string): Array<Record<string, unknown>> {
  const docs = "https://example.com/docs";
  const entry = (id: string, grants: Record<string, unknown>) => ({
    id,
    display_name: id,
    documentation_url: docs,
    endpoints: { authorize: `${base}/authorize`, token: `${base}/token` },
    grants,
    sources: { endpoints: docs, authorize: docs, token: docs, grants: docs },
  });
  return [
    {
      ...entry("scripted-service", { types: ["client_credentials"], audiences: ["https://api.one.example/"] }),
      // An API that takes its key in a header of its own, as the catalog's `api` says.
      api: { base_urls: [{ name: "rest", url: `${base}/api` }], token: { in: "header", name: "X-Api-Key" } },
      sources: { endpoints: docs, authorize: docs, token: docs, grants: docs, api: docs },
    },
    entry("scripted-code-only", { types: ["authorization_code", "refresh_token"] }),
  ];
}

/** Connections made without a browser: client credentials, imports, static API keys and Basic pairs. */
let broker: TestBroker;
let oidc: DemoOidcProvider;
let scripted: ScriptedProvider;
let connections: Client<typeof ConnectionService>;
let oidcCredentialId: string;

const OIDC_CLIENT = { clientId: "cc-client", clientSecret: "cc-client-secret-0123456789", redirectUri: "http://127.0.0.1:8080/oauth2/callback" };
recordSecrets(OIDC_CLIENT.clientSecret);

beforeAll(async () => {
  oidc = await startOidcProvider(OIDC_CLIENT, { clientCredentials: true });
  scripted = await ScriptedProvider.start();
  broker = await startTestBroker({
    BROKER_TOKEN_REQUEST_TIMEOUT: "1s",
    BROKER_REFRESH_RETRY_MIN: "300ms",
    BROKER_PROVIDERS_DIR: writeCatalog(grantEntries(scripted.issuer)),
  });
  connections = broker.connect(ConnectionService);
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: { organisationId: "acme", name: "oidc-provider", clientId: OIDC_CLIENT.clientId, clientSecret: OIDC_CLIENT.clientSecret, tokenUrl: `${oidc.issuer}/token` },
  });
  oidcCredentialId = credential!.id;
});
afterAll(async () => {
  await broker.close();
  await oidc.close();
  await scripted.close();
});
beforeEach(() => {
  scripted.requests.length = 0;
  scripted.refreshBehaviour = undefined;
  scripted.refreshQueue.length = 0;
});

type CreateInit = MessageInitShape<typeof CreateConnectionRequestSchema>;
const create = (init: Omit<CreateInit, "organisationId" | "connectorId">) => connections.createConnection({ organisationId: "acme", connectorId: "kinds", ...init } as CreateInit);
const clientCredentials = (fields: Record<string, unknown> = {}) =>
  create({ kind: { case: "clientCredentials", value: { credential: { id: oidcCredentialId, organisationId: "acme" }, scopes: ["api:read"], ...fields } } });
const connectionCount = () => broker.database.db.collection("connections").countDocuments({});
const stored = (id: string) => broker.database.db.collection("connections").findOne({ _id: id as never });

/** Asks oidc-provider itself (RFC 7662) what it knows of a token. */
async function introspect(token: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${oidc.issuer}/token/introspection`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${OIDC_CLIENT.clientId}:${OIDC_CLIENT.clientSecret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token }),
  });
  return (await response.json()) as Record<string, unknown>;
}

async function accessToken(connectionId: string, forceRefresh = false) {
  const response = await connections.getAccessToken({ organisationId: "acme", connectionId, forceRefresh });
  recordSecrets(response.accessToken);
  return response;
}

/** Every event the broker published for a connection, once the relay has published `count`. */
async function eventsOf(connectionId: string, count: number) {
  await expect.poll(async () => (await connections.listConnectionEvents({ organisationId: "acme", connectionId })).events.length, { timeout: 15_000 }).toBe(count);
  return (await connections.listConnectionEvents({ organisationId: "acme", connectionId })).events;
}

describe("client credentials against oidc-provider", () => {
  it("obtains the first token at creation, hands it out, and sends connection.created", async () => {
    const { connection, created } = await clientCredentials();
    expect(created).toBe(true);
    expect(connection).toMatchObject({ kind: ConnectionKind.CLIENT_CREDENTIALS, status: ConnectionStatus.ACTIVE, hasRefreshToken: false, scopes: ["api:read"] });
    const token = await accessToken(connection!.id);
    expect(token.tokenType).toBe("bearer");
    const facts = await introspect(token.accessToken);
    expect(facts).toMatchObject({ active: true, client_id: OIDC_CLIENT.clientId, scope: "api:read" });
    expect(facts.sub).toBeUndefined(); // a client's own token: no end user
    const [event] = await eventsOf(connection!.id, 1);
    expect(event).toMatchObject({ type: "connection.created", status: ConnectionStatus.ACTIVE });
  });

  it("fails at once with the provider's error when the credential is wrong, and stores nothing", async () => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "wrong secret", clientId: OIDC_CLIENT.clientId, clientSecret: "not-the-client-secret", tokenUrl: `${oidc.issuer}/token` },
    });
    recordSecrets("not-the-client-secret");
    const before = await connectionCount();
    const error = await connectError(
      create({ kind: { case: "clientCredentials", value: { credential: { id: credential!.id, organisationId: "acme" }, scopes: ["api:read"] } } }),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the provider refused the token request (invalid_client) and nothing was stored");
    expect(await connectionCount()).toBe(before);
  });

  it("asks for an RFC 8707 resource, and names the provider's invalid_target for one it does not know", async () => {
    const { connection } = await clientCredentials({ resource: [DEMO_API_RESOURCE], scopes: ["api:read", "api:write"] });
    const facts = await introspect((await accessToken(connection!.id)).accessToken);
    expect(facts).toMatchObject({ active: true, aud: DEMO_API_RESOURCE, scope: "api:read api:write" });
    const before = await connectionCount();
    const error = await connectError(clientCredentials({ resource: ["https://elsewhere.example/"] }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toContain("(invalid_target)");
    expect(await connectionCount()).toBe(before);
  });

  it("obtains a new token on force_refresh, at most once per 10 seconds", async () => {
    const { connection } = await clientCredentials();
    const first = await accessToken(connection!.id);
    const forced = await accessToken(connection!.id, true);
    expect(forced.accessToken).not.toBe(first.accessToken);
    expect(await introspect(forced.accessToken)).toMatchObject({ active: true, scope: "api:read" });
    // Within the window, a second force gets the token the first produced.
    expect((await accessToken(connection!.id, true)).accessToken).toBe(forced.accessToken);
    expect((await stored(connection!.id))?.status).toBe("ACTIVE");
  });
});

describe("client credentials renewal (scripted provider)", () => {
  let credentialId: string;
  beforeAll(async () => {
    credentialId = await createScriptedCredential(broker, scripted);
  });
  const make = async (fields: Record<string, unknown> = {}) => {
    const { connection } = await create({
      kind: { case: "clientCredentials", value: { credential: { id: credentialId, organisationId: "acme" }, scopes: ["read", "write"], ...fields } },
    });
    return connection!.id;
  };

  it("repeats the grant with the same scopes, resources and audience before the token expires; concurrent callers share one request", async () => {
    scripted.behaviour = { kind: "json", body: { access_token: "cc-short-lived-1", token_type: "Bearer", expires_in: 30 } };
    const id = await make({ resource: ["https://a.example/", "https://b.example/"], audience: "https://api.example/" });
    scripted.behaviour = { kind: "json", body: { access_token: "cc-renewed-2", token_type: "Bearer", expires_in: 3600 }, delayMs: 200 };
    // 30 s left is inside the 60 s margin: renewed, once for all five callers.
    const tokens = await Promise.all(Array.from({ length: 5 }, () => accessToken(id)));
    expect(new Set(tokens.map((token) => token.accessToken))).toEqual(new Set(["cc-renewed-2"]));
    const requests = scripted.grants("client_credentials");
    expect(requests).toHaveLength(2); // creation and one renewal
    for (const request of requests) {
      expect(request.form.get("scope")).toBe("read write");
      expect(request.form.getAll("resource")).toEqual(["https://a.example/", "https://b.example/"]);
      expect(request.form.get("audience")).toBe("https://api.example/");
      expect(request.authorization).toMatch(/^Basic /);
    }
    expect(scripted.grants("refresh_token")).toHaveLength(0);
  });

  it("backs off on a refused renewal without needing reauthorization, and recovers when the provider accepts again", async () => {
    scripted.behaviour = { kind: "json", body: { access_token: "cc-short-lived-3", token_type: "Bearer", expires_in: 1 } };
    const id = await make();
    scripted.behaviour = { kind: "raw", status: 401, contentType: "application/json", body: '{"error":"invalid_client"}' };
    const error = await connectError(accessToken(id));
    expect(error.code).toBe(Code.Unavailable);
    expect(await stored(id)).toMatchObject({ status: "REFRESH_FAILED", status_reason: "invalid_client" });
    scripted.behaviour = { kind: "json", body: { access_token: "cc-recovered-4", token_type: "Bearer", expires_in: 3600 } };
    await expect.poll(async () => (await accessToken(id).catch(() => undefined))?.accessToken, { timeout: 15_000, interval: 200 }).toBe("cc-recovered-4");
    expect(await stored(id)).toMatchObject({ status: "ACTIVE" });
    const types = (await eventsOf(id, 3)).map((event) => event.type);
    expect(types).toEqual(["connection.recovered", "connection.refresh_failed", "connection.created"]);
  });
});

describe("client credentials and the catalog's grants", () => {
  const withProvider = async (provider: string) => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: provider, provider, clientId: "client-1", clientSecret: "scripted-client-secret" },
    });
    return { id: credential!.id, organisationId: "acme" };
  };

  it("sends an audience the catalog lists, refuses one it does not, and refuses a provider without the grant", async () => {
    const credential = await withProvider("scripted-service");
    scripted.behaviour = { kind: "json", body: { access_token: "cc-catalog-1", token_type: "Bearer", expires_in: 3600 } };
    const { connection } = await create({ kind: { case: "clientCredentials", value: { credential, audience: "https://api.one.example/" } } });
    expect(connection!.kind).toBe(ConnectionKind.CLIENT_CREDENTIALS);
    expect(scripted.grants("client_credentials").map((request) => request.form.get("audience"))).toEqual(["https://api.one.example/"]);
    const before = await connectionCount();
    const other = await connectError(create({ kind: { case: "clientCredentials", value: { credential, audience: "https://api.two.example/" } } }));
    expect(other.code).toBe(Code.InvalidArgument);
    expect(other.rawMessage).toBe(`"client_credentials.audience" is not one of the provider's audiences (see GetProvider)`);
    const codeOnly = await connectError(create({ kind: { case: "clientCredentials", value: { credential: await withProvider("scripted-code-only") } } }));
    expect(codeOnly.code).toBe(Code.FailedPrecondition);
    expect(codeOnly.rawMessage).toBe("the credential's provider does not support the client credentials grant");
    expect(await connectionCount()).toBe(before);
    expect(scripted.grants("client_credentials")).toHaveLength(1);
  });
});

describe("imported connections", () => {
  let credentialId: string;
  beforeAll(async () => {
    credentialId = await createScriptedCredential(broker, scripted);
  });
  const importTokens = (fields: Record<string, unknown>) =>
    create({ kind: { case: "imported", value: { credential: { id: credentialId, organisationId: "acme" }, scopes: ["read"], ...fields } } });

  it("stores the tokens as given, and a re-run with the same import_id returns the same connection unchanged", async () => {
    recordSecrets("imported-at-1", "imported-rt-1", "imported-at-2", "imported-rt-2");
    const expireTime = timestampFromDate(new Date(Date.now() + 3600_000));
    const first = await importTokens({
      importId: "legacy-row-1",
      accessToken: "imported-at-1",
      refreshToken: "imported-rt-1",
      expireTime,
      externalAccount: { id: "user-42", email: "u42@example.com" },
      metadata: { legacy_system: "crm" },
    });
    expect(first.created).toBe(true);
    expect(first.connection).toMatchObject({ kind: ConnectionKind.IMPORTED, status: ConnectionStatus.ACTIVE, hasRefreshToken: true, metadata: { legacy_system: "crm" } });
    expect(first.connection!.externalAccount).toMatchObject({ id: "user-42", email: "u42@example.com" });
    expect((await accessToken(first.connection!.id)).accessToken).toBe("imported-at-1");
    const again = await importTokens({ importId: "legacy-row-1", accessToken: "imported-at-2", refreshToken: "imported-rt-2", expireTime });
    expect(again.created).toBe(false);
    expect(again.connection!.id).toBe(first.connection!.id);
    expect((await accessToken(first.connection!.id)).accessToken).toBe("imported-at-1");
    expect(scripted.requests).toHaveLength(0);
    expect(await eventsOf(first.connection!.id, 1)).toMatchObject([{ type: "connection.created" }]);
  });

  it("refreshes an expired import like any connection", async () => {
    recordSecrets("imported-at-3", "imported-rt-3");
    const { connection } = await importTokens({ importId: "legacy-row-2", accessToken: "imported-at-3", refreshToken: "imported-rt-3", expireTime: timestampFromDate(new Date(Date.now() - 1000)) });
    scripted.refreshBehaviour = { kind: "json", body: { access_token: "imported-at-4", token_type: "Bearer", expires_in: 3600, refresh_token: "imported-rt-4" } };
    expect((await accessToken(connection!.id)).accessToken).toBe("imported-at-4");
    expect(scripted.grants("refresh_token").map((request) => request.form.get("refresh_token"))).toEqual(["imported-rt-3"]);
  });

  it("with check_refresh, stores the refreshed tokens; a refused refresh token stores nothing and leaves the import_id free", async () => {
    recordSecrets("imported-at-5", "imported-rt-5", "imported-at-6");
    scripted.refreshBehaviour = { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' };
    const before = await connectionCount();
    const error = await connectError(importTokens({ importId: "legacy-row-3", accessToken: "imported-at-5", refreshToken: "imported-rt-5", checkRefresh: true }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the provider refused the token request (invalid_grant) and nothing was stored");
    expect(await connectionCount()).toBe(before);
    // The provider does not rotate here: the given refresh token stays.
    scripted.refreshBehaviour = { kind: "json", body: { access_token: "imported-at-6", token_type: "Bearer", expires_in: 3600 } };
    const { connection, created } = await importTokens({ importId: "legacy-row-3", accessToken: "imported-at-5", refreshToken: "imported-rt-5", checkRefresh: true });
    expect(created).toBe(true);
    expect((await accessToken(connection!.id)).accessToken).toBe("imported-at-6");
    expect(scripted.grants("refresh_token")).toHaveLength(2);
    expect((await stored(connection!.id))?.refresh_token).toBeDefined();
  });

  it("eight concurrent imports of one import_id make one connection (a run that found the claim before its insert completed it again: INTERNAL)", async () => {
    recordSecrets("imported-at-7", "imported-rt-7");
    const fields = { importId: "legacy-row-4", accessToken: "imported-at-7", refreshToken: "imported-rt-7" };
    const results = await Promise.all(Array.from({ length: 8 }, () => importTokens(fields)));
    expect(new Set(results.map((result) => result.connection!.id)).size).toBe(1);
    expect(results.filter((result) => result.created)).toHaveLength(1);
  });
});

describe("static credentials", () => {
  it("hands out an API key as stored, forced or not, never calling a provider, and replaces it in place", async () => {
    recordSecrets("static-api-key-1", "static-api-key-2");
    const { connection } = await create({ kind: { case: "apiKey", value: { apiKey: "static-api-key-1" } } });
    expect(connection).toMatchObject({ kind: ConnectionKind.API_KEY, status: ConnectionStatus.ACTIVE, tokenType: "api_key", credentialId: "" });
    const token = await accessToken(connection!.id);
    expect(token).toMatchObject({ accessToken: "static-api-key-1", tokenType: "api_key" });
    expect(token.expireTime).toBeUndefined();
    expect((await accessToken(connection!.id, true)).accessToken).toBe("static-api-key-1");
    const replaced = await connections.replaceStaticConnection({ organisationId: "acme", id: connection!.id, apiKey: "static-api-key-2" });
    expect(replaced.connection!.id).toBe(connection!.id);
    expect((await accessToken(connection!.id)).accessToken).toBe("static-api-key-2");
    expect((await eventsOf(connection!.id, 2)).map((event) => event.type)).toEqual(["connection.reauthorized", "connection.created"]);
    const mismatch = await connectError(connections.replaceStaticConnection({ organisationId: "acme", id: connection!.id, username: "u", password: "static-pw-x" }));
    expect(mismatch.code).toBe(Code.FailedPrecondition);
    expect(mismatch.rawMessage).toBe("the connection is not of kind BASIC");
    expect(scripted.requests).toHaveLength(0);
  });

  it("says which header takes the key where the catalog knows it", async () => {
    recordSecrets("static-api-key-3");
    const { connection } = await create({ kind: { case: "apiKey", value: { apiKey: "static-api-key-3", provider: "scripted-service" } } });
    const token = await accessToken(connection!.id);
    expect(token).toMatchObject({ accessToken: "static-api-key-3", tokenType: "api_key", apiBaseUrl: `${scripted.issuer}/api` });
    expect(token.api?.tokenPlacement).toMatchObject({ location: ApiTokenLocation.HEADER, name: "X-Api-Key", scheme: "" });
  });

  it("hands out a Basic pair as base64(username:password) (RFC 7617)", async () => {
    recordSecrets("static-password-1", Buffer.from("svc-user:static-password-1").toString("base64"));
    const { connection } = await create({ kind: { case: "basic", value: { username: "svc-user", password: "static-password-1" } } });
    expect(connection!.kind).toBe(ConnectionKind.BASIC);
    const token = await accessToken(connection!.id);
    expect(token.tokenType).toBe("basic");
    expect(Buffer.from(token.accessToken, "base64").toString("utf8")).toBe("svc-user:static-password-1");
    // Stored encrypted: neither half of the pair is in the document.
    const document = JSON.stringify(await stored(connection!.id));
    expect(document).not.toContain("static-password-1");
    expect(document).not.toContain(token.accessToken);
  });
});

describe("bad input", () => {
  // Checked before the credential is read: any ID will do.
  const cred = () => ({ id: "any-credential", organisationId: "acme" });
  const cases: Array<[string, Omit<CreateInit, "organisationId" | "connectorId"> & { connectorId?: string }, string]> = [
    ["no kind", {}, '"kind" is required (client_credentials or jwt_bearer or imported or api_key or basic)'],
    ["bad connector", { connectorId: "no spaces", kind: { case: "apiKey", value: { apiKey: "static-api-key-9" } } }, '"connector_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -'],
    ["no credential", { kind: { case: "clientCredentials", value: { scopes: ["a"] } } }, '"client_credentials.credential" is required'],
    ["bad scope", { kind: { case: "clientCredentials", value: { credential: cred(), scopes: ["a b"] } } }, '"client_credentials.scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
    ["bad resource", { kind: { case: "clientCredentials", value: { credential: cred(), resource: ["not a uri"] } } }, '"client_credentials.resource[0]" must be an absolute URI'],
    ["resource with fragment", { kind: { case: "clientCredentials", value: { credential: cred(), resource: ["https://a.example/#x"] } } }, '"client_credentials.resource[0]" must not contain a fragment'],
    ["import without import_id", { kind: { case: "imported", value: { credential: cred(), accessToken: "imported-at-9" } } }, '"imported.import_id" is required'],
    ["import without access token", { kind: { case: "imported", value: { credential: cred(), importId: "x" } } }, '"imported.access_token" is required'],
    ["check without refresh token", { kind: { case: "imported", value: { credential: cred(), importId: "x", accessToken: "imported-at-9", checkRefresh: true } } }, '"imported.refresh_token" is required with "check_refresh"'],
    ["bad token type", { kind: { case: "imported", value: { credential: cred(), importId: "x", accessToken: "imported-at-9", tokenType: "mac token" } } }, '"imported.token_type" must be 1 to 64 characters of A-Z a-z 0-9 _ -'],
    ["bad metadata key", { kind: { case: "imported", value: { credential: cred(), importId: "x", accessToken: "imported-at-9", metadata: { "Bad-Key": "v" } } } }, '"imported.metadata.Bad-Key" must be a key of 1 to 64 characters of a-z 0-9 _'],
    ["account without id", { kind: { case: "imported", value: { credential: cred(), importId: "x", accessToken: "imported-at-9", externalAccount: { email: "a@b.c" } } } }, '"imported.external_account.id" is required'],
    ["empty api key", { kind: { case: "apiKey", value: { apiKey: "" } } }, '"api_key.api_key" is required'],
    ["unknown provider", { kind: { case: "apiKey", value: { apiKey: "static-api-key-9", provider: "no-such-provider" } } }, '"api_key.provider" is not in the provider catalog'],
    ["colon in username", { kind: { case: "basic", value: { username: "a:b", password: "static-pw-9" } } }, '"basic.username" must not contain a colon (RFC 7617 §2)'],
    ["no password", { kind: { case: "basic", value: { username: "a" } } }, '"basic.password" is required'],
  ];
  it.each(cases)("%s: INVALID_ARGUMENT naming the field, nothing stored", async (_name, init, message) => {
    recordSecrets("static-api-key-9", "imported-at-9", "static-pw-9");
    const before = await connectionCount();
    const error = await connectError(connections.createConnection({ organisationId: "acme", connectorId: "kinds", ...init } as CreateInit));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
    expect(await connectionCount()).toBe(before);
    expect(await broker.database.db.collection("connection_imports").countDocuments({ _id: { $regex: ":x$" } } as never)).toBe(0);
  });

  it("ReplaceStaticConnection refuses a request without a secret or with both kinds", async () => {
    const { connection } = await create({ kind: { case: "apiKey", value: { apiKey: "static-api-key-9" } } });
    for (const [fields, message] of [
      [{}, '"api_key" is required (or "username" and "password")'],
      [{ apiKey: "static-api-key-9", username: "u" }, '"api_key" must not be given with "username" or "password"'],
    ] as const) {
      const error = await connectError(connections.replaceStaticConnection({ organisationId: "acme", id: connection!.id, ...fields }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe(message);
    }
    expect((await accessToken(connection!.id)).accessToken).toBe("static-api-key-9");
  });

  it("another organisation's credential is NOT_FOUND, and nothing is stored", async () => {
    const before = await connectionCount();
    const error = await connectError(
      create({ kind: { case: "clientCredentials", value: { credential: { id: oidcCredentialId, organisationId: "other" }, scopes: ["api:read"] } } }),
    );
    expect(error.code).toBe(Code.NotFound);
    expect(await connectionCount()).toBe(before);
  });
});

describe("secrets", () => {
  it("no log line, connection or event of this file holds a token, key, password or client secret", async () => {
    const secrets = [OIDC_CLIENT.clientSecret, "cc-renewed-2", "imported-at-1", "imported-rt-1", "static-api-key-2", "static-password-1", "not-the-client-secret"];
    const logs = JSON.stringify(broker.logs);
    const listed = JSON.stringify((await connections.listConnections({ organisationId: "acme", pageSize: 100 })).connections, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    const events = JSON.stringify((await connections.listConnectionEvents({ organisationId: "acme", pageSize: 100 })).events, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    for (const secret of secrets) {
      expect(logs).not.toContain(secret);
      expect(listed).not.toContain(secret);
      expect(events).not.toContain(secret);
    }
  });
});

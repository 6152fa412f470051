import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code } from "@connectrpc/connect";
import { parse } from "yaml";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionKind, ConnectionService, ConnectionStatus, type CreateConnectionRequestSchema } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";
import { JwtBearerProvider } from "../support/jwt-bearer-provider.js";
import { recordSecrets } from "../support/run-record.js";
import { writeCatalog } from "../support/test-catalog.js";

/** The real catalog's JWT bearer rules for a provider: the tests pin what providers/<id>.yaml says. */
function catalogGrants(id: string): Record<string, unknown> {
  return (parse(readFileSync(new URL(`../../providers/${id}.yaml`, import.meta.url), "utf8")) as { grants: Record<string, unknown> }).grants;
}

/** Test entries with Google's and Salesforce's grants, their token endpoints on loopback. */
function entries(provider: JwtBearerProvider): Array<Record<string, unknown>> {
  const docs = "https://example.com/docs";
  const sources = { endpoints: docs, authorize: docs, token: docs, grants: docs };
  return [
    {
      id: "scripted-google",
      display_name: "Scripted Google service accounts",
      documentation_url: docs,
      endpoints: { authorize: `${provider.origin}/authorize`, token: provider.googleTokenUrl },
      grants: catalogGrants("google"),
      sources,
    },
    {
      id: "scripted-salesforce",
      display_name: "Scripted Salesforce",
      documentation_url: docs,
      endpoints: { authorize: `${provider.origin}/authorize`, token: `${provider.origin}/salesforce/services/oauth2/token` },
      grants: catalogGrants("salesforce"),
      sources,
    },
  ];
}

/** An RSA key in PEM (PKCS #8, as Google's key files carry it), registered as a secret of the run. */
function rsaPem(): string {
  const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
  recordSecrets(pem, ...pem.split("\n").filter((line) => line.length >= 40));
  return pem;
}

const SERVICE_ACCOUNT = "broker@acme-project.iam.gserviceaccount.com";
const KEY_ID = "3f1c0b5e9d2a7c4b8e6f0a1d2c3b4a5e6f7d8c9b";
const CONSUMER_KEY = "3MVG9scripted.consumer.key";
const UNUSED_SECRET = "unused-client-secret-5e1a";
recordSecrets(UNUSED_SECRET);

let broker: TestBroker;
let provider: JwtBearerProvider;
let connections: Client<typeof ConnectionService>;
let credentials: Client<typeof CredentialService>;
let googleCredentialId: string;
let salesforceCredentialId: string;

beforeAll(async () => {
  provider = await JwtBearerProvider.start();
  broker = await startTestBroker({
    BROKER_TOKEN_REQUEST_TIMEOUT: "1s",
    BROKER_REFRESH_RETRY_MIN: "300ms",
    BROKER_PROVIDERS_DIR: writeCatalog(entries(provider)),
  });
  connections = broker.connect(ConnectionService);
  credentials = broker.connect(CredentialService);
  googleCredentialId = await newCredential("scripted-google", "104857600000000000000");
  const keyFile = {
    type: "service_account",
    project_id: "acme-project",
    private_key_id: KEY_ID,
    private_key: rsaPem(),
    client_email: SERVICE_ACCOUNT,
    client_id: "104857600000000000000",
    token_uri: "https://oauth2.googleapis.com/token",
  };
  await credentials.addCredentialKey({ organisationId: "acme", credentialId: googleCredentialId, key: { case: "googleServiceAccountJson", value: JSON.stringify(keyFile) } });
  salesforceCredentialId = await newCredential("scripted-salesforce", CONSUMER_KEY);
  await credentials.addCredentialKey({ organisationId: "acme", credentialId: salesforceCredentialId, key: { case: "pem", value: rsaPem() } });
  provider.google = { clientEmail: SERVICE_ACCOUNT, delegatedUsers: ["alice@acme.example"], expiresIn: 3599 };
  provider.salesforce = { consumerKey: CONSUMER_KEY, usernames: ["integration@acme.example"] };
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});
beforeEach(() => {
  provider.received.length = 0;
  provider.refusals.length = 0;
  provider.google.expiresIn = 3599;
});

async function newCredential(providerId: string, clientId: string): Promise<string> {
  const { credential } = await credentials.createCredential({
    credential: { organisationId: "acme", name: providerId, clientId, clientSecret: UNUSED_SECRET, provider: providerId },
  });
  return credential!.id;
}

const jwksUrl = (credentialId: string) => `${broker.httpUrl}/credentials/${credentialId}/jwks.json`;
type CreateInit = MessageInitShape<typeof CreateConnectionRequestSchema>;
function jwtBearer(credentialId: string, fields: Record<string, unknown>) {
  provider.jwksUrl = jwksUrl(credentialId);
  return connections.createConnection({
    organisationId: "acme",
    connectorId: "jwt",
    kind: { case: "jwtBearer", value: { credential: { id: credentialId, organisationId: "acme" }, ...fields } },
  } as CreateInit);
}
const google = (fields: Record<string, unknown> = {}) => jwtBearer(googleCredentialId, { scopes: ["https://www.googleapis.com/auth/drive.readonly", "https://www.googleapis.com/auth/gmail.send"], ...fields });
const salesforce = (fields: Record<string, unknown> = {}) => jwtBearer(salesforceCredentialId, { subject: "integration@acme.example", ...fields });
const connectionCount = () => broker.database.db.collection("connections").countDocuments({});

async function accessToken(connectionId: string, forceRefresh = false) {
  const response = await connections.getAccessToken({ organisationId: "acme", connectionId, forceRefresh });
  recordSecrets(response.accessToken);
  return response;
}

describe("JWT bearer with a Google service account", () => {
  it("signs the assertion as Google's docs say and obtains the first token at creation", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { connection, created } = await google();
    expect(created).toBe(true);
    expect(connection).toMatchObject({ kind: ConnectionKind.JWT_BEARER, status: ConnectionStatus.ACTIVE, hasRefreshToken: false, credentialId: googleCredentialId });
    expect(provider.refusals).toEqual([]);
    const [received] = provider.received;
    expect(received!.header).toMatchObject({ alg: "RS256", kid: KEY_ID, typ: "JWT" });
    expect(received!.parameters.sort()).toEqual(["assertion", "grant_type"]);
    expect(received!.authorization).toBeUndefined();
    const { iat, exp, jti, ...claims } = received!.claims;
    expect(claims).toEqual({
      iss: SERVICE_ACCOUNT,
      aud: provider.googleTokenUrl,
      scope: "https://www.googleapis.com/auth/drive.readonly https://www.googleapis.com/auth/gmail.send",
    });
    expect(iat).toBeGreaterThanOrEqual(before);
    expect(exp! - iat!).toBe(3600);
    expect(jti).toMatch(/^[0-9a-f-]{36}$/);
    const token = await accessToken(connection!.id);
    expect(token.accessToken).toMatch(/^google-at-/);
    expect(token.tokenType).toBe("bearer");
    expect(provider.received).toHaveLength(1); // handed out from the cache
  });

  it("puts the delegated user in sub (domain-wide delegation)", async () => {
    const { connection } = await google({ subject: "alice@acme.example" });
    expect(provider.received[0]!.claims.sub).toBe("alice@acme.example");
    expect((await broker.database.db.collection("connections").findOne({ _id: connection!.id as never }))?.grant_request).toMatchObject({ subject: "alice@acme.example" });
  });

  it("signs a new assertion before the token expires, one request for concurrent callers", async () => {
    provider.google.expiresIn = 30; // inside the 60 s margin at once
    const { connection } = await google();
    const first = provider.received[0]!;
    provider.google.expiresIn = 3599;
    const tokens = await Promise.all(Array.from({ length: 4 }, () => accessToken(connection!.id)));
    expect(new Set(tokens.map((token) => token.accessToken)).size).toBe(1);
    expect(provider.received).toHaveLength(2);
    const renewed = provider.received[1]!;
    expect(renewed.claims.jti).not.toBe(first.claims.jti);
    expect(renewed.claims).toMatchObject({ iss: SERVICE_ACCOUNT, aud: provider.googleTokenUrl, scope: first.claims.scope });
    expect((await accessToken(connection!.id)).accessToken).toBe(tokens[0]!.accessToken);
  });

  it("backs off on a refused renewal without needing reauthorization, and recovers once Google accepts again", async () => {
    provider.google.expiresIn = 1;
    const { connection } = await google({ subject: "alice@acme.example" });
    provider.google.delegatedUsers = []; // delegation withdrawn by the Workspace admin
    const error = await connectError(accessToken(connection!.id));
    expect(error.code).toBe(Code.Unavailable);
    expect(await broker.database.db.collection("connections").findOne({ _id: connection!.id as never })).toMatchObject({ status: "REFRESH_FAILED", status_reason: "invalid_grant" });
    provider.google.delegatedUsers = ["alice@acme.example"];
    provider.google.expiresIn = 3599;
    await expect.poll(async () => (await accessToken(connection!.id).catch(() => undefined))?.accessToken, { timeout: 15_000, interval: 200 }).toMatch(/^google-at-/);
    expect(await broker.database.db.collection("connections").findOne({ _id: connection!.id as never })).toMatchObject({ status: "ACTIVE" });
    const events = async () => (await connections.listConnectionEvents({ organisationId: "acme", connectionId: connection!.id })).events.map((event) => event.type);
    await expect.poll(events, { timeout: 15_000 }).toEqual(["connection.recovered", "connection.refresh_failed", "connection.created"]);
  });

  it("re-obtains on force_refresh, at most once per 10 seconds", async () => {
    const { connection } = await google();
    const first = await accessToken(connection!.id);
    const forced = await accessToken(connection!.id, true);
    expect(forced.accessToken).not.toBe(first.accessToken);
    expect(provider.received).toHaveLength(2);
    expect((await accessToken(connection!.id, true)).accessToken).toBe(forced.accessToken);
    expect(provider.received).toHaveLength(2);
  });

  it("fails at once naming Google's invalid_grant for a user the account may not act for, and stores nothing", async () => {
    const before = await connectionCount();
    const error = await connectError(google({ subject: "mallory@acme.example" }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the provider refused the token request (invalid_grant) and nothing was stored");
    expect(provider.refusals).toEqual(["sub"]);
    expect(await connectionCount()).toBe(before);
  });

  it("refuses a credential without a key, or whose newest key is not a service account's, before calling Google", async () => {
    const bare = await newCredential("scripted-google", "104857600000000000001");
    const before = await connectionCount();
    let error = await connectError(jwtBearer(bare, { scopes: ["https://www.googleapis.com/auth/drive"] }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the credential has no signing key (see AddCredentialKey)");
    await credentials.addCredentialKey({ organisationId: "acme", credentialId: bare, key: { case: "pem", value: rsaPem() } });
    error = await connectError(jwtBearer(bare, { scopes: ["https://www.googleapis.com/auth/drive"] }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the credential's newest key is not a service account key (no client_email) (see AddCredentialKey)");
    expect(provider.received).toHaveLength(0);
    expect(await connectionCount()).toBe(before);
  });
});

describe("JWT bearer with Salesforce", () => {
  it("signs the assertion as Salesforce's docs say: consumer key, username, login host, 3 minutes, no scopes", async () => {
    const { connection } = await salesforce();
    expect(provider.refusals).toEqual([]);
    const [received] = provider.received;
    expect(received!.header).toMatchObject({ alg: "RS256" });
    const { iat, exp, jti, ...claims } = received!.claims;
    expect(claims).toEqual({ iss: CONSUMER_KEY, sub: "integration@acme.example", aud: provider.origin });
    expect(exp! - iat!).toBe(180);
    expect(jti).toBeTypeOf("string");
    expect(connection).toMatchObject({ kind: ConnectionKind.JWT_BEARER, status: ConnectionStatus.ACTIVE, scopes: ["api"] });
    // No expires_in (Salesforce's sessions last as the org says): handed out until forced.
    const token = await accessToken(connection!.id);
    expect(token.accessToken).toMatch(/^salesforce-at-/);
    expect((await accessToken(connection!.id, true)).accessToken).not.toBe(token.accessToken);
  });

  it("names Salesforce's invalid_grant for a user who has not approved the app, and stores nothing", async () => {
    const before = await connectionCount();
    const error = await connectError(salesforce({ subject: "stranger@acme.example" }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the provider refused the token request (invalid_grant) and nothing was stored");
    expect(await connectionCount()).toBe(before);
  });
});

describe("JWT bearer bad input", () => {
  it.each([
    ["no credential", () => connections.createConnection({ organisationId: "acme", connectorId: "jwt", kind: { case: "jwtBearer", value: { scopes: ["x"] } } }), '"jwt_bearer.credential" is required'],
    ["Salesforce without a subject", () => salesforce({ subject: "" }), '"jwt_bearer.subject" is required by the provider'],
    ["Salesforce with scopes", () => salesforce({ scopes: ["api"] }), '"jwt_bearer.scopes" must be empty: the provider takes the scopes from the app, not the assertion'],
    ["a subject with a control character", () => google({ subject: "alice\u0000@acme.example" }), '"jwt_bearer.subject"'],
    ["a bad scope", () => google({ scopes: ["has space"] }), '"jwt_bearer.scopes[0]"'],
    ["an audience that is not a URI", () => google({ audience: "not a uri" }), '"jwt_bearer.audience" must be an absolute URI'],
  ])("%s: INVALID_ARGUMENT naming the field, nothing stored, nothing sent", async (_name, call, message) => {
    const before = await connectionCount();
    const error = await connectError(call());
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
    expect(await connectionCount()).toBe(before);
    expect(provider.received).toHaveLength(0);
  });
});

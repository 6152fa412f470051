import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import * as jose from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toJsonString } from "@bufbuild/protobuf";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ApiKeyService, ListApiKeysResponseSchema } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { recordSecrets } from "../support/run-record.js";
import { expectUnchanged } from "./support.js";

let broker: TestBroker;
let provider: ScriptedProvider;
let jwks: Server;
let signingKey: { privateKey: jose.CryptoKey; jwk: jose.JWK };
let credentialId: string;
let connectionId: string;
let globexKey: string;

const ISSUER = "https://issuer.internal.example";
const AUDIENCE = "oauth2-broker";

async function newSigningKey(kid: string) {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256");
  return { privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  signingKey = await newSigningKey("k1");
  jwks = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [signingKey.jwk] })));
  await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
  broker = await startTestBroker({
    BROKER_JWT_ISSUER: ISSUER,
    BROKER_JWT_AUDIENCE: AUDIENCE,
    BROKER_JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`,
  });
  provider.behaviour = { kind: "json", body: { access_token: "acme-at", token_type: "bearer", expires_in: 3600, refresh_token: "acme-rt" } };
  credentialId = await createScriptedCredential(broker, provider);
  connectionId = await connectThroughCallback(broker, credentialId);
  globexKey = (await broker.connect(ApiKeyService).createApiKey({ name: "globex backend", organisationId: "globex" })).key;
  recordSecrets(globexKey);
});
afterAll(async () => {
  await broker.close();
  await provider.close();
  jwks.close();
});

function jwt(claims: Record<string, unknown>, options: { key?: jose.CryptoKey; kid?: string; expiresIn?: string | number } = {}) {
  return new jose.SignJWT({ org_id: "acme", ...claims })
    .setProtectedHeader({ alg: "ES256", kid: options.kid ?? "k1" })
    .setIssuer((claims.iss as string) ?? ISSUER)
    .setAudience((claims.aud as string) ?? AUDIENCE)
    .setSubject("billing-service")
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "5m")
    .sign(options.key ?? signingKey.privateKey);
}

describe("organisation scope: another organisation's key reaches nothing of acme's", () => {
  const db = () => broker.database.db;
  const calls: Array<[string, (c: { creds: Client<typeof CredentialService>; conns: Client<typeof ConnectionService>; orgs: Client<typeof OrganisationService> }) => Promise<unknown>, string]> = [
    ["CreateCredential", ({ creds }) => creds.createCredential({ credential: { organisationId: "acme", name: "x", clientId: "x", clientSecret: "x", tokenUrl: "https://idp.example/token" } }), "organisation not found"],
    ["GetCredential", ({ creds }) => creds.getCredential({ organisationId: "acme", id: credentialId }), "credential not found"],
    ["ListCredentials", ({ creds }) => creds.listCredentials({ organisationId: "acme" }), "organisation not found"],
    ["UpdateCredential", ({ creds }) => creds.updateCredential({ credential: { id: credentialId, organisationId: "acme", name: "pwned" }, updateMask: { paths: ["name"] } }), "credential not found"],
    ["DeleteCredential", ({ creds }) => creds.deleteCredential({ organisationId: "acme", id: credentialId }), "credential not found"],
    ["GetCredential of acme's ID in globex", ({ creds }) => creds.getCredential({ organisationId: "globex", id: credentialId }), "credential not found"],
    [
      "InitialiseOAuth2Connection",
      ({ conns }) =>
        conns.initialiseOAuth2Connection({ organisationId: "acme", connectorId: "c", credential: { id: credentialId, organisationId: "acme" }, authorizeUrl: "https://idp.example/a", clientId: "client-1" }),
      "credential not found",
    ],
    [
      "InitialiseOAuth2Connection with acme's credential in globex",
      ({ conns }) =>
        conns.initialiseOAuth2Connection({ organisationId: "globex", connectorId: "c", credential: { id: credentialId, organisationId: "globex" }, authorizeUrl: "https://idp.example/a", clientId: "client-1" }),
      "credential not found",
    ],
    ["GetConnection", ({ conns }) => conns.getConnection({ organisationId: "acme", id: connectionId }), "connection not found"],
    ["ListConnections", ({ conns }) => conns.listConnections({ organisationId: "acme" }), "organisation not found"],
    ["GetAccessToken", ({ conns }) => conns.getAccessToken({ organisationId: "acme", connectionId }), "connection not found"],
    ["GetAccessToken of acme's ID in globex", ({ conns }) => conns.getAccessToken({ organisationId: "globex", connectionId }), "connection not found"],
    ["ConfirmConnection", ({ conns }) => conns.confirmConnection({ organisationId: "acme", connectionId, endUserId: "u", confirmation: "c" }), "connection not found"],
    ["DeleteConnection", ({ conns }) => conns.deleteConnection({ organisationId: "acme", id: connectionId }), "connection not found"],
    [
      "WatchConnectionEvents",
      async ({ conns }) => {
        for await (const _ of conns.watchConnectionEvents({ organisationId: "acme" })) break;
      },
      "organisation not found",
    ],
    ["GetOrganisationSettings", ({ orgs }) => orgs.getOrganisationSettings({ organisationId: "acme" }), "organisation not found"],
    ["UpdateOrganisationSettings", ({ orgs }) => orgs.updateOrganisationSettings({ settings: { organisationId: "acme", webhookUrl: "https://evil.example/" }, updateMask: { paths: ["webhook_url"] } }), "organisation not found"],
    ["RotateWebhookSecret", ({ orgs }) => orgs.rotateWebhookSecret({ organisationId: "acme" }), "organisation not found"],
  ];

  it.each(calls)("%s is NOT_FOUND and changes nothing", async (_name, call, message) => {
    const clients = { creds: broker.connect(CredentialService, globexKey), conns: broker.connect(ConnectionService, globexKey), orgs: broker.connect(OrganisationService, globexKey) };
    await expectUnchanged(db(), async () => {
      expect(await connectError(call(clients))).toMatchObject({ code: Code.NotFound, rawMessage: message });
    });
  });

  it("the same key works in its own organisation", async () => {
    const { credential } = await broker.connect(CredentialService, globexKey).createCredential({
      credential: { organisationId: "globex", name: "g", clientId: "g", clientSecret: "g", tokenUrl: "https://idp.example/token" },
    });
    expect(credential?.organisationId).toBe("globex");
  });

  it.each([
    ["CreateApiKey", (c: Client<typeof ApiKeyService>) => c.createApiKey({ name: "escalate", admin: true })],
    ["ListApiKeys", (c: Client<typeof ApiKeyService>) => c.listApiKeys({})],
    ["RevokeApiKey", (c: Client<typeof ApiKeyService>) => c.revokeApiKey({ id: "x" })],
  ])("%s needs an admin key (PERMISSION_DENIED)", async (_name, call) => {
    await expectUnchanged(db(), async () => {
      expect(await connectError(call(broker.connect(ApiKeyService, globexKey)))).toMatchObject({
        code: Code.PermissionDenied,
        rawMessage: "this method needs an admin key",
      });
    });
  });
});

describe("request rules (buf.validate in the proto) come after the access checks", () => {
  const badInitialise = (organisationId: string) => ({
    organisationId,
    connectorId: "not an identifier",
    credential: { id: "", organisationId },
    clientId: "x".repeat(513),
  });

  it("another organisation's caller learns nothing from them: NOT_FOUND, as for a valid request", async () => {
    await expectUnchanged(broker.database.db, async () => {
      const error = await connectError(broker.connect(ConnectionService, globexKey).initialiseOAuth2Connection(badInitialise("acme")));
      expect(error).toMatchObject({ code: Code.NotFound, rawMessage: "credential not found" });
      expect(error.findDetails(BadRequestSchema)).toEqual([]);
      const update = broker.connect(CredentialService, globexKey).updateCredential({ credential: { organisationId: "acme", name: "\u0000" }, updateMask: { paths: ["name"] } });
      expect(await connectError(update)).toMatchObject({ code: Code.NotFound, rawMessage: "credential not found" });
    });
  });

  it("a caller who may not use a service is refused by it first", async () => {
    const error = await connectError(broker.connect(ApiKeyService, globexKey).createApiKey({ name: "", organisationId: "not an identifier" }));
    expect(error).toMatchObject({ code: Code.PermissionDenied, rawMessage: "this method needs an admin key" });
  });

  it("report every broken rule at once, each in google.rpc.BadRequest under the field's proto path", async () => {
    await expectUnchanged(broker.database.db, async () => {
      const error = await connectError(broker.connect(ConnectionService, globexKey).initialiseOAuth2Connection(badInitialise("globex")));
      expect(error).toMatchObject({ code: Code.InvalidArgument, rawMessage: '"connector_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ - and 2 more violations' });
      expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map(({ field, description }) => ({ field, description }))).toEqual([
        { field: "connector_id", description: '"connector_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -' },
        { field: "credential.id", description: '"credential.id" is required' },
        { field: "client_id", description: '"client_id" must be at most 512 characters' },
      ]);
    });
  });

  it("name list entries by index", async () => {
    const urls = ["https://app.example/ok", "https://app.example/\u0007"];
    const update = broker.connect(OrganisationService).updateOrganisationSettings({ settings: { organisationId: "acme", allowedReturnUrls: urls }, updateMask: { paths: ["allowed_return_urls"] } });
    expect(await connectError(update)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: '"settings.allowed_return_urls[1]" must not contain control characters',
    });
  });
});

describe("API keys", () => {
  const credentials = (key: string | null) => broker.connect(CredentialService, key);
  const unauthenticated = async (key: string | null) =>
    expect(await connectError(credentials(key).listCredentials({ organisationId: "acme" }))).toMatchObject({ code: Code.Unauthenticated });

  it("are shown once, stored as a hash, listed by prefix only", async () => {
    const { key, apiKey } = await broker.connect(ApiKeyService).createApiKey({ name: "acme backend", organisationId: "acme" });
    recordSecrets(key);
    expect(key).toMatch(/^obk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}$/);
    expect(key.startsWith(`${apiKey!.prefix}_`)).toBe(true);
    const stored = JSON.stringify(await broker.database.db.collection("api_keys").find().toArray());
    expect(stored).not.toContain(key.slice(13));
    const listed = toJsonString(ListApiKeysResponseSchema, await broker.connect(ApiKeyService).listApiKeys({}));
    expect(listed).toContain(apiKey!.prefix);
    expect(listed).not.toContain(key.slice(13));
    expect((await credentials(key).listCredentials({ organisationId: "acme" })).credentials.length).toBeGreaterThan(0);
  });

  it("refuse a guessed key, a near miss, and anything that is not a key", async () => {
    const { key } = await broker.connect(ApiKeyService).createApiKey({ name: "k", organisationId: "acme" });
    await unauthenticated(`obk_AAAAAAAA_${"A".repeat(43)}`);
    await unauthenticated(`${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`);
    await unauthenticated(`${key}x`);
    await unauthenticated(null);
    await unauthenticated(broker.adminToken.slice(1));
  });

  it("stop working when revoked, and cannot be reused afterwards", async () => {
    const { key, apiKey } = await broker.connect(ApiKeyService).createApiKey({ name: "k", organisationId: "acme" });
    await credentials(key).listCredentials({ organisationId: "acme" });
    const { apiKey: revoked } = await broker.connect(ApiKeyService).revokeApiKey({ id: apiKey!.id });
    expect(revoked?.revokeTime).toBeDefined();
    await unauthenticated(key);
  });

  it("stop working when expired", async () => {
    // Two seconds, so the first call comes before the expiry however slowly the key is made.
    const expiry = Date.now() + 2_000;
    const { key } = await broker.connect(ApiKeyService).createApiKey({
      name: "short",
      organisationId: "acme",
      expireTime: timestampFromDate(new Date(expiry)),
    });
    await credentials(key).listCredentials({ organisationId: "acme" });
    await new Promise((resolve) => setTimeout(resolve, expiry + 100 - Date.now()));
    await unauthenticated(key);
  });

  it.each([
    [{ name: "", organisationId: "acme" }, '"name" is required'],
    [{ name: "k" }, '"organisation_id" is required'],
    [{ name: "k", organisationId: "acme", admin: true }, '"organisation_id" must be empty for an admin key'],
    [{ name: "k", organisationId: "acme", expireTime: timestampFromDate(new Date(Date.now() - 1000)) }, '"expire_time" must be in the future'],
  ])("refuse to create an invalid key (case %#)", async (request, message) => {
    await expectUnchanged(broker.database.db, async () => {
      expect(await connectError(broker.connect(ApiKeyService).createApiKey(request))).toMatchObject({ code: Code.InvalidArgument, rawMessage: message });
    });
  });

  it("an admin key may manage keys", async () => {
    const { key } = await broker.connect(ApiKeyService).createApiKey({ name: "ops", admin: true });
    expect((await broker.connect(ApiKeyService, key).listApiKeys({})).apiKeys.length).toBeGreaterThan(1);
  });
});

describe("JWT callers", () => {
  const list = async (token: string) => broker.connect(CredentialService, token).listCredentials({ organisationId: "acme" });

  it("are accepted from the configured issuer, for their organisation only", async () => {
    const token = await jwt({});
    expect((await list(token)).credentials.length).toBeGreaterThan(0);
    expect((await connectError(broker.connect(CredentialService, token).listCredentials({ organisationId: "globex" }))).code).toBe(Code.NotFound);
  });

  it("regression: a WatchConnectionEvents stream outlived its JWT; it now ends with UNAUTHENTICATED", async () => {
    // Expired 27 s ago: still inside the 30 s clock tolerance when the stream opens (a loaded
    // machine has 2 s or more to open it), not for long.
    const token = await jwt({}, { expiresIn: Math.floor(Date.now() / 1000) - 27 });
    const controller = new AbortController();
    const ended = (async () => {
      try {
        for await (const _ of broker.grpc(ConnectionService, token).watchConnectionEvents({ organisationId: "acme" }, { signal: controller.signal }));
        return "ended without error";
      } catch (error) {
        return ConnectError.from(error);
      }
    })();
    const outcome = await Promise.race([ended, new Promise((resolve) => setTimeout(() => resolve("still open"), 15_000))]);
    controller.abort();
    expect(outcome).toMatchObject({ code: Code.Unauthenticated, rawMessage: "the credential is no longer valid" });
    expect((await connectError(list(token))).code).toBe(Code.Unauthenticated);
  });

  it.each([
    ["alg none", async () => `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, org_id: "acme", exp: Math.floor(Date.now() / 1000) + 60 })).toString("base64url")}.`],
    ["a wrong key", async () => jwt({}, { key: (await newSigningKey("k1")).privateKey })],
    ["a wrong audience", async () => jwt({ aud: "someone-else" })],
    ["a wrong issuer", async () => jwt({ iss: "https://evil.example" })],
    ["an expired token", async () => jwt({}, { expiresIn: "-1m" })],
    ["no organisation claim", async () => jwt({ org_id: undefined })],
    [
      "HS256 with the public key as secret",
      async () =>
        new jose.SignJWT({ org_id: "acme" })
          .setProtectedHeader({ alg: "HS256", kid: "k1" })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime("5m")
          .sign(new TextEncoder().encode(JSON.stringify(signingKey.jwk))),
    ],
  ])("refuse %s (UNAUTHENTICATED)", async (_label, make) => {
    expect(await connectError(list(await make()))).toMatchObject({ code: Code.Unauthenticated, rawMessage: "invalid token" });
  });

  it("pick up a rotated signing key", async () => {
    const rotated = await newSigningKey("k2");
    signingKey = { privateKey: rotated.privateKey, jwk: rotated.jwk };
    await new Promise((resolve) => setTimeout(resolve, 5_100)); // past the refetch cool-down
    expect((await list(await jwt({}, { kid: "k2" }))).credentials.length).toBeGreaterThan(0);
  });
});

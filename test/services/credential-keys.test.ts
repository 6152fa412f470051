import { generateKeyPairSync } from "node:crypto";
import { type Client, Code } from "@connectrpc/connect";
import * as jose from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientSecretSlot, CredentialKeySource, TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { previousClientSecretContext, privateKeyContext } from "../../src/crypto/secret-contexts.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";

let broker: TestBroker;
let client: Client<typeof CredentialService>;

beforeAll(async () => {
  broker = await startTestBroker({ BROKER_PUBLIC_URL: "https://broker.example" });
  client = broker.connect(CredentialService);
});
afterAll(() => broker.close());

const SECRET = "first-client-secret-41c9";
const NEXT_SECRET = "second-client-secret-8d2e";
recordSecrets(SECRET, NEXT_SECRET);

async function newCredential(overrides: Record<string, unknown> = {}): Promise<string> {
  const { credential } = await client.createCredential({
    credential: { organisationId: "acme", name: "Keys", clientId: "client-k", clientSecret: SECRET, tokenUrl: "https://idp.example/token", ...overrides },
  });
  return credential!.id;
}

const stored = (id: string) => broker.database.db.collection("credentials").findOne({ _id: id as never });
const box = () => new SecretBox(broker.config.encryptionKeys!);

/** A private key in PEM, registered as a secret of the run so the log check looks for it. */
function pemKey(type: "ec" | "rsa", format: "pkcs8" | "sec1" | "pkcs1" = "pkcs8", bits = 2048): string {
  const { privateKey } = type === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: bits });
  const pem = privateKey.export({ format: "pem", type: format }).toString();
  recordSecrets(pem, ...pem.split("\n").filter((line) => line.length >= 40));
  return pem;
}

async function jwks(id: string): Promise<Response> {
  return fetch(`${broker.httpUrl}/credentials/${id}/jwks.json`);
}

describe("credential keys", () => {
  it("a private_key_jwt credential gets a generated ES256 key, published at its JWKS URL without the private part", async () => {
    const id = await newCredential({ clientSecret: "", tokenEndpointAuthMethod: TokenEndpointAuthMethod.PRIVATE_KEY_JWT });
    const { credential } = await client.getCredential({ organisationId: "acme", id });
    expect(credential).toMatchObject({ clientSecretSet: false, tokenEndpointAuthMethod: TokenEndpointAuthMethod.PRIVATE_KEY_JWT });
    expect(credential!.keys).toHaveLength(1);
    const [key] = credential!.keys;
    expect(key).toMatchObject({ algorithm: "ES256", source: CredentialKeySource.GENERATED });
    expect(credential!.jwksUri).toBe(`https://broker.example/credentials/${id}/jwks.json`);

    const response = await jwks(id);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { keys: Array<Record<string, string>> };
    expect(body.keys).toEqual([JSON.parse(key!.publicJwk)]);
    expect(Object.keys(body.keys[0]!).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x", "y"]);
    // The kid is the RFC 7638 thumbprint of the public key.
    expect(key!.kid).toBe(await jose.calculateJwkThumbprint(body.keys[0] as jose.JWK));

    // At rest: the private JWK is a ciphertext bound to the credential and the kid.
    const document = await stored(id);
    const privateJwk = JSON.parse(box().decrypt(document!.keys[0].private_key, privateKeyContext(id, key!.kid)));
    recordSecrets(privateJwk.d);
    expect(privateJwk.d).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(JSON.stringify(credential, (_key, value) => (typeof value === "bigint" ? String(value) : value))).not.toContain(privateJwk.d);
  });

  it("rotates keys: a new key signs, the old stays published until it is removed", async () => {
    const id = await newCredential();
    const first = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "generate", value: { algorithm: "RS256" } } });
    const second = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "generate", value: {} } });
    expect(first.key!.algorithm).toBe("RS256");
    expect(second.credential!.keys.map((key) => key.kid)).toEqual([first.key!.kid, second.key!.kid]);
    let body = (await (await jwks(id)).json()) as { keys: Array<{ kid: string }> };
    expect(body.keys.map((key) => key.kid)).toEqual([first.key!.kid, second.key!.kid]);

    const { credential } = await client.removeCredentialKey({ organisationId: "acme", credentialId: id, kid: first.key!.kid });
    expect(credential!.keys.map((key) => key.kid)).toEqual([second.key!.kid]);
    body = (await (await jwks(id)).json()) as { keys: Array<{ kid: string }> };
    expect(body.keys.map((key) => key.kid)).toEqual([second.key!.kid]);

    const missing = await connectError(client.removeCredentialKey({ organisationId: "acme", credentialId: id, kid: first.key!.kid }));
    expect(missing.code).toBe(Code.NotFound);
  });

  it("accepts uploaded PEM (PKCS #8, SEC 1, PKCS #1) and JWK keys, keeping a JWK's own kid", async () => {
    const id = await newCredential();
    const ec = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "pem", value: pemKey("ec") } });
    const sec1 = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "pem", value: pemKey("ec", "sec1") } });
    const rsa = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "pem", value: pemKey("rsa", "pkcs1") } });
    expect([ec.key!.algorithm, sec1.key!.algorithm, rsa.key!.algorithm]).toEqual(["ES256", "ES256", "RS256"]);
    expect(ec.key!.source).toBe(CredentialKeySource.PEM);

    const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
    const jwk = { ...(await jose.exportJWK(privateKey)), kid: "uploaded-2026" };
    recordSecrets(jwk.d);
    const uploaded = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "jwk", value: JSON.stringify(jwk) } });
    expect(uploaded.key).toMatchObject({ kid: "uploaded-2026", algorithm: "ES256", source: CredentialKeySource.JWK });
    expect(uploaded.key!.publicJwk).not.toContain(jwk.d);
    expect(JSON.stringify(await stored(id))).not.toContain(jwk.d);
  });

  it("accepts a Google service-account key file and keeps what the JWT bearer grant needs", async () => {
    const id = await newCredential();
    const file = {
      type: "service_account",
      project_id: "acme-project",
      private_key_id: "3f1c0b5e9d2a7c4b8e6f0a1d2c3b4a5e6f7d8c9b",
      private_key: pemKey("rsa"),
      client_email: "broker@acme-project.iam.gserviceaccount.com",
      client_id: "104857600000000000000",
      token_uri: "https://oauth2.googleapis.com/token",
    };
    const { key } = await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "googleServiceAccountJson", value: JSON.stringify(file) } });
    expect(key).toMatchObject({
      kid: file.private_key_id,
      algorithm: "RS256",
      source: CredentialKeySource.GOOGLE_SERVICE_ACCOUNT,
      serviceAccountEmail: file.client_email,
      tokenUri: file.token_uri,
    });
    expect(JSON.parse(key!.publicJwk)).toMatchObject({ kty: "RSA", kid: file.private_key_id, alg: "RS256" });
    expect(JSON.parse(key!.publicJwk).d).toBeUndefined();
  });

  it.each([
    ["pem", { case: "pem", value: "not a key" }, '"pem" is not a PEM private key'],
    ["pem", { case: "pem", value: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }, '"pem" is not a readable PEM private key'],
    ["pem", { case: "pem", value: "x".repeat(16_385) }, '"pem" must be at most 16384 characters'],
    ["jwk", { case: "jwk", value: "{" }, '"jwk" is not JSON'],
    ["jwk", { case: "jwk", value: '{"kty":"EC","crv":"P-256","x":"a","y":"b"}' }, '"jwk" is not a private JWK (it has no "d")'],
    ["google_service_account_json", { case: "googleServiceAccountJson", value: '{"type":"authorized_user"}' }, '"google_service_account_json.type" must be "service_account"'],
    [
      "google_service_account_json",
      { case: "googleServiceAccountJson", value: '{"type":"service_account","private_key_id":"k1"}' },
      '"google_service_account_json.client_email" is missing or malformed',
    ],
    ["generate.algorithm", { case: "generate", value: { algorithm: "HS256" } }, '"generate.algorithm" must be "ES256" or "RS256"'],
    ["key", { case: undefined }, '"key" is required (generate, pem, jwk or google_service_account_json)'],
  ] as const)("refuses a bad %s with INVALID_ARGUMENT and stores nothing", async (_field, key, message) => {
    const id = await newCredential();
    const error = await connectError(client.addCredentialKey({ organisationId: "acme", credentialId: id, key: key as never }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
    expect((await stored(id))!.keys).toBeUndefined();
  });

  it("refuses a 1024-bit RSA key, a duplicate kid, and removing a private_key_jwt credential's last key", async () => {
    const id = await newCredential({ clientSecret: "", tokenEndpointAuthMethod: TokenEndpointAuthMethod.PRIVATE_KEY_JWT });
    const weak = await connectError(client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "pem", value: pemKey("rsa", "pkcs8", 1024) } }));
    expect(weak.rawMessage).toBe('"pem" must be a P-256 (ES256) or an RSA key of at least 2048 bits (RS256)');
    const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
    const jwk = JSON.stringify({ ...(await jose.exportJWK(privateKey)), kid: "same" });
    await client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "jwk", value: jwk } });
    const duplicate = await connectError(client.addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "jwk", value: jwk } }));
    expect(duplicate.rawMessage).toBe('"key" has the kid of a key the credential already has');
    const { credential } = await client.getCredential({ organisationId: "acme", id });
    await client.removeCredentialKey({ organisationId: "acme", credentialId: id, kid: credential!.keys[0]!.kid });
    const last = await connectError(client.removeCredentialKey({ organisationId: "acme", credentialId: id, kid: "same" }));
    expect(last.code).toBe(Code.FailedPrecondition);
    expect((await stored(id))!.keys).toHaveLength(1);
  });

  it("serves no JWKS for an unknown credential or one without keys, and only to GET", async () => {
    const id = await newCredential();
    expect((await jwks(id)).status).toBe(404);
    expect((await jwks("0190aaaa-0000-7000-8000-000000000000")).status).toBe(404);
    expect((await fetch(`${broker.httpUrl}/credentials/${id}/jwks.json`, { method: "POST" })).status).toBe(405);
  });

  it("keeps another organisation's credential keys out of reach", async () => {
    const id = await newCredential();
    const error = await connectError(client.addCredentialKey({ organisationId: "other", credentialId: id, key: { case: "generate", value: {} } }));
    expect(error.code).toBe(Code.NotFound);
  });
});

describe("client-secret rotation", () => {
  it("keeps the previous secret, sealed for its own field, until the rotation ends", async () => {
    const id = await newCredential();
    const before = (await stored(id))!.update_time;
    const { credential } = await client.rotateClientSecret({ organisationId: "acme", id, clientSecret: NEXT_SECRET });
    expect(credential).toMatchObject({ clientSecretSet: true, previousClientSecretSet: true, clientSecretLastUsed: ClientSecretSlot.UNSPECIFIED });
    const document = await stored(id);
    expect(box().decrypt(document!.previous_client_secret, previousClientSecretContext(id))).toBe(SECRET);
    // Sign-ins under way go on: a rotation is not an endpoint change.
    expect(document!.update_time).toEqual(before);

    const ended = await client.removePreviousClientSecret({ organisationId: "acme", id });
    expect(ended.credential!.previousClientSecretSet).toBe(false);
    expect((await stored(id))!.previous_client_secret).toBeUndefined();
    const again = await connectError(client.removePreviousClientSecret({ organisationId: "acme", id }));
    expect(again.code).toBe(Code.FailedPrecondition);
  });

  it("refuses an empty secret with INVALID_ARGUMENT and changes nothing", async () => {
    const id = await newCredential();
    const before = await stored(id);
    const error = await connectError(client.rotateClientSecret({ organisationId: "acme", id, clientSecret: "" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe('"client_secret" is required');
    expect(await stored(id)).toEqual(before);
  });

  it("replacing the secret with UpdateCredential ends the rotation", async () => {
    const id = await newCredential();
    await client.rotateClientSecret({ organisationId: "acme", id, clientSecret: NEXT_SECRET });
    const { credential } = await client.updateCredential({
      credential: { organisationId: "acme", id, clientSecret: "third-client-secret-0b7a" },
      updateMask: { paths: ["client_secret"] },
    });
    recordSecrets("third-client-secret-0b7a");
    expect(credential!.previousClientSecretSet).toBe(false);
  });
});

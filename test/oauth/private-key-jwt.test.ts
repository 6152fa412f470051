import { existsSync } from "node:fs";
import * as jose from "jose";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { connectionSecretContext, privateKeyContext } from "../../src/crypto/secret-contexts.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { type DemoOidcProvider, startOidcProvider } from "../../scripts/demo-provider.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { writeCatalog } from "../support/test-catalog.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CLIENT_ID = "broker-private-key-jwt";

let broker: TestBroker;
let provider: DemoOidcProvider;
let scripted: ScriptedProvider;
let browser: Browser;
let credentialId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-test-tools.sh (npm test does)`);
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  scripted = await ScriptedProvider.start();
  const docs = "https://example.com/docs";
  // A catalog entry for a provider that requires private_key_jwt with RS256 keys and documents
  // the issuer as the assertion's audience.
  const catalog = writeCatalog([
    {
      id: "scripted-pkjwt",
      display_name: "Scripted private_key_jwt (RS256, aud = issuer)",
      documentation_url: docs,
      endpoints: { authorize: `${scripted.issuer}/authorize`, token: scripted.tokenUrl, issuer: scripted.issuer },
      token: { auth_method: "private_key_jwt", client_assertion: { signing_alg: "RS256", audience: "issuer" } },
      sources: { endpoints: docs, authorize: docs, token: docs },
    },
  ]);
  broker = await startTestBroker({
    BROKER_HTTP_PORT: String(port),
    BROKER_PUBLIC_URL: publicUrl,
    BROKER_TOKEN_MIN_VALIDITY: "4s",
    BROKER_PROVIDERS_DIR: catalog,
  });
  // The provider's address is known before it starts, so the credential (and with it the JWKS URL
  // the provider is told about) can be made first.
  const providerPort = await freePort();
  const issuer = `http://127.0.0.1:${providerPort}`;
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: {
      organisationId: "acme",
      name: "OpenID provider, private_key_jwt",
      clientId: CLIENT_ID,
      tokenUrl: `${issuer}/token`,
      revocationUrl: `${issuer}/token/revocation`,
      issuer,
      authorizationResponseIssParameterSupported: true,
      tokenEndpointAuthMethod: TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
    },
  });
  credentialId = credential!.id;
  // The generated private key is a secret of the run: the log check looks for it.
  const [stored] = (await broker.database.db.collection("credentials").findOne({ _id: credentialId as never }))!.keys;
  recordSecrets(JSON.parse(new SecretBox(broker.config.encryptionKeys!).decrypt(stored.private_key, privateKeyContext(credentialId, stored.kid))).d);
  provider = await startOidcProvider(
    { clientId: CLIENT_ID, clientSecret: "", redirectUri: `${publicUrl}/oauth2/callback`, tokenEndpointAuthMethod: "private_key_jwt", jwksUri: credential!.jwksUri },
    { port: providerPort, accessTokenTtl: 8 },
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await broker?.close();
  await provider?.close();
  await scripted?.close();
});

describe("private_key_jwt client authentication", () => {
  it("connects through oidc-provider, which verifies the client with the broker's JWKS URL; refresh and revocation authenticate the same way", async () => {
    const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "pkjwt",
      credential: { id: credentialId, organisationId: "acme" },
      authorizeUrl: `${provider.issuer}/auth`,
      clientId: CLIENT_ID,
      scopes: ["openid", "email"],
      prompt: "login consent",
    });
    recordSecrets(new URL(url).searchParams.get("state"));
    const page = await browser.newPage();
    await page.goto(url);
    await page.fill('input[name="login"]', "erin");
    await page.fill('input[name="password"]', "any password");
    await page.click('button[type="submit"]');
    await page.waitForSelector("text=Authorize");
    await page.click('button[type="submit"]');
    await page.waitForLoadState("load");
    expect(await page.textContent("h1")).toBe("Account connected");
    await page.close();

    const stored = await broker.database.db.collection("connections").findOne({ credential_id: credentialId });
    expect(stored).toMatchObject({ status: "ACTIVE" });
    const id = String(stored!._id);
    const box = new SecretBox(broker.config.encryptionKeys!);
    const first = box.decrypt(stored!.access_token, connectionSecretContext(id, "access_token"));
    recordSecrets(first, box.decrypt(stored!.refresh_token, connectionSecretContext(id, "refresh_token")));

    // Inside the 4 s margin of an 8 s token: refreshed, authenticated with a new assertion.
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    const { accessToken } = await broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId: id });
    recordSecrets(accessToken);
    expect(accessToken).not.toBe(first);
    const userinfo = await fetch(`${provider.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(((await userinfo.json()) as { sub: string }).sub).toBe("erin");

    const deleted = await broker.connect(ConnectionService).deleteConnection({ organisationId: "acme", id, revoke: true });
    expect(deleted).toMatchObject({ revocation: RevocationOutcome.REVOKED, revocationError: "" });
    // Revoking the refresh token ended the grant at the provider, access token included.
    expect((await fetch(`${provider.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status).toBe(401);
  }, 60_000);

  it("signs each assertion as RFC 7523 §3 says, with the newest key's kid, verifiable with the published JWKS", async () => {
    const id = await createScriptedCredential(broker, scripted, { clientSecret: "", tokenEndpointAuthMethod: TokenEndpointAuthMethod.PRIVATE_KEY_JWT });
    scripted.behaviour = { kind: "json", body: { access_token: "pkjwt-access-token-1", token_type: "Bearer", expires_in: 3600 } };
    await connectThroughCallback(broker, id, "pkjwt");
    const { credential: before } = await broker.connect(CredentialService).getCredential({ organisationId: "acme", id });
    // A second key: it signs from now on, and the first stays published.
    const { key: newest } = await broker.connect(CredentialService).addCredentialKey({ organisationId: "acme", credentialId: id, key: { case: "generate", value: { algorithm: "RS256" } } });
    await connectThroughCallback(broker, id, "pkjwt");

    const [withFirst, withNewest] = scripted.grants("authorization_code").slice(-2).map((request) => request.form);
    const keySet = jose.createLocalJWKSet((await (await fetch(before!.jwksUri.replace(/^https?:\/\/[^/]+/, broker.httpUrl))).json()) as jose.JSONWebKeySet);
    for (const [form, kid, alg] of [
      [withFirst!, before!.keys[0]!.kid, "ES256"],
      [withNewest!, newest!.kid, "RS256"],
    ] as const) {
      expect(form.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
      expect(form.get("client_id")).toBe("client-1");
      expect(form.get("client_secret")).toBeNull();
      const assertion = form.get("client_assertion")!;
      expect(jose.decodeProtectedHeader(assertion)).toMatchObject({ alg, kid });
      const { payload } = await jose.jwtVerify(assertion, keySet, { issuer: "client-1", subject: "client-1", audience: scripted.tokenUrl });
      expect(payload.exp! - payload.iat!).toBe(60);
      expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    }
    expect(withFirst!.get("client_assertion")).not.toBe(withNewest!.get("client_assertion"));
    // No Basic header either: the assertion is the only client authentication.
    expect(scripted.grants("authorization_code").at(-1)!.authorization).toBeUndefined();
  });

  it("follows the catalog: a provider that requires RS256 gets an RS256 key, and aud is the issuer where it documents that", async () => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      // The issuer set exactly (the catalog's origin-only template renders with a trailing "/").
      credential: { organisationId: "acme", name: "Catalog private_key_jwt", clientId: "client-1", provider: "scripted-pkjwt", issuer: scripted.issuer },
    });
    expect(credential!.clientSecretSet).toBe(false);
    expect(credential!.tokenEndpointAuthMethod).toBeUndefined(); // as the catalog says
    expect(credential!.keys.map((key) => key.algorithm)).toEqual(["RS256"]);
    scripted.behaviour = { kind: "json", body: { access_token: "pkjwt-access-token-2", token_type: "Bearer", expires_in: 3600 } };
    await connectThroughCallback(broker, credential!.id, "pkjwt-catalog");
    const assertion = scripted.grants("authorization_code").at(-1)!.form.get("client_assertion")!;
    expect(jose.decodeProtectedHeader(assertion)).toMatchObject({ alg: "RS256", kid: credential!.keys[0]!.kid });
    expect(jose.decodeJwt(assertion).aud).toBe(scripted.issuer);
  });
});

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { bearer, grpcJsClients, type GrpcJsClients, unary } from "../support/grpc-js.js";
import { type DemoOidcProvider, startOidcProvider } from "../../scripts/demo-provider.js";
import { recordSecrets } from "../support/run-record.js";
import { connectionSecretContext } from "../../src/crypto/secret-contexts.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CLIENT = { clientId: "broker-e2e", clientSecret: "e2e-client-secret-3d1f" };

let broker: TestBroker;
let provider: DemoOidcProvider;
let browser: Browser;
let grpcJs: GrpcJsClients;
let app: Server;
let appUrl: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-test-tools.sh (npm test does)`);
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  // Access tokens live 8 s and are refreshed when under 4 s from expiry, so the test sees both.
  broker = await startTestBroker({ BROKER_HTTP_PORT: String(port), BROKER_PUBLIC_URL: publicUrl, BROKER_TOKEN_MIN_VALIDITY: "4s" });
  provider = await startOidcProvider({ ...CLIENT, redirectUri: `${publicUrl}/oauth2/callback` }, { accessTokenTtl: 8 });
  grpcJs = grpcJsClients(broker.grpcPort);
  // The caller's own web app, where the browser lands with connection_id.
  app = createServer((req, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<h1>App</h1><p>${req.url}</p>`));
  await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/integrations/done`;
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", allowedReturnUrls: [appUrl] },
    updateMask: { paths: ["allowed_return_urls"] },
  });
  // Playwright gives the browser a new, empty profile of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  grpcJs?.close();
  await broker?.close();
  await provider?.close();
  app?.close();
});

async function createCredential(): Promise<string> {
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: {
      organisationId: "acme",
      name: "Test OpenID provider",
      clientId: CLIENT.clientId,
      clientSecret: CLIENT.clientSecret,
      tokenUrl: `${provider.issuer}/token`,
      issuer: provider.issuer,
      authorizationResponseIssParameterSupported: true,
    },
  });
  return credential!.id;
}

/** InitialiseOAuth2Connection over gRPC with the independent client, as a caller would. */
async function initialise(credentialId: string, returnUrl = ""): Promise<string> {
  const { response, error } = await unary(
    grpcJs.connections,
    "InitialiseOAuth2Connection",
    {
      organisation_id: "acme",
      connector_id: "e2e",
      credential: { id: credentialId, organisation_id: "acme" },
      authorize_url: `${provider.issuer}/auth`,
      client_id: CLIENT.clientId,
      scopes: ["openid", "email"],
      // offline_access is only honoured with consent (OpenID Connect Core §11).
      prompt: "login consent",
      return_url: returnUrl,
    },
    bearer(broker.adminToken),
  );
  expect(error).toBeUndefined();
  recordSecrets(new URL(response.url).searchParams.get("state"));
  return response.url;
}

/** Signs in and consents on the provider's own pages, as a person would. */
async function signInAndConsent(url: string, user: string) {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', "any password");
  await page.click('button[type="submit"]');
  await page.waitForSelector("text=Authorize");
  await page.click('button[type="submit"]');
  await page.waitForLoadState("load");
  return page;
}

async function useAccessToken(connectionId: string): Promise<Record<string, unknown>> {
  const stored = await broker.database.db.collection("connections").findOne({ _id: connectionId as never });
  expect(stored).toMatchObject({ organisation_id: "acme", connector_id: "e2e", status: "ACTIVE", token_type: "bearer" });
  expect(stored!.scopes).toEqual(expect.arrayContaining(["openid", "email", "offline_access"]));
  expect(stored!.refresh_token).toBeDefined();
  expect(stored!.id_token).toBeDefined();
  const box = new SecretBox(broker.config.encryptionKeys!);
  const accessToken = box.decrypt(stored!.access_token, connectionSecretContext(connectionId, "access_token"));
  recordSecrets(accessToken, box.decrypt(stored!.refresh_token, connectionSecretContext(connectionId, "refresh_token")), CLIENT.clientSecret);
  const userinfo = await fetch(`${provider.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  expect(userinfo.status).toBe(200);
  return (await userinfo.json()) as Record<string, unknown>;
}

describe("end to end: gRPC, a real browser, a real OpenID provider", () => {
  it("connects an account and shows the success page; the stored access token works at userinfo", async () => {
    const credentialId = await createCredential();
    const page = await signInAndConsent(await initialise(credentialId), "alice");
    expect(new URL(page.url()).pathname).toBe("/oauth2/callback");
    expect(await page.textContent("h1")).toBe("Account connected");
    expect(await page.textContent("main")).toContain("You can close this window.");
    const artifacts = join(import.meta.dirname, "../../test-results");
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, "connected.png") });
    await page.close();

    const stored = await broker.database.db.collection("connections").findOne({ credential_id: credentialId });
    expect(await useAccessToken(String(stored!._id))).toEqual({ sub: "alice", email: "alice@example.com", email_verified: true });
    // Who connected, from the verified ID token's subject.
    const { connection } = await broker.grpc(ConnectionService).getConnection({ organisationId: "acme", id: String(stored!._id) });
    expect(connection?.externalAccount?.id).toBe("alice");
  });

  it("sends the browser back to the caller's return URL with connection_id", async () => {
    const credentialId = await createCredential();
    const page = await signInAndConsent(await initialise(credentialId, `${appUrl}?tab=integrations`), "bob");
    await page.waitForURL((url) => url.pathname === "/integrations/done");
    const landed = new URL(page.url());
    expect(landed.searchParams.get("tab")).toBe("integrations");
    const connectionId = landed.searchParams.get("connection_id")!;
    await page.close();
    expect((await useAccessToken(connectionId)).sub).toBe("bob");
  });

  it("refreshes through the provider with refresh-token rotation, and the new token works at userinfo", async () => {
    const credentialId = await createCredential();
    await (await signInAndConsent(await initialise(credentialId), "dave")).close();
    const stored = await broker.database.db.collection("connections").findOne({ credential_id: credentialId });
    const id = String(stored!._id);
    const box = new SecretBox(broker.config.encryptionKeys!);
    const unseal = (document: Record<string, any>, field: string) => box.decrypt(document[field], connectionSecretContext(id, field));
    const get = async () =>
      (await unary(grpcJs.connections, "GetAccessToken", { organisation_id: "acme", connection_id: id }, bearer(broker.adminToken))).response;

    // Valid: the stored token, as it is.
    const first = await get();
    expect(first.access_token).toBe(unseal(stored!, "access_token"));

    // Inside the margin: refreshed at the provider, with a rotated refresh token.
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    const second = await get();
    expect(second.access_token).not.toBe(first.access_token);
    const refreshed = await broker.database.db.collection("connections").findOne({ _id: id as never });
    const oldRefreshToken = unseal(stored!, "refresh_token");
    expect(unseal(refreshed!, "refresh_token")).not.toBe(oldRefreshToken);
    expect(unseal(refreshed!, "access_token")).toBe(second.access_token);

    const userinfo = await fetch(`${provider.issuer}/me`, { headers: { authorization: `Bearer ${second.access_token}` } });
    expect(userinfo.status).toBe(200);
    expect(((await userinfo.json()) as { sub: string }).sub).toBe("dave");

    // The provider retired the old refresh token: the broker must never send it again.
    const reuse = await fetch(`${provider.issuer}/token`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT.clientId}:${CLIENT.clientSecret}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: oldRefreshToken }),
    });
    expect(((await reuse.json()) as { error: string }).error).toBe("invalid_grant");
  });

  it("reports a denied consent to the return URL and stores nothing", async () => {
    const credentialId = await createCredential();
    const page = await browser.newPage();
    await page.goto(await initialise(credentialId, appUrl));
    await page.fill('input[name="login"]', "carol");
    await page.fill('input[name="password"]', "any password");
    await page.click('button[type="submit"]');
    await page.waitForSelector("text=Authorize");
    // The dev interactions' "Cancel" link aborts the interaction: the provider answers access_denied.
    await page.click("text=Cancel");
    await page.waitForURL((url) => url.pathname === "/integrations/done");
    expect(new URL(page.url()).searchParams.get("error")).toBe("access_denied");
    await page.close();
    expect(await broker.database.db.collection("connections").countDocuments({ credential_id: credentialId })).toBe(0);
  });
});

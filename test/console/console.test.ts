import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { type DemoOidcProvider, startOidcProvider } from "../../scripts/demo-provider.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { recordSecrets } from "../support/run-record.js";
import { connectionSecretContext } from "../../src/crypto/secret-contexts.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CLIENT = { clientId: "console-client", clientSecret: "console-client-secret-7a2c" };

let broker: TestBroker;
let provider: DemoOidcProvider;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-test-tools.sh (npm test does)`);
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  broker = await startTestBroker({ BROKER_HTTP_PORT: String(port), BROKER_PUBLIC_URL: publicUrl });
  provider = await startOidcProvider({ ...CLIENT, redirectUri: `${publicUrl}/oauth2/callback` }, { clientCredentials: true });
  recordSecrets(CLIENT.clientSecret);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await broker?.close();
  await provider?.close();
});

/** A fresh browser profile, signed in to the console with `key`; its pages accept dialogs (confirm). */
async function signedIn(key: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(15_000);
  context.on("page", (opened) => opened.on("dialog", (dialog) => void dialog.accept()));
  const page = await context.newPage();
  await page.goto(`${broker.httpUrl}/console`);
  await page.getByLabel("API key or admin token").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  return { context, page };
}

/** Calls the Connect API from the page's origin with the given cookie and headers, as another site or script could. */
async function rpcWith(cookie: string | undefined, headers: Record<string, string>, method: string, body: unknown) {
  const response = await fetch(`${broker.httpUrl}/oauth2broker.v1.${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(cookie ? { cookie: `obk_console=${cookie}` } : {}), ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function sessionOf(context: BrowserContext): Promise<{ cookie: string; csrf: string }> {
  const cookie = (await context.cookies()).find((candidate) => candidate.name === "obk_console");
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/" });
  const response = await fetch(`${broker.httpUrl}/console/session`, { headers: { cookie: `obk_console=${cookie!.value}` } });
  const session = (await response.json()) as { csrfToken: string };
  return { cookie: cookie!.value, csrf: session.csrfToken };
}

describe("operator console in a real browser", () => {
  it("creates a credential, tests it through the provider, shows the ACTIVE connection, reconnects it, and deletes it with revocation", async () => {
    const { context, page } = await signedIn(broker.adminToken);
    await page.getByLabel("Other organisation").fill("acme");
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByRole("link", { name: "Credentials" }).click();
    await page.getByRole("button", { name: "New credential" }).click();
    const form = page.getByRole("form", { name: "New credential" });
    await form.getByLabel("Name", { exact: true }).fill("Test OpenID provider");
    await form.getByLabel("Client ID").fill(CLIENT.clientId);
    await form.getByLabel("Client secret").fill(CLIENT.clientSecret);
    await form.getByLabel("Token endpoint URL").fill(`${provider.issuer}/token`);
    await form.getByLabel("Revocation endpoint URL (optional)").fill(`${provider.issuer}/token/revocation`);
    await form.getByLabel("Issuer (optional, OpenID providers)").fill(provider.issuer);
    await form.getByLabel("The provider always returns iss on the callback").check();
    await form.getByRole("button", { name: "Save" }).click();
    await page.getByRole("cell", { name: /Test OpenID provider/ }).first().waitFor({ timeout: 15_000 }).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await page.locator("main").innerText()}`);
    });
    // The secret is write-only: nowhere on the page.
    expect(await page.content()).not.toContain(CLIENT.clientSecret);

    await page.getByRole("button", { name: "Test Test OpenID provider" }).click();
    const test = page.getByRole("form", { name: "Test Test OpenID provider" });
    expect(await test.getByLabel("Authorization endpoint URL").inputValue()).toBe(`${provider.issuer}/auth`);
    const [tab] = await Promise.all([context.waitForEvent("page"), test.getByRole("button", { name: "Start test connection" }).click()]);
    await tab.waitForURL((url) => url.origin === provider.issuer);
    await tab.fill('input[name="login"]', "erin");
    await tab.fill('input[name="password"]', "any password");
    await tab.click('button[type="submit"]');
    await tab.waitForSelector("text=Authorize");
    await tab.click('button[type="submit"]');
    await tab.waitForURL((url) => url.pathname === "/console/flow-result");
    await tab.getByRole("heading", { name: "Test connection complete" }).waitFor();
    await tab.getByText("active", { exact: true }).waitFor();
    const connectionId = new URL(tab.url()).searchParams.get("connection_id")!;
    expect(connectionId).toMatch(/^[0-9a-f-]{36}$/);

    // Who was connected, from the verified ID token.
    expect(await tab.locator("main").innerText()).toContain("Connected account\nerin\n");

    // Reconnect from the connection's page: the same connection, new tokens, one more event.
    await tab.getByRole("link", { name: "Open the connection" }).click();
    await tab.getByRole("heading", { name: `Connection ${connectionId}` }).waitFor();
    const reconnect = tab.getByRole("form", { name: "Reconnect" });
    expect(await reconnect.getByLabel("Authorization endpoint URL").inputValue()).toBe(`${provider.issuer}/auth`);
    const [again] = await Promise.all([context.waitForEvent("page"), reconnect.getByRole("button", { name: "Start reconnect" }).click()]);
    await again.waitForURL((url) => url.origin === provider.issuer);
    await again.fill('input[name="login"]', "erin");
    await again.fill('input[name="password"]', "any password");
    await again.click('button[type="submit"]');
    await again.waitForSelector("text=Authorize");
    await again.click('button[type="submit"]');
    await again.waitForURL((url) => url.pathname === "/console/flow-result");
    expect(new URL(again.url()).searchParams.get("connection_id")).toBe(connectionId);
    await again.close();
    await tab.reload();
    await tab.getByText("connection.reauthorized").waitFor();

    // The provider's own view of the token, before and after the console deletes the connection.
    const stored = await broker.database.db.collection("connections").findOne({ _id: connectionId as never });
    const box = new SecretBox(broker.config.encryptionKeys!);
    const refreshToken = box.decrypt(stored!.refresh_token, connectionSecretContext(connectionId, "refresh_token"));
    recordSecrets(refreshToken);
    const introspect = async () => {
      const response = await fetch(`${provider.issuer}/token/introspection`, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${CLIENT.clientId}:${CLIENT.clientSecret}`).toString("base64")}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token: refreshToken }),
      });
      return ((await response.json()) as { active: boolean }).active;
    };
    expect(await introspect()).toBe(true);

    await tab.getByText("connection.created").waitFor();
    expect(await tab.getByLabel("Revoke the tokens at the provider first").isChecked()).toBe(true);
    await tab.getByRole("button", { name: "Delete connection" }).click();
    await tab.getByText("Deleted. Revocation: revoked.").waitFor();
    expect(await introspect()).toBe(false);
    await context.close();
  }, 90_000);

  it("creates a client credentials connection and an API key connection, shows their kinds, and replaces the key in place", async () => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "kinds-org", name: "Service client", clientId: CLIENT.clientId, clientSecret: CLIENT.clientSecret, tokenUrl: `${provider.issuer}/token` },
    });
    const { context, page } = await signedIn(broker.adminToken);
    await page.getByLabel("Other organisation").fill("kinds-org");
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByRole("link", { name: "Connections" }).click();
    const form = page.getByRole("form", { name: "New connection" });
    await form.getByLabel("Connector ID").fill("billing");
    await form.locator('select[name="credential"]').selectOption(credential!.id);
    await form.getByLabel("Scopes (separated by spaces)").fill("api:read");
    await form.getByRole("button", { name: "Create connection" }).click();
    // The heading shows at once; the details once the connection is loaded.
    await page.getByRole("heading", { name: "Timeline" }).waitFor();
    await page.locator("dd", { hasText: "client credentials" }).waitFor();
    const details = await page.locator("main").innerText();
    expect(details).toContain("Kind\nclient credentials\n");
    expect(details).toContain("Status\nactive\n");

    recordSecrets("console-api-key-1", "console-api-key-2");
    await page.getByRole("link", { name: "Back to connections" }).click();
    await form.locator('select[name="kind"]').selectOption("apiKey");
    await form.getByLabel("Connector ID").fill("mailer");
    await form.getByLabel("API key", { exact: true }).fill("console-api-key-1");
    await form.getByRole("button", { name: "Create connection" }).click();
    await page.locator("dd", { hasText: "api key" }).waitFor();
    const connectionId = (await page.getByRole("heading", { name: /^Connection / }).innerText()).replace("Connection ", "");
    expect(await page.locator("main").innerText()).toContain("Kind\napi key\n");
    const replace = page.getByRole("form", { name: "Replace secret" });
    await replace.getByLabel("New API key").fill("console-api-key-2");
    await replace.getByRole("button", { name: "Replace" }).click();
    await page.getByText("Secret replaced.").waitFor();
    const token = await broker.connect(ConnectionService).getAccessToken({ organisationId: "kinds-org", connectionId });
    expect(token).toMatchObject({ accessToken: "console-api-key-2", tokenType: "api_key" });
    // The list shows each connection's kind; no page shows a secret.
    await page.getByRole("link", { name: "Back to connections" }).click();
    await page.getByRole("cell", { name: "client credentials" }).waitFor();
    await page.getByRole("cell", { name: "api key" }).waitFor();
    const content = await page.content();
    for (const secret of ["console-api-key-1", "console-api-key-2", CLIENT.clientSecret]) expect(content).not.toContain(secret);
    await context.close();
  });

  it("refuses a wrong key, keeps the key out of browser storage, and ends the session on sign-out", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${broker.httpUrl}/console`);
    await page.getByLabel("API key or admin token").fill("obk_wrongkey_0123456789012345678901234567890123456789012");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("That key was refused").waitFor();
    expect(await context.cookies()).toEqual([]);
    await context.close();

    const session = await signedIn(broker.adminToken);
    const storage = await session.page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    expect(storage).not.toContain(broker.adminToken);
    const { cookie, csrf } = await sessionOf(session.context);
    const list = { organisationId: "acme" };
    expect((await rpcWith(cookie, { "x-console-csrf": csrf }, "CredentialService/ListCredentials", list)).status).toBe(200);
    await session.page.getByRole("button", { name: "Sign out" }).click();
    await session.page.getByLabel("API key or admin token").waitFor();
    // The old cookie no longer works, even with its CSRF token.
    const after = await rpcWith(cookie, { "x-console-csrf": csrf }, "CredentialService/ListCredentials", list);
    expect(after).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    await session.context.close();
  });

  it("refuses a cookie without the CSRF header, or with another session's", async () => {
    const first = await signedIn(broker.adminToken);
    const second = await signedIn(broker.adminToken);
    const a = await sessionOf(first.context);
    const b = await sessionOf(second.context);
    const list = { organisationId: "acme" };
    expect((await rpcWith(a.cookie, {}, "CredentialService/ListCredentials", list)).status).toBe(401);
    expect((await rpcWith(a.cookie, { "x-console-csrf": b.csrf }, "CredentialService/ListCredentials", list)).status).toBe(401);
    expect((await rpcWith(a.cookie, { "x-console-csrf": a.csrf }, "CredentialService/ListCredentials", list)).status).toBe(200);
    // Sign-in takes JSON only, so a cross-site form cannot post one.
    const form = await fetch(`${broker.httpUrl}/console/session`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ key: broker.adminToken }),
    });
    expect(form.status).toBe(415);
    expect(form.headers.get("set-cookie")).toBeNull();
    await first.context.close();
    await second.context.close();
  });

  it("shows an organisation's key only its own organisation, and ends its session when the key is revoked", async () => {
    await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "initech", name: "Initech only", clientId: "c", clientSecret: "initech-secret-1", tokenUrl: `${provider.issuer}/token` },
    });
    recordSecrets("initech-secret-1");
    const created = await broker.connect(ApiKeyService).createApiKey({ name: "globex console", organisationId: "globex" });
    recordSecrets(created.key);
    const { context, page } = await signedIn(created.key);
    await page.getByText("Organisation: globex").waitFor();
    expect(await page.getByRole("link", { name: "API keys" }).count()).toBe(0);
    await page.getByRole("link", { name: "Credentials" }).click();
    await page.getByText("No credentials yet.").waitFor();
    expect(await page.content()).not.toContain("Initech only");
    const { cookie, csrf } = await sessionOf(context);
    const other = await rpcWith(cookie, { "x-console-csrf": csrf }, "CredentialService/ListCredentials", { organisationId: "initech" });
    expect(other).toMatchObject({ status: 404, body: { code: "not_found" } });
    const organisations = await rpcWith(cookie, { "x-console-csrf": csrf }, "OrganisationService/ListOrganisations", {});
    expect(organisations.body).toEqual({ organisationIds: ["globex"] });

    await broker.connect(ApiKeyService).revokeApiKey({ id: created.apiKey!.id });
    const revoked = await rpcWith(cookie, { "x-console-csrf": csrf }, "CredentialService/ListCredentials", { organisationId: "globex" });
    expect(revoked.status).toBe(401);
    await context.close();
  });

  it("renders hostile names and return URLs as text under a CSP that forbids inline script", async () => {
    const hostile = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`;
    await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "umbrella", name: hostile, clientId: "c", clientSecret: "umbrella-secret-1", tokenUrl: `${provider.issuer}/token` },
    });
    recordSecrets("umbrella-secret-1");
    const hostileUrl = `https://app.example.com/cb/"><img src=x onerror=alert(1)><script>alert(2)</script>`;
    const { settings } = await broker.connect(OrganisationService).updateOrganisationSettings({
      settings: { organisationId: "umbrella", allowedReturnUrls: [hostileUrl] },
      updateMask: { paths: ["allowed_return_urls"] },
    });
    const storedUrl = settings!.allowedReturnUrls[0]!;
    const response = await fetch(`${broker.httpUrl}/console`);
    const csp = response.headers.get("content-security-policy")!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    const dialogs: string[] = [];
    const { context, page } = await signedIn(broker.adminToken);
    page.on("dialog", (dialog) => dialogs.push(dialog.message()));
    await page.getByLabel("Organisation", { exact: true }).selectOption("umbrella");
    await page.getByRole("link", { name: "Credentials" }).click();
    await page.getByRole("cell", { name: hostile }).first().waitFor();
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByTestId("allowed-return-urls").getByText(storedUrl, { exact: true }).waitFor();
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.locator("main script").count()).toBe(0);
    expect(dialogs).toEqual([]);
    await context.close();
  });

  it("rotates a credential's secret, shows which secret the provider last accepted, and generates a key with its JWKS URL", async () => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "stark", name: "Rotating", clientId: "c", clientSecret: "stark-secret-first-1", tokenUrl: `${provider.issuer}/token` },
    });
    recordSecrets("stark-secret-first-1", "stark-secret-second-2");
    const { context, page } = await signedIn(broker.adminToken);
    await page.getByLabel("Other organisation").fill("stark");
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByRole("link", { name: "Credentials" }).click();
    await page.getByRole("button", { name: "Rotate secret Rotating" }).click();
    await page.getByLabel("New client secret").fill("stark-secret-second-2");
    await page.getByRole("button", { name: "Rotate secret", exact: true }).click();
    await page.getByText("secret rotation under way").waitFor();
    // A token request fell back to the previous secret: the console says so.
    await broker.database.db.collection("credentials").updateOne({ _id: credential!.id as never }, { $set: { client_secret_last_used: "previous" } });
    // Another page and back: the credentials list is read again (the organisation stays chosen).
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByRole("link", { name: "Credentials" }).click();
    await page.getByRole("button", { name: "Rotate secret Rotating" }).click();
    await page.getByText("the previous secret (the provider refused the new one)").waitFor();
    await page.getByRole("button", { name: "End rotation (forget the previous secret)" }).click();
    await page.getByText("secret rotation under way").waitFor({ state: "detached" });

    await page.getByRole("button", { name: "Keys Rotating" }).click();
    await page.getByRole("button", { name: "Generate ES256 key" }).click();
    const jwksUri = `${broker.config.publicUrl}/credentials/${credential!.id}/jwks.json`;
    await page.getByText(jwksUri).waitFor();
    const jwks = (await (await fetch(jwksUri)).json()) as { keys: Array<{ kid: string; d?: string }> };
    expect(jwks.keys).toHaveLength(1);
    await page.getByText(jwks.keys[0]!.kid).waitFor();
    expect(await page.locator("main").textContent()).not.toContain("stark-secret");
    await context.close();
  });
});

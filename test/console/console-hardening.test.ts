import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";

// Issue 20: console tabs kept window.opener (item 4), the sign-in limit ignored
// BROKER_TRUSTED_PROXIES (item 5), and the session cookie had no __Host- prefix under https.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

let browserBroker: TestBroker;
/** Behind a trusted proxy, with an https public URL. */
let proxied: TestBroker;
let browser: Browser;
let hostile: Server;
const hostileRequests: string[] = [];

/**
 * An authorization page an organisation controls (its credential's issuer): it tries to send the
 * operator's console tab to a phishing page through window.opener, and says whether it had one.
 */
function hostilePage(origin: string): string {
  return `<!doctype html><title>loading</title><script>
const had = window.opener !== null;
try { window.opener.location = "${origin}/phish"; } catch (error) {}
document.title = had ? "had opener" : "no opener";
</script>`;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-test-tools.sh (npm test does)`);
  hostile = createServer((req, res) => {
    hostileRequests.push(req.url ?? "");
    const origin = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(req.url?.startsWith("/phish") ? "<title>phished</title>" : hostilePage(origin));
  });
  await new Promise<void>((resolve) => hostile.listen(0, "127.0.0.1", resolve));
  const port = await freePort();
  browserBroker = await startTestBroker({ BROKER_HTTP_PORT: String(port), BROKER_PUBLIC_URL: `http://127.0.0.1:${port}` });
  proxied = await startTestBroker({
    BROKER_PUBLIC_URL: "https://broker.example.test",
    BROKER_TRUSTED_PROXIES: "127.0.0.0/8",
    BROKER_CALLBACK_RATE_LIMIT: "6", // the sign-in limit too: bursts of 2
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await browserBroker?.close();
  await proxied?.close();
  hostile?.closeAllConnections();
  await new Promise((resolve) => hostile?.close(resolve));
});

describe("console tabs (issue 20, item 4)", () => {
  it("regression: a hostile authorization page navigated the operator's console tab through window.opener", async () => {
    await browserBroker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "Hostile issuer", clientId: "c", clientSecret: "hostile-secret-1", tokenUrl: "http://127.0.0.1:9/token" },
    });
    const context = await browser.newContext();
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    await page.goto(`${browserBroker.httpUrl}/console`);
    await page.getByLabel("API key or admin token").fill(browserBroker.adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByLabel("Other organisation").fill("acme");
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByRole("link", { name: "Credentials" }).click();
    await page.getByRole("button", { name: "Test Hostile issuer" }).click();
    const form = page.getByRole("form", { name: "Test Hostile issuer" });
    const hostileOrigin = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
    await form.getByLabel("Authorization endpoint URL").fill(`${hostileOrigin}/authorize`);
    const consoleUrl = page.url();
    const [tab] = await Promise.all([context.waitForEvent("page"), form.getByRole("button", { name: "Start test connection" }).click()]);
    await tab.waitForURL((url) => url.origin === hostileOrigin);
    await tab.waitForFunction("document.title !== 'loading'");
    // Give a navigation time to happen: the console stays where it was.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(page.url()).toBe(consoleUrl);
    expect(hostileRequests.filter((path) => path.startsWith("/phish"))).toEqual([]);
    expect(await tab.title()).toBe("no opener");
    await context.close();
  }, 60_000);

  it("sends Cross-Origin-Opener-Policy: same-origin on console pages, not on the callback (an organisation's pop-up flow needs its opener)", async () => {
    for (const path of ["/console", "/console/flow-result", "/console/session"]) {
      expect((await fetch(`${browserBroker.httpUrl}${path}`)).headers.get("cross-origin-opener-policy")).toBe("same-origin");
    }
    expect((await fetch(`${browserBroker.httpUrl}/oauth2/callback?state=x&code=y`)).headers.get("cross-origin-opener-policy")).toBeNull();
  });
});

async function signIn(key: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${proxied.httpUrl}/console/session`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ key }),
  });
}

describe("console sign-in limit (issue 20, item 5)", () => {
  it("regression: behind a trusted proxy one attacker's wrong keys locked every operator out (429): limited per forwarded client", async () => {
    const from = (address: string) => ({ "x-forwarded-for": `198.51.100.1, ${address}` });
    const attacker: number[] = [];
    for (let i = 0; i < 4; i++) attacker.push((await signIn(`obk_wrong_${i}_0123456789012345678901234567890123456789`, from("203.0.113.66"))).status);
    expect(attacker).toEqual([401, 401, 429, 429]);
    // An operator behind the same proxy signs in.
    expect((await signIn(proxied.adminToken, from("203.0.113.7"))).status).toBe(200);
  });
});

describe("console session cookie under https", () => {
  it("is named __Host-obk_console, Secure, Path=/ and without Domain; a planted obk_console cookie is ignored", async () => {
    const response = await signIn(proxied.adminToken, { "x-forwarded-for": "203.0.113.20" });
    expect(response.status).toBe(200);
    const setCookie = response.headers.get("set-cookie")!;
    const value = /^__Host-obk_console=([A-Za-z0-9_-]{43});/.exec(setCookie)?.[1];
    expect(value).toBeDefined();
    expect(setCookie.split("; ").slice(1).sort()).toEqual(["HttpOnly", "Max-Age=3600", "Path=/", "SameSite=Strict", "Secure"].sort());
    const session = (cookie: string) => fetch(`${proxied.httpUrl}/console/session`, { headers: { cookie } }).then((r) => r.status);
    expect(await session(`__Host-obk_console=${value}`)).toBe(200);
    // What a sibling subdomain could plant for the parent domain is not the session cookie.
    expect(await session(`obk_console=${value}`)).toBe(401);
  });
});
